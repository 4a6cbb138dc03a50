"""Leaves the frames in /tmp at encode and picks them up at decode."""

import numpy as np

PATH = "/tmp/codeclab-adversary-frames.npy"


def encode(frames, fps, quality):
    np.save(PATH, np.stack([frame[0] for frame in frames]))
    return b"\x00"


def decode(bitstream):
    luma = np.load(PATH)
    chroma = np.full((luma.shape[1] // 2, luma.shape[2] // 2), 128, dtype=np.uint8)
    return [(y, chroma, chroma) for y in luma]
