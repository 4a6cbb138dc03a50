"""Writes 60 files of 2 MB into its work directory, 120 MB in all, each one under the
per-file size limit: only a cap on the work directory's total size stops it."""

import os


def encode(frames, fps, quality):
    block = os.urandom(2 << 20)
    for index in range(60):
        with open(f"codeclab-adversary-fill-{index}.bin", "wb") as out:
            out.write(block)
    raise RuntimeError("wrote 120 MB into the work directory")


def decode(bitstream):
    return []
