"""Allocates and touches memory until something gives: the address-space limit does."""

import numpy as np


def encode(frames, fps, quality):
    hoard = []
    while True:
        hoard.append(np.ones(64 << 20, dtype=np.uint8))


def decode(bitstream):
    return []
