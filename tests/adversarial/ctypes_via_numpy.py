"""Reaches native code through numpy.ctypeslib to call libc: refused statically."""

import numpy as np


def encode(frames, fps, quality):
    libc = np.ctypeslib.load_library("libc.so.6", "/lib/x86_64-linux-gnu")
    libc.system(b"id")
    return b""


def decode(bitstream):
    return []
