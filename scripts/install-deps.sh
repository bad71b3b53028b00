#!/usr/bin/env bash
# Installs the Debian packages Corral needs, only those missing. Run as root.
#   scripts/install-deps.sh run     what the daemon needs at run time
#   scripts/install-deps.sh test    plus the loopback registry and fixture sources for tests
#   scripts/install-deps.sh bench   plus containerd and runc, the benchmark peer
#   scripts/install-deps.sh fuzz    only what `make fuzz` needs: nightly, cargo-fuzz, a C++ compiler
#   scripts/install-deps.sh criu    only a CRIU that works here (scripts/install-criu.sh)
# `test` also runs scripts/install-criu.sh: it builds CRIU 4.2 from vendor/criu/ when no working
# CRIU is installed (a cached build is kept in /usr/local/lib/corral/criu).
set -euo pipefail

mode="${1:-test}"
# Pod networking: the standard CNI plugins, and the tools they call (iptables, tc via netlink).
want=(containernetworking-plugins iptables iproute2)
case "$mode" in
  run) ;;
  # runc and crun: the OCI runtimes the runtime-handler tests drive.
  test) want+=(docker-registry busybox-static criu runc crun) ;;
  # debootstrap: the Debian-like pull fixture (tests/src/fixtures/debian.rs).
  bench) want+=(docker-registry busybox-static containerd runc debootstrap) ;;
  # libfuzzer-sys compiles libFuzzer (C++) from source.
  fuzz) want=(g++) ;;
  criu) exec "$(dirname "$0")/install-criu.sh" ;;
  *) echo "usage: $0 run|test|bench|fuzz|criu" >&2; exit 2 ;;
esac

# The toolchain pinned in rust-toolchain.toml: rustup cannot download on an offline machine, so
# when the pinned name is absent but an installed toolchain has that exact version, link it.
root_dir="$(cd "$(dirname "$0")/.." && pwd)"
pinned=$(sed -n 's/^channel = "\(.*\)"/\1/p' "$root_dir/rust-toolchain.toml")
if command -v rustup >/dev/null && [ -n "$pinned" ] && ! rustup run "$pinned" rustc --version >/dev/null 2>&1; then
  for tc in $(rustup toolchain list | awk '{print $1}'); do
    if rustup run "$tc" rustc --version 2>/dev/null | grep -q "^rustc $pinned "; then
      echo "linking toolchain $pinned to installed $tc"
      rustup toolchain link "$pinned" "$(rustup run "$tc" rustc --print sysroot)"
      break
    fi
  done
  rustup run "$pinned" rustc --version >/dev/null 2>&1 || rustup toolchain install "$pinned"
fi

# The fuzz targets build with nightly (sanitizers, coverage instrumentation) through cargo-fuzz.
if [ "$mode" = fuzz ]; then
  rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
  cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
fi

# Checkpoint tests need a CRIU that passes `criu check` on this kernel (Debian's 3.17 does not
# from 6.13 on); this builds one only when none works and no build is cached.
if [ "$mode" = test ]; then
  "$root_dir/scripts/install-criu.sh"
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
# Package scripts must not start system services (a registry on :5000, a system containerd):
# tests and benchmarks start their own instances on their own ports and sockets.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
