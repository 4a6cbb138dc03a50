"""Whole-pel motion estimation on luma: cost = SAD + lam * estimated vector bits."""

from codeclab.design.components.base import component

FULL = component(
    "motion",
    "full_search",
    "exhaustive search of every whole-pel offset within the range",
    '''
def motion_config():
    return {}


def motion_search(cur, ref, mb, rng, lam):
    """Best (dy, dx) per macroblock over the whole (2 rng + 1)^2 window, scanned row by row,
    the first of equal costs winning. The pictures are 8-bit, so SADs are exact integers.
    Successive elimination keeps it exact at a fraction of the work: the sum over a block's
    quadrants of |current sum - reference sum| is at most its SAD, so an offset whose bound
    already reaches the block's best cost in earlier rows of offsets, or exceeds its cost at
    a seed vector (the better of (0, 0) and the same search at half resolution), cannot win;
    only the other blocks' SADs are computed. A row of offsets (every dx of one dy) is taken
    at once, its first least cost winning where it beats the earlier rows' best."""
    h, w = cur.shape
    pad = rng + 1
    nby, nbx = h // mb, w // mb
    n = 2 * rng + 1
    c = np.clip(np.rint(cur), 0, 255).astype(np.uint8)
    rp = np.pad(np.clip(np.rint(ref), 0, 255).astype(np.uint8), pad, mode="edge")
    q = 2 if mb % 2 == 0 else 1
    s = mb // q
    # Quadrant sums and their differences in int16 where they fit (16-pel blocks), the
    # four |differences| summed unsigned: half the memory traffic of int32.
    kind, unsigned = (np.int16, np.uint16) if s * s * 255 < 2**15 else (np.int32, np.uint32)
    cur_sums = c.reshape(h // s, s, w // s, s).sum(axis=(1, 3), dtype=np.int32).astype(kind)
    at = window_sums(rp, s).astype(kind)[pad - rng :, pad - rng :]
    # [dy + rng, dx + rng, i, j]: the window sum at (pad + dy + i s, pad + dx + j s)
    span = ((h // s - 1) * s + 1, (w // s - 1) * s + 1)
    row_sums = np.lib.stride_tricks.sliding_window_view(at, span)[:n, :n, ::s, ::s]
    blocks = to_blocks(c, mb).reshape(-1, mb, mb)
    windows = np.lib.stride_tricks.sliding_window_view(rp, (mb, mb))
    ys = np.repeat(np.arange(nby) * mb + pad, nbx)
    xs = np.tile(np.arange(nbx) * mb + pad, nby)
    comp = np.array([mv_bits(np.array(d)) for d in range(-rng, rng + 1)])
    bits = lam * (comp[:, None] + comp[None, :])  # [dy + rng, dx + rng]

    def cost(idx, dy, dx):
        r, b = windows[ys[idx] + dy, xs[idx] + dx], blocks[idx]
        sad = (np.maximum(b, r) - np.minimum(b, r)).sum(axis=(1, 2), dtype=np.int64)
        return sad + bits[dy + rng, dx + rng]

    every = np.arange(nby * nbx)
    upper = cost(every, 0, 0)
    if mb % 2 == 0 and mb >= 8 and rng >= 4:
        seed = 2 * motion_search(halve(cur), halve(ref), mb // 2, rng // 2, lam / 4).reshape(-1, 2)
        upper = np.minimum(upper, cost(every, seed[:, 0], seed[:, 1]))
    best = np.full(nby * nbx, np.inf)
    mv = np.zeros((nby * nbx, 2), np.int64)
    for dy in range(-rng, rng + 1):
        d = np.abs(cur_sums - row_sums[dy + rng]).view(unsigned)
        if q > 1:
            d = d[:, 0::2] + d[:, 1::2]
            d = d[:, :, 0::2] + d[:, :, 1::2]
        bound = d.reshape(n, -1) + bits[dy + rng][:, None]
        k, idx = np.nonzero((bound < best) & (bound <= upper))
        if idx.size:
            # each block's first least cost over this row's candidates (k: dx + rng)
            touched, col = np.unique(idx, return_inverse=True)
            table = np.full((n, touched.size), np.inf)
            table[k, col] = cost(idx, dy, k - rng)
            first = np.argmin(table, axis=0)
            here = table[first, np.arange(touched.size)]
            better = here < best[touched]
            won = touched[better]
            best[won] = here[better]
            mv[won, 0], mv[won, 1] = dy, first[better] - rng
    return mv.reshape(nby, nbx, 2)


def halve(plane):
    """Mean of each 2 x 2 (the seed search's half-resolution picture)."""
    h, w = plane.shape
    return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def window_sums(plane, s):
    """Sum of every s x s window of ``plane`` (at its top-left corner), from an integral
    image: exact in int32 for 8-bit samples."""
    ii = np.zeros((plane.shape[0] + 1, plane.shape[1] + 1), np.int32)
    ii[1:, 1:] = plane.cumsum(0, dtype=np.int32).cumsum(1, dtype=np.int32)
    return ii[s:, s:] - ii[:-s, s:] - ii[s:, :-s] + ii[:-s, :-s]
''',
)

