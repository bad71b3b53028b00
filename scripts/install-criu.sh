#!/usr/bin/env bash
# Makes sure a CRIU that works on this kernel is where corrald looks for it by default. Run as
# root; called by install-deps.sh (modes test and criu).
#
# Nothing is built when `criu` on PATH passes `criu check` (corrald then uses it), or when
# $CRIU_DEST already reports version 4.2 (the cache: repeated runs and CI images keep the
# build). Otherwise CRIU 4.2 is built from vendor/criu/criu-4.2.tar.gz (sha256 checked first) in
# a temporary directory and installed atomically as $CRIU_DEST. Debian's /usr/sbin/criu (3.17,
# which fails `criu check` on kernels from 6.13 on) is never touched.
set -euo pipefail

root_dir="$(cd "$(dirname "$0")/.." && pwd)"
dest="${CRIU_DEST:-/usr/local/lib/corral/criu}"
version=4.2
tarball="$root_dir/vendor/criu/criu-$version.tar.gz"
sha256=7e705f59d18a90b39b4f6b029a26eea46346d90085c654ad9ac187cd9f7f3306
build_deps=(build-essential pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler
  protobuf-compiler python3-protobuf libnl-3-dev libnet1-dev libcap-dev libbsd-dev
  libnftables-dev libgnutls28-dev uuid-dev)

# `criu check` passes: exit status 0 and no "Error" line (3.17 exits 0 on some failures).
check_passes() {
  local out
  out=$("$1" check 2>&1) || return 1
  ! grep -q '^Error' <<<"$out"
}

if [ -x "$dest" ] && "$dest" --version 2>/dev/null | grep -qx "Version: $version"; then
  if ! check_passes "$dest"; then
    echo "warning: $dest (CRIU $version) is installed but \`criu check\` fails here:" >&2
    "$dest" check 2>&1 | grep '^Error' | head -5 >&2 || true
  fi
  exit 0
fi
if command -v criu >/dev/null && check_passes "$(command -v criu)"; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "no working CRIU; run $0 as root to build CRIU $version into $dest" >&2
  exit 1
fi

if ! echo "$sha256  $tarball" | sha256sum --check --quiet - >/dev/null 2>&1; then
  echo "$tarball: sha256 is not $sha256 (see vendor/criu/README.md); not building" >&2
  exit 1
fi

missing=()
for p in "${build_deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing CRIU build dependencies: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/corral-criu-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
tar xzf "$tarball" -C "$work"
echo "building CRIU $version (make -j2 criu, about 3 minutes)"
make -C "$work/criu-$version" -j2 criu >"$work/build.log" 2>&1 || {
  tail -30 "$work/build.log" >&2
  echo "CRIU build failed (log above)" >&2
  exit 1
}
built="$work/criu-$version/criu/criu"
"$built" --version | grep -qx "Version: $version"
# Atomic install: copy beside the destination, then rename over it.
install -d -m 0755 "$(dirname "$dest")"
install -m 0755 "$built" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "installed CRIU $version as $dest"
check_passes "$dest" || echo "warning: \`$dest check\` fails on this host" >&2
