#!/usr/bin/env python3
"""Which functions of a probe corrald ran; and the order corrald's text is linked in.

scripts/text-order.sh runs each test against a probe build of corrald in which every
function starts on a page of its own, with the probe's pages dropped from the page cache
before the test and readahead off: a page of the probe is then cached only if a daemon
executed code in it (fault-around maps only pages already cached and reads none).

  text-order.py drop BINARY          drop BINARY's pages from the page cache
  text-order.py ran BINARY           print the functions on BINARY's cached pages
  text-order.py order RAN...         print the order: functions most tests ran first,
                                     those the same tests ran together

lld's `--symbol-ordering-file` takes the order (daemon/build.rs): the code every daemon
runs shares pages at the start of `.text`, and the code of one feature sits together, so
the kernel maps little code that does not run.
"""
import ctypes
import mmap
import os
import subprocess
import sys

PAGE = mmap.PAGESIZE


def drop(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_pages(path):
    """Indexes of the file's pages that are in the page cache (mincore(2))."""
    size = os.path.getsize(path)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    with open(path, "rb") as f:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
    if address == ctypes.c_void_p(-1).value:
        sys.exit(f"mmap {path}: {os.strerror(ctypes.get_errno())}")
    pages = (size + PAGE - 1) // PAGE
    vec = ctypes.create_string_buffer(pages)
    if libc.mincore(ctypes.c_void_p(address), size, vec) != 0:
        sys.exit(f"mincore {path}: {os.strerror(ctypes.get_errno())}")
    libc.munmap(ctypes.c_void_p(address), size)
    return {i for i in range(pages) if vec.raw[i] & 1}


def text_section(path):
    """(virtual address, file offset) of `.text`."""
    out = subprocess.run(["readelf", "-S", "-W", path], check=True, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        fields = line.replace("[ ", "[").split()
        if len(fields) > 5 and fields[1] == ".text":
            return int(fields[3], 16), int(fields[4], 16)
    sys.exit(f"{path}: no .text section")


def functions(path):
    """(address, size, symbol) of the functions the binary defines, by address."""
    out = subprocess.run(["nm", "-S", "--defined-only", path], check=True, capture_output=True, text=True)
    found = []
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW":
            found.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
    return sorted(found)


def ran(binary):
    cached = cached_pages(binary)
    address, offset = text_section(binary)
    seen = set()
    for start, size, symbol in functions(binary):
        first = (start - address + offset) // PAGE
        last = (start - address + offset + max(size, 1) - 1) // PAGE
        if symbol not in seen and any(p in cached for p in range(first, last + 1)):
            seen.add(symbol)
            print(symbol)


def order(records):
    tests = {}  # symbol: the tests that ran it
    position = {}  # symbol: where it first appeared (address order)
    for k, path in enumerate(records):
        with open(path) as f:
            for symbol in f.read().split():
                tests.setdefault(symbol, set()).add(k)
                position.setdefault(symbol, len(position))
    key = lambda s: (-len(tests[s]), sorted(tests[s]), position[s])
    for symbol in sorted(tests, key=key):
        print(symbol)


def main():
    match sys.argv[1:]:
        case ["drop", binary]:
            drop(binary)
        case ["ran", binary]:
            ran(binary)
        case ["order", *records] if records:
            order(records)
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main()
