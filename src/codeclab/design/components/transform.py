"""Block transforms: orthonormal bases, so quantiser steps mean the same in every one."""

from codeclab.design.components.base import component

DCT_MATRIX = '''

def transform_matrix(n):
    """Orthonormal DCT-II basis: row k is frequency k."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m
'''

DCT = component(
    "transform",
    "dct",
    "orthonormal DCT-II of 4, 8 or 16 points",
    """
# Transform block size in pixels (luma and chroma).
BLOCK_SIZE = 8  # @param choice 4,8,16


def transform_config():
    return {"BLOCK_SIZE": BLOCK_SIZE}
"""
    + DCT_MATRIX,
)

WHT = component(
    "transform",
    "wht",
    "Walsh-Hadamard transform in sequency order (additions only)",
    '''
# Transform block size in pixels (luma and chroma).
BLOCK_SIZE = 8  # @param choice 4,8,16


def transform_config():
    return {"BLOCK_SIZE": BLOCK_SIZE}


def transform_matrix(n):
    """Orthonormal Walsh-Hadamard basis, rows sorted by sign changes (sequency)."""
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    changes = (np.diff(np.sign(h), axis=1) != 0).sum(axis=1)
    return h[np.argsort(changes, kind="stable")] / math.sqrt(n)
''',
)

INT4 = component(
    "transform",
    "int4",
    "H.264 4x4 integer core transform, row norms folded into the quantiser (orthonormal)",
    '''
def transform_config():
    return {"BLOCK_SIZE": 4}


def transform_matrix(n):
    """H.264's integer matrix [[1,1,1,1],[2,1,-1,-2],[1,-1,-1,1],[1,-2,2,-1]], rows scaled
    to unit norm (the scaling H.264 folds into its quantiser tables)."""
    if n != 4:
        raise ValueError("the H.264 integer transform is 4x4")
    m = np.array([[1, 1, 1, 1], [2, 1, -1, -2], [1, -1, -1, 1], [1, -2, 2, -1]], np.float64)
    return m / np.sqrt((m * m).sum(axis=1, keepdims=True))
''',
)

ADAPTIVE_DCT = component(
    "transform",
    "adaptive_dct",
    "DCT; each coded macroblock's residual luma in BLOCK_SIZE or 4x4 transforms, whichever "
    "costs less (SSD + lambda * bits), as H.264 High profile's transform_size_8x8_flag",
    """
# Transform block size in pixels (intra pictures, chroma, and the larger residual choice).
BLOCK_SIZE = 8  # @param choice 8,16
# Lagrange multiplier (times step^2) of the per-macroblock transform size decision.
TX_LAMBDA = 0.12  # @param float 0.0..1.0


def transform_config():
    return {"BLOCK_SIZE": BLOCK_SIZE, "SMALL_BLOCK": 4, "TX_LAMBDA": TX_LAMBDA}
"""
    + DCT_MATRIX,
)

COMPONENTS = [DCT, WHT, INT4, ADAPTIVE_DCT]
