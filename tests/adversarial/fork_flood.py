"""Forks children until the system refuses (at most 300, to stay bounded), then waits.

RLIMIT_NPROC is not enforced for root, so in weak isolation as root every fork succeeds; the
process-group kill at the wall clock still ends them all. In strong isolation the sandbox runs
as nobody in its own user namespace, the limit holds, and the PID namespace ends them all.
"""

import os
import time


def encode(frames, fps, quality):
    children = 0
    try:
        for _ in range(300):
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
            children += 1
    except OSError as exc:
        print(f"fork refused after {children} children: {exc}", flush=True)
    print(f"forked {children} children", flush=True)
    time.sleep(600)
    return b""


def decode(bitstream):
    return []
