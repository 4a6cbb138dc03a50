"""Leaves a daemon behind: a double-forked, setsid()'d grandchild outside the process group.

The encoder itself returns normally, so no timeout fires; the grandchild must still die when
the encoder's sandbox ends (the PID namespace does this; a process-group kill cannot).
"""

import os
import time


def encode(frames, fps, quality):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(600)
        os._exit(0)
    os.wait()
    return b"\x00"


def decode(bitstream):
    raise RuntimeError("this program only leaves a daemon behind")
