#!/usr/bin/env python3
"""Which of a running process's executable pages are mapped, by crate and by function.

  resident-text.py PID [FUNCTIONS_FILE]

Reads /proc/PID/pagemap (root only) for the mappings of the process's own executable and
prints, per segment permission and per crate, the KiB of its mapped pages: what RssFile
counts for the binary. Generic code is named after the crate of its outermost path
(`core`, `alloc`, `<&mut serde_json::de...`), not the crate that instantiated it. With
FUNCTIONS_FILE, every function with mapped bytes is written there, most first. Pages with no
symbol (read-only data, unwind tables) count as "(no symbol)".

Used to see what corrald keeps mapped at idle (ARCHITECTURE.md, "Memory"); the bench copies
its smaps at that moment with CORRAL_BENCH_SMAPS_DIR, and this script can run in the same
window on `pgrep -x corrald`.
"""
import bisect
import collections
import os
import re
import struct
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def mapped_pages(pid, exe):
    """(file offset, permissions) of every present page of exe's mappings."""
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == exe:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                maps.append((start, end, fields[1], int(fields[2], 16)))
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        for start, end, perm, offset in maps:
            n = (end - start) // PAGE
            entries = os.pread(fd, n * 8, start // PAGE * 8)
            for i in range(n):
                (entry,) = struct.unpack_from("<Q", entries, i * 8)
                if entry >> 63:
                    yield offset + i * PAGE, perm
    finally:
        os.close(fd)


def loads(exe):
    """(file offset, virtual address, file size) of exe's loaded segments."""
    out = subprocess.run(["readelf", "-lW", exe], capture_output=True, text=True, check=True)
    segs = []
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            segs.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
    return segs


def symbols(exe):
    """(address, size, name) of exe's defined symbols with a size, sorted."""
    out = subprocess.run(["nm", "-S", "-C", "--defined-only", exe],
                         capture_output=True, text=True, check=True)
    syms = []
    for line in out.stdout.splitlines():
        f = line.split(" ", 3)
        if len(f) == 4 and f[2] in "tTrRdDbBwWvV":
            try:
                syms.append((int(f[0], 16), int(f[1], 16), f[3]))
            except ValueError:
                pass
    syms.sort()
    return syms


def crate(name):
    m = re.match(r"[<&\s]*(?:mut\s+|impl\s+|dyn\s+)*([A-Za-z_][A-Za-z0-9_]*)", name)
    return m.group(1) if m else name


def main():
    pid = int(sys.argv[1])
    exe = os.readlink(f"/proc/{pid}/exe")
    segs = loads(exe)
    syms = symbols(exe)
    starts = [s[0] for s in syms]
    # reach[i]: the furthest end of symbols 0..=i, to stop looking back once none can overlap.
    reach, furthest = [], 0
    for addr, size, _ in syms:
        furthest = max(furthest, addr + size)
        reach.append(furthest)
    by_crate = collections.Counter()
    by_fn = collections.Counter()
    for offset, perm in mapped_pages(pid, exe):
        vaddr = next((va + offset - fo for fo, va, fs in segs if fo <= offset < fo + fs), None)
        covered = 0
        if vaddr is not None:
            i = bisect.bisect_right(starts, vaddr + PAGE - 1) - 1
            while i >= 0 and reach[i] > vaddr:
                addr, size, name = syms[i]
                lo, hi = max(addr, vaddr), min(addr + size, vaddr + PAGE)
                if hi > lo:
                    by_crate[(perm, crate(name))] += hi - lo
                    by_fn[(perm, name)] += hi - lo
                    covered += hi - lo
                i -= 1
        by_crate[(perm, "(no symbol)")] += max(PAGE - covered, 0)
    totals = collections.Counter()
    for (perm, _), n in by_crate.items():
        totals[perm] += n
    print("mapped KiB by permissions:",
          ", ".join(f"{p} {n / 1024:.0f}" for p, n in sorted(totals.items())))
    for (perm, name), n in by_crate.most_common():
        if n >= 4096:
            print(f"{perm} {n / 1024:9.1f} KiB  {name}")
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            for (perm, name), n in by_fn.most_common():
                f.write(f"{perm} {n:8d} {name}\n")


if __name__ == "__main__":
    main()
