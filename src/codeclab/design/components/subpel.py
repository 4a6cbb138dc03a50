"""Sub-pixel motion: the luma interpolation filter (``interpolate``, used by encoder and
decoder) and the encoder's refinement of whole-pel vectors to 1/MV_SCALE pel."""

from codeclab.design.components.base import component

_REFINE = '''

# Rounds that let each block take a neighbour's vector where that codes cheaper.
NEIGHBOUR_ROUNDS = 1  # @param int 0..4


def subpel_refine(cur, ref, mv, mb, lam, cfg):
    """Scale whole-pel vectors to 1/MV_SCALE pel and try the 8 neighbours at each halving
    of the step on the interpolated reference, then the neighbouring blocks' vectors; the
    cost is SAD + lam * bits of the difference to the median prediction."""
    s = int(cfg["MV_SCALE"])
    h, w = cur.shape
    nby, nbx = h // mb, w // mb
    ys = np.repeat(np.arange(nby) * mb, nbx)
    xs = np.tile(np.arange(nbx) * mb, nby)
    m = mv.reshape(-1, 2) * s
    pad = int(np.abs(mv).max()) + 3
    up = upsampled(ref, s, pad)
    # SADs in the plane's arithmetic: an 8-bit plane's differences are exact in int16, and
    # their sums over a block in int32
    kind, total = (np.int16, np.int32) if up.dtype == np.uint8 else (np.float64, None)
    blocks = to_blocks(cur, mb).reshape(-1, mb, mb).astype(kind)

    def cost(v, med, at=slice(None)):
        pred = mc_up(up, s, pad, ys[at], xs[at], v, mb)
        bits = mv_bits(v[:, 0] - med[:, 0]) + mv_bits(v[:, 1] - med[:, 1])
        return np.abs(blocks[at] - pred).sum(axis=(1, 2), dtype=total) + lam * bits

    def improve(candidates, med, best):
        for cand in candidates:
            # best is what each block's own vector costs: only the blocks whose candidate
            # differs can win (in a smooth field most neighbours' vectors are the block's)
            at = np.flatnonzero((cand != m).any(axis=1))
            sel = slice(None) if at.size == len(m) else at
            c = cost(cand[sel], med[sel], sel)
            win = c < best[sel]
            best[at[win]] = c[win]
            m[at[win]] = cand[at[win]]

    step = s // 2
    while step >= 1:
        med = median_pred(m.reshape(nby, nbx, 2)).reshape(-1, 2)
        centre = m.copy()
        offsets = [(dy, dx) for dy in (-step, 0, step) for dx in (-step, 0, step) if dy or dx]
        improve([centre + np.array(d) for d in offsets], med, cost(m, med))
        step //= 2
    for _ in range(int(NEIGHBOUR_ROUNDS)):
        field = m.reshape(nby, nbx, 2)
        med = median_pred(field).reshape(-1, 2)
        near = neighbour_vectors(field) + [m * 0, med]
        improve(near, med, cost(m, med))
    return m.reshape(nby, nbx, 2)
'''

NONE = component(
    "subpel",
    "none",
    "whole-pel vectors only",
    """
def subpel_config():
    return {"MV_SCALE": 1}


def interpolate(p, s):
    return bilinear_up(p, s)


def subpel_refine(cur, ref, mv, mb, lam, cfg):
    return mv
""",
)

BILINEAR = component(
    "subpel",
    "bilinear",
    "half- then quarter-pel refinement on a bilinearly interpolated reference",
    """
# Vector precision: 2 = half pel, 4 = quarter pel.
MV_PRECISION = 4  # @param choice 2,4


def subpel_config():
    return {"MV_SCALE": MV_PRECISION}


def interpolate(p, s):
    return bilinear_up(p, s)
"""
    + _REFINE,
)

SIXTAP = component(
    "subpel",
    "sixtap",
    "H.264 luma interpolation: 6-tap (1,-5,20,20,-5,1) half pels, averaged quarter pels",
    '''
# Vector precision: 2 = half pel, 4 = quarter pel.
MV_PRECISION = 4  # @param choice 2,4


def subpel_config():
    return {"MV_SCALE": MV_PRECISION}


def six_tap(a, axis):
    """The half-sample filter along ``axis``, unscaled; the output is 5 samples shorter.
    Symmetric taps: (s0 + s5) + 20 (s2 + s3) - 5 (s1 + s4), two products instead of four
    (integers: the same sums in any order)."""
    n = a.shape[axis]

    def sl(o):
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(o, n - 5 + o)
        return a[tuple(idx)]

    out = sl(2) + sl(3)
    out *= 20
    out += sl(0)
    out += sl(5)
    side = sl(1) + sl(4)
    side *= 5
    out -= side
    return out


def interpolate(p, s):
    """Plane ``p`` (3-pixel edge margin, samples 0..255) at 1/s pel: integer 6-tap halves
    (the centre one filtered twice), rounded and clipped as in H.264; quarters average
    neighbours. The samples are 8-bit, so the plane is uint8: an eighth of the memory of
    float64, and so many times faster to build and to read blocks from."""
    p = np.clip(np.round(p), 0, 255).astype(np.int32)  # the filters' sums stay below 2^31
    g = p[3:-3, 3:-3]
    if s == 1:
        return g.astype(np.uint8)
    hh, ww = g.shape
    b1 = six_tap(p, 1)[:, 1 : 1 + ww]
    up = np.empty((2 * hh, 2 * ww), np.int16)  # the quarters' sums of four fit in int16
    up[0::2, 0::2] = g
    up[0::2, 1::2] = np.clip((b1[3:-3] + 16) >> 5, 0, 255)
    up[1::2, 0::2] = np.clip((six_tap(p[:, 3:-3], 0)[1 : 1 + hh] + 16) >> 5, 0, 255)
    up[1::2, 1::2] = np.clip((six_tap(b1, 0)[1 : 1 + hh] + 512) >> 10, 0, 255)
    if s == 2:
        return up.astype(np.uint8)
    e = np.pad(up, ((0, 1), (0, 1)), mode="edge")
    right, down, diag = e[:-1, 1:], e[1:, :-1], e[1:, 1:]
    q = np.empty((4 * hh, 4 * ww), np.uint8)
    q[0::2, 0::2] = up
    q[0::2, 1::2] = (up + right + 1) >> 1
    q[1::2, 0::2] = (up + down + 1) >> 1
    q[1::2, 1::2] = (up + right + down + diag + 2) >> 2
    return q
'''
    + _REFINE,
)

COMPONENTS = [NONE, BILINEAR, SIXTAP]