DIAMOND = component(
    "motion",
    "diamond",
    "diamond search with halving steps from the zero and left-neighbour vectors",
    '''
# Rounds of the smallest (one-pel) diamond after the big steps.
DIAMOND_ROUNDS = 3  # @param int 1..8


def motion_config():
    return {}


def motion_search(cur, ref, mb, rng, lam):
    """Per macroblock, walk a diamond of shrinking step towards lower cost."""
    h, w = cur.shape
    pad = rng + 1
    rp = np.pad(pels(ref), pad, mode="edge")
    blocks = to_blocks(pels(cur), mb).reshape(-1, mb, mb)
    nby, nbx = h // mb, w // mb
    ys = np.repeat(np.arange(nby) * mb, nbx)
    xs = np.tile(np.arange(nbx) * mb, nby)

    def cost(m):
        return sad_of(blocks, rp, pad, ys, xs, m, mb) + lam * (mv_bits(m[:, 0]) + mv_bits(m[:, 1]))

    mv = np.zeros((len(blocks), 2), np.int64)
    best = cost(mv)
    steps = []
    s = max(1, rng // 2)
    while s > 1:
        steps.append(s)
        s //= 2
    steps += [1] * int(DIAMOND_ROUNDS)
    for s in steps:
        for d in ((-s, 0), (s, 0), (0, -s), (0, s)):
            cand = np.clip(mv + np.array(d), -rng, rng)
            c = cost(cand)
            better = c < best
            best[better] = c[better]
            mv[better] = cand[better]
        left = np.roll(mv.reshape(nby, nbx, 2), 1, axis=1).reshape(-1, 2)
        c = cost(left)
        better = c < best
        best[better] = c[better]
        mv[better] = left[better]
    return mv.reshape(nby, nbx, 2)
''',
)

HIERARCHICAL = component(
    "motion",
    "hierarchical",
    "full search on a 4x decimated picture, then +-2 refinement at each finer level",
    '''
# Pyramid levels above full resolution (each halves width and height).
PYRAMID_LEVELS = 2  # @param int 1..3


def motion_config():
    return {}


def motion_search(cur, ref, mb, rng, lam):
    """Coarse-to-fine: exhaustive at the top of a mean pyramid, +-2 on the way down.
    Level l holds sums of 4^l pixels of the 8-bit pictures, integers in int16 (a quarter of
    float64's memory traffic), whose SADs are exactly 4^l times those of the means."""
    h, w = cur.shape
    levels = int(PYRAMID_LEVELS)
    while levels and (mb >> levels) < 2:
        levels -= 1
    pyr = [(pels(cur), pels(ref))]
    for _ in range(levels):
        c, r = pyr[-1]
        hh, ww = c.shape[0] // 2 * 2, c.shape[1] // 2 * 2
        pyr.append(tuple(
            p[:hh, :ww].reshape(hh // 2, 2, ww // 2, 2).sum(axis=(1, 3), dtype=np.int16)
            for p in (c, r)
        ))
    nby, nbx = h // mb, w // mb
    mv = np.zeros((nby, nbx, 2), np.int64)
    for level in range(levels, -1, -1):
        c, r = pyr[level]
        b = mb >> level
        lr = max(1, rng >> level)
        pad = lr + 2
        rp = np.pad(r, pad, mode="edge")
        blocks = to_blocks(c[: nby * b, : nbx * b], b).reshape(-1, b, b)
        ys = np.repeat(np.arange(nby) * b, nbx)
        xs = np.tile(np.arange(nbx) * b, nby)
        start = mv.reshape(-1, 2)
        win = lr if level == levels else 2  # every candidate lies within win of the centre
        centre = np.clip(start, -lr, lr)  # (a start beyond the range only where rng < 4)
        corner = centre + pad - win
        sads = window_sads(blocks, rp, ys + corner[:, 0], xs + corner[:, 1], win)
        # every candidate (rows of dy, then dx) of every block at once, each vector
        # component (offsets, blocks) on its own; the first of the least costs wins
        d = np.arange(-win, win + 1)[:, None]
        cy, cx = (np.clip(start[:, a] + d, -lr, lr) for a in (0, 1))
        table = mv_bits(np.arange(-lr, lr + 1) << level)
        bits = table[cy + lr][:, None] + table[cx + lr][None, :]
        n = np.arange(len(blocks))
        ky, kx = cy - centre[:, 0] + win, cx - centre[:, 1] + win
        cost = window_costs(sads, ky, kx, np.multiply(bits, lam, out=bits))
        iy, ix = np.divmod(np.argmin(cost.reshape(-1, len(n)), axis=0), len(d))
        out = np.stack([cy[iy, n], cx[ix, n]], axis=1)
        mv = out.reshape(nby, nbx, 2)
        if level:
            mv = np.clip(mv * 2, -rng, rng)
    return mv


def window_costs(sads, ky, kx, penalty):
    """``sads[ky[:, None], kx[None, :], n] + penalty`` (n: every block), written into
    ``penalty``: a block's candidate offsets ky, kx (offsets, blocks) are its window's own
    (0..2 win) unless the range clipped them, so only the clipped blocks are gathered."""
    own = np.arange(len(ky))[:, None]
    clipped = np.flatnonzero(((ky != own) | (kx != own)).any(axis=0))
    fixed = sads[ky[:, None, clipped], kx[None, :, clipped], clipped] + penalty[:, :, clipped]
    np.add(penalty, sads, out=penalty)
    penalty[:, :, clipped] = fixed
    return penalty
''',
)

