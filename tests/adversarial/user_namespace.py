"""Tries to create a user namespace (to gain capabilities in it) through ctypes' unshare."""

import ctypes
import ctypes.util
import os

CLONE_NEWUSER = 0x10000000


def encode(frames, fps, quality):
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.unshare(CLONE_NEWUSER) == 0:
        raise RuntimeError("created a user namespace")
    error = ctypes.get_errno()
    raise PermissionError(f"could not create a user namespace: {os.strerror(error)}")


def decode(bitstream):
    return []
