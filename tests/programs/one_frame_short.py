"""Decodes one frame fewer than it was given: the lab must fail it, naming frames."""

import struct
import zlib

import numpy as np


def encode(frames, fps, quality):
    height, width = frames[0][0].shape
    body = b"".join(plane.tobytes() for frame in frames for plane in frame)
    return struct.pack("<HHH", width, height, len(frames)) + zlib.compress(body)


def decode(bitstream):
    width, height, count = struct.unpack("<HHH", bitstream[:6])
    data = np.frombuffer(zlib.decompress(bitstream[6:]), dtype=np.uint8)
    frame_size = width * height * 3 // 2
    frames = []
    for index in range(count - 1):
        chunk = data[index * frame_size : (index + 1) * frame_size]
        y = chunk[: width * height].reshape(height, width)
        u = chunk[width * height : width * height * 5 // 4].reshape(height // 2, width // 2)
        v = chunk[width * height * 5 // 4 :].reshape(height // 2, width // 2)
        frames.append((y, u, v))
    return frames
