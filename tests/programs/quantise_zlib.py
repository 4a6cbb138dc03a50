"""A tiny known codec for honesty tests: uniform quantisation of every sample, then zlib."""

import struct
import zlib

import numpy as np


def _step(quality):
    return max(1, (101 - quality) // 8)


def encode(frames, fps, quality):
    height, width = frames[0][0].shape
    step = _step(quality)
    body = b"".join(
        (plane // step).astype(np.uint8).tobytes() for frame in frames for plane in frame
    )
    return struct.pack("<HHHB", width, height, len(frames), step) + zlib.compress(body, 9)


def decode(bitstream):
    width, height, count, step = struct.unpack("<HHHB", bitstream[:7])
    data = np.frombuffer(zlib.decompress(bitstream[7:]), dtype=np.uint8)
    shapes = [(height, width), (height // 2, width // 2), (height // 2, width // 2)]
    frames, offset = [], 0
    for _ in range(count):
        planes = []
        for shape in shapes:
            size = shape[0] * shape[1]
            codes = data[offset : offset + size].reshape(shape).astype(np.int32)
            planes.append(np.clip(codes * step + step // 2, 0, 255).astype(np.uint8))
            offset += size
        frames.append(tuple(planes))
    return frames
