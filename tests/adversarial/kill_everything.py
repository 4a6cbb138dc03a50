"""Sends SIGKILL to every process it may signal (kill -1), hoping to take the lab down.

It refuses to act as root (weak isolation as root could kill the whole machine); in the
sandbox it is nobody and sees no process but its own.
"""

import os
import signal


def encode(frames, fps, quality):
    if os.getuid() == 0:
        raise PermissionError("refusing to kill -1 as root")
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        raise ProcessLookupError("kill -1 found no process to signal") from None
    return b"\x00"


def decode(bitstream):
    raise RuntimeError("still here after kill -1")
