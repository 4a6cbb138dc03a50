"""Leaves the frames in the home directory (and /root, and /var/tmp) for the decoder."""

import contextlib
import os

import numpy as np

NAME = "codeclab-adversary-home.npy"
PLACES = [os.path.expanduser("~"), "/root", "/var/tmp", "/work"]


def encode(frames, fps, quality):
    luma = np.stack([frame[0] for frame in frames])
    for place in PLACES:
        with contextlib.suppress(OSError):
            np.save(os.path.join(place, NAME), luma)
    return b"\x00"


def decode(bitstream):
    for place in PLACES:
        try:
            luma = np.load(os.path.join(place, NAME))
        except OSError:
            continue
        chroma = np.full((luma.shape[1] // 2, luma.shape[2] // 2), 128, dtype=np.uint8)
        return [(y, chroma, chroma) for y in luma]
    raise FileNotFoundError(f"no stash in any of {len(PLACES)} home-like places")
