"""Two sandboxes at once talk through POSIX record locks on a file both can only read.

The sender (any quality but 0) takes a read lock on one byte of /usr/bin/env for each set bit
of the first frame's 512 luma bytes, then one on the READY byte, and holds them until the
receiver (quality 0), running at the same time in another sandbox, has read the bits back
with F_GETLK and locked the ACK byte. Rungs of one experiment run at once, so one rung's
decoder could receive another rung's source frames this way. The seccomp filter refuses
both calls.
"""

import fcntl
import os
import struct
import time

SHARED = "/usr/bin/env"
MESSAGE_BYTES = 512
BASE = 4096  # byte offset of bit 0; locks may lie past the end of the file
READY = BASE - 1
ACK = BASE - 2
WAIT_SECONDS = 6.0
FLOCK = "hhqqi4x"  # struct flock on 64-bit Linux


def _locked(fd, offset):
    query = struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
    return struct.unpack(FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))[0] != fcntl.F_UNLCK


def _lock(fd, offset):
    fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, offset)


def _wait_for(fd, offset):
    deadline = time.monotonic() + WAIT_SECONDS
    while not _locked(fd, offset):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _send(fd, message):
    for index in range(len(message) * 8):
        if message[index // 8] >> (index % 8) & 1:
            _lock(fd, BASE + index)
    _lock(fd, READY)
    return b"acknowledged" if _wait_for(fd, ACK) else b"nobody listened"


def _receive(fd):
    if not _wait_for(fd, READY):
        return b""
    bits = [_locked(fd, BASE + index) for index in range(MESSAGE_BYTES * 8)]
    _lock(fd, ACK)
    return bytes(sum(bits[8 * k + b] << b for b in range(8)) for k in range(MESSAGE_BYTES))


def encode(frames, fps, quality):
    fd = os.open(SHARED, os.O_RDONLY)
    if quality == 0:
        return _receive(fd)
    return _send(fd, frames[0][0].tobytes()[:MESSAGE_BYTES])


def decode(bitstream):
    return []
