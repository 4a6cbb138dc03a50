"""Imports os to read the source clip from disk: refused by the static policy."""

import os


def encode(frames, fps, quality):
    return b""


def decode(bitstream):
    return [os.listdir("/")]
