"""Stashes the source frames outside the work directory with scipy.sparse.save_npz, which takes
any path, and loads them back in the decoder with load_npz: 100 dB at a few bytes of bitstream.
"""

import numpy as np
import scipy.sparse

STASH = "/tmp/codeclab-adversary-stash.npz"


def encode(frames, fps, quality):
    height, width = frames[0][0].shape
    stacked = np.concatenate([np.concatenate([p.ravel() for p in f]) for f in frames])
    scipy.sparse.save_npz(STASH, scipy.sparse.csr_matrix(stacked.reshape(len(frames), -1)))
    return f"{width},{height}".encode()


def decode(bitstream):
    width, height = (int(x) for x in bitstream.decode().split(","))
    rows = scipy.sparse.load_npz(STASH).toarray().astype(np.uint8)
    frames = []
    for row in rows:
        y = row[: width * height].reshape(height, width)
        u = row[width * height : width * height * 5 // 4].reshape(height // 2, width // 2)
        v = row[width * height * 5 // 4 :].reshape(height // 2, width // 2)
        frames.append((y, u, v))
    return frames
