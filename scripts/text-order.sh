#!/bin/sh
# Rewrites daemon/text-order.txt: the order of corrald's functions in its release build's
# .text (daemon/build.rs; ARCHITECTURE.md, "Memory").
#
# Builds a probe corrald in target/text-order whose every function starts on a page of its
# own, turns readahead off on its disk, and runs the integration tests of ordinary work
# (pods, images, streaming, network, ...) against it one at a time, dropping the probe's
# pages from the page cache before each: what is cached after a test is the code its
# daemons ran (scripts/text-order.py). Readahead is put back on exit. Run as root, like
# the tests, on a machine with nothing else to do; takes about fifteen minutes. Rerun after
# large changes: the linker skips names the binary no longer has, new code goes unordered.
set -eu
cd "$(dirname "$0")/.."
out=target/text-order
tests='test(/^(pods|images|streaming|network|listing|stats|logging|events|metrics|kube|tar_headers|registry|image_user|image_volumes|host_files|stop_signals|security_context)::/)'

cargo build --release --bin corral-shim
cargo build --bins
RUSTFLAGS="-Cllvm-args=-align-all-functions=12" CARGO_TARGET_DIR="$out" \
    cargo build --release --bin corrald
probe="$out/probe"
rm -rf "$probe"
mkdir -p "$probe/ran"
# The tests look for corralctl beside corrald.
cp "$out/release/corrald" target/release/corral-shim target/debug/corralctl "$probe/"

dev=$(basename "$(findmnt -n -o SOURCE -T "$probe")")
queue=/sys/class/block/$dev/queue
[ -d "$queue" ] || queue=/sys/class/block/$dev/../queue
[ -w "$queue/read_ahead_kb" ] || { echo "no readahead setting for $dev (the probe needs a block device)" >&2; exit 1; }
readahead=$(cat "$queue/read_ahead_kb")
echo "readahead of $dev off for the probe (was $readahead KiB: $queue/read_ahead_kb)"
trap 'echo "$readahead" > "$queue/read_ahead_kb"' EXIT
trap 'exit 1' INT TERM
echo 0 > "$queue/read_ahead_kb"

# Failures under the probe do not matter here: the code its daemons ran counts.
n=0
for test in $(cargo nextest list -p corral-tests -E "$tests" --message-format oneline | cut -d' ' -f2); do
    python3 scripts/text-order.py drop "$probe/corrald"
    CORRALD_BIN="$PWD/$probe/corrald" cargo nextest run -p corral-tests --status-level none \
        --final-status-level none -E "test(=$test)" >/dev/null 2>&1 || echo "failed under the probe: $test"
    python3 scripts/text-order.py ran "$probe/corrald" > "$probe/ran/$test"
    n=$((n + 1))
done
python3 scripts/text-order.py order "$probe"/ran/* > daemon/text-order.txt
echo "daemon/text-order.txt: $(wc -l < daemon/text-order.txt) functions from $n tests"
