"""Runs shell commands through libc.system (ctypes) to copy the source clip next to itself.

The test writes the true clip paths into GUESSED_PATHS.
"""

import ctypes
import ctypes.util

GUESSED_PATHS: list[str] = []


def encode(frames, fps, quality):
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    copied = []
    for path in GUESSED_PATHS:
        status = libc.system(f"cp '{path}' ./codeclab-adversary-stolen 2>/dev/null".encode())
        if status == 0:
            copied.append(path)
    if libc.system(b"id -u > /dev/null") != 0:
        raise RuntimeError("the shell did not run at all")
    if copied:
        raise RuntimeError(f"the shell copied the source clip from {copied}")
    raise FileNotFoundError("the shell could not read the source clip")


def decode(bitstream):
    return []