PREDICTIVE = component(
    "motion",
    "predictive",
    "predictive zonal search (EPZS-like): the best of a coarse full-search vector, zero, the "
    "median prediction and the neighbours' vectors, then +-1 pel rounds; the cost counts "
    "the bits of the difference to the median prediction, as the vector will be coded",
    '''
# Passes over the picture: each re-predicts every vector from its neighbours' latest ones.
PREDICTIVE_PASSES = 2  # @param int 1..4
# Rounds of the +-1 pel square around the best candidate, per pass.
PREDICTIVE_ROUNDS = 2  # @param int 1..6


def motion_config():
    return {}


def motion_search(cur, ref, mb, rng, lam):
    """Per macroblock: candidates, then small steps, by SAD + lam * (bits of the vector
    minus the median of its neighbours'): a vector that follows its neighbours costs
    little to code, which a penalty on its length alone would not see."""
    h, w = cur.shape
    nby, nbx = h // mb, w // mb
    pad = rng + 1
    rp = np.pad(pels(ref), pad, mode="edge")
    blocks = to_blocks(pels(cur), mb).reshape(-1, mb, mb)
    ys = np.repeat(np.arange(nby) * mb, nbx)
    xs = np.tile(np.arange(nbx) * mb, nby)
    d = 4 if mb >= 8 else 1
    coarse = np.zeros((nby * nbx, 2), np.int64)
    if d > 1:
        # full search on pictures decimated by d finds large motions cheaply
        small = [p[: nby * mb, : nbx * mb].reshape(nby * mb // d, d, nbx * mb // d, d)
                 .mean(axis=(1, 3)) for p in (cur, ref)]
        best = np.full(nby * nbx, np.inf)
        r = max(1, rng // d)
        sp = np.pad(small[1], r, mode="edge")
        sb = to_blocks(small[0], mb // d).reshape(-1, mb // d, mb // d)
        sads = window_sads(sb, sp, ys // d, xs // d, r)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                c = sads[dy + r, dx + r]
                better = c < best
                best[better] = c[better]
                coarse[better] = (dy * d, dx * d)
    m = np.zeros((nby * nbx, 2), np.int64)
    for _ in range(int(PREDICTIVE_PASSES)):
        field = m.reshape(nby, nbx, 2)
        med = median_pred(field).reshape(-1, 2)

        def cost(v):
            bits = mv_bits(v[:, 0] - med[:, 0]) + mv_bits(v[:, 1] - med[:, 1])
            return sad_of(blocks, rp, pad, ys, xs, v, mb) + lam * bits

        candidates = [m, m * 0, med, coarse] + neighbour_vectors(field)
        best = np.full(nby * nbx, np.inf)
        out = m.copy()
        for cand in candidates:
            cand = np.clip(cand, -rng, rng)
            c = cost(cand)
            better = c < best
            best[better] = c[better]
            out[better] = cand[better]
        for _ in range(int(PREDICTIVE_ROUNDS)):
            centre = out.copy()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dy or dx:
                        cand = np.clip(centre + np.array([dy, dx]), -rng, rng)
                        c = cost(cand)
                        better = c < best
                        best[better] = c[better]
                        out[better] = cand[better]
        m = out
    return m.reshape(nby, nbx, 2)
''',
)

COMPONENTS = [FULL, DIAMOND, HIERARCHICAL, PREDICTIVE]
