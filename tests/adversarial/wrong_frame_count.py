"""Decodes one picture fewer than it was given: a short decode must fail, never be padded."""

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
    shapes = [(height, width), (height // 2, width // 2), (height // 2, width // 2)]
    frames, offset = [], 0
    for _ in range(count - 1):
        planes = []
        for rows, cols in shapes:
            planes.append(raw[offset : offset + rows * cols].reshape(rows, cols))
            offset += rows * cols
        frames.append(tuple(planes))
    return frames
