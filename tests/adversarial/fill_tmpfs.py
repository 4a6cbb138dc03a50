"""Fills /tmp with 8 MB files (a tmpfs is memory): the private /tmp is capped in size."""

import os


def encode(frames, fps, quality):
    block = os.urandom(8 << 20)
    for index in range(64):
        with open(f"/tmp/codeclab-adversary-fill-{index}", "wb") as out:
            out.write(block)
    raise RuntimeError("wrote 512 MB into /tmp")


def decode(bitstream):
    return []
