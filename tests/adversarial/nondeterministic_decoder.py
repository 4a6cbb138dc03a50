"""Adds unseeded noise at decode: each decode of the same bitstream gives other pictures.

Such a decoder's score cannot be reproduced by its published decoder, so it is no score.
The lab decodes twice in fresh processes and requires identical planes.
"""

import struct
import zlib

import numpy as np


def encode(frames, fps, quality):
    height, width = frames[0][0].shape
    raw = b"".join(plane.tobytes() for frame in frames for plane in frame)
    return struct.pack("<III", width, height, len(frames)) + zlib.compress(raw)


def decode(bitstream):
    width, height, count = struct.unpack_from("<III", bitstream)
    raw = np.frombuffer(zlib.decompress(bitstream[12:]), dtype=np.uint8)
    noise = np.random.default_rng()
    shapes = [(height, width), (height // 2, width // 2), (height // 2, width // 2)]
    frames, offset = [], 0
    for _ in range(count):
        planes = []
        for rows, cols in shapes:
            plane = raw[offset : offset + rows * cols].reshape(rows, cols).astype(np.int16)
            plane = plane + noise.integers(-2, 3, size=plane.shape)
            planes.append(np.clip(plane, 0, 255).astype(np.uint8))
            offset += rows * cols
        frames.append(tuple(planes))
    return frames
