"""Compose codec programs from components: one readable, self-contained source file.

A composed program is the prelude (imports), the shared core (block helpers, motion
compensation from an interpolated reference, median vector prediction, cost estimates), one
component per slot, then the skeleton that wires them into ``encode`` and ``decode``: the
GOP component's pictures in coding order (I, P with skip decisions, B with bi-prediction,
intra macroblocks in both where the mode component offers them),
each scene a GOP of its own (the encoder finds cuts, a flag per picture says where), through
one entropy coder whose statistics span the whole sequence. Its second line
records the composition::

    # codeclab-components: transform=dct intra=directional motion=hierarchical ...

which :func:`parse_components` reads back, so the designer can swap one slot's component
(:func:`swap`) or cross two programs over (:func:`crossover`) while keeping the
``# @param`` values the parents had evolved. The bitstream header carries the picture size,
frame count, rate and quality; encoder and decoder derive every other number (steps, each
component's ``*_config()``) from the program's constants by ``program_config(quality)``, and
a CRC-32 of those numbers in the header makes a decoder with other constants refuse the
stream instead of misreading it.
"""

from __future__ import annotations

import re

from codeclab.design.components import PRELUDE, SLOTS, Component, choices, get
from codeclab.design.params import parse_params, set_params

MARKER = "# codeclab-components:"
_MARKER_LINE = re.compile(r"^# codeclab-components:(?P<body>.*)$", re.MULTILINE)

# The composition that won on the mean BD-rate (PSNR-Y vs x264 over its CRF 22..37 range)
# of the natural set's three train clips (cars, carphone, bikes; 16 frames each). The
# skeleton's scene cuts (SCENE_CUT) are on for every composition: +34.0 % -> +23.8 % there;
# intra macroblocks in P and B pictures (mode=intra, with SKIP/DIRECT decisions that settle):
# +23.8 % -> +8.2 % (cars +6.6 -> +6.0, carphone +5.8 -> +3.3, bikes +59.1 -> +15.4);
# intra modes coded in the context of the above and left blocks' modes, and chosen paying
# their bits there: +8.2 % -> +4.9 % (cars +4.4, carphone +2.7, bikes +7.6).
DEFAULT = {
    "transform": "adaptive_dct",
    "intra": "directional",
    "motion": "hierarchical",
    "subpel": "sixtap",
    "mode": "intra",
    "quant": "rdoq",
    "entropy": "lean_range",
    "loopfilter": "deblock",
    "gop": "pyramid",
}
# An intra-only composition, the composed counterpart of the intra_dct seed.
INTRA_DEFAULT = {**DEFAULT, "gop": "intra_only", "motion": "diamond", "subpel": "none"}

CORE = '''
def zigzag(n):
    """Flat positions (u * n + v) of an n x n block in JPEG zig-zag order."""
    order = sorted(
        ((u, v) for u in range(n) for v in range(n)),
        key=lambda p: (p[0] + p[1], p[0] if (p[0] + p[1]) % 2 else p[1]),
    )
    return np.array([u * n + v for u, v in order], dtype=np.int64)


def to_blocks(plane, b):
    """(H, W) -> (H/b, W/b, b, b)."""
    h, w = plane.shape
    return plane.reshape(h // b, b, w // b, b).transpose(0, 2, 1, 3)


def from_blocks(blocks):
    nby, nbx, b, _ = blocks.shape
    return blocks.transpose(0, 2, 1, 3).reshape(nby * b, nbx * b)


def pad_plane(plane, h, w):
    return np.pad(plane, ((0, h - plane.shape[0]), (0, w - plane.shape[1])), mode="edge")


def mv_bits(d):
    """Approximate bits of a signed Exp-Golomb vector component."""
    a = np.abs(np.asarray(d, np.float64))
    return 1.0 + 2.0 * np.floor(np.log2(2.0 * a + 1.0))


def windows(plane, size, s=1):
    """View (rows, cols, size, size) of ``plane`` whose [y, x] is the block at top-left
    corner (y, x) sampled every ``s`` pixels: indexing it with arrays of corners copies
    whole blocks, several times faster than indexing ``plane`` pixel by pixel."""
    span = (size - 1) * s + 1
    return np.lib.stride_tricks.sliding_window_view(plane, (span, span))[:, :, ::s, ::s]


def gather(rp, ys, xs, size):
    """Blocks (N, size, size) of padded plane ``rp`` with top-left corners (ys, xs)."""
    return windows(rp, size)[ys, xs]


def pels(plane):
    """A picture's 8-bit samples as int16: SADs of them are exact integers, computed at a
    quarter of float64's memory traffic."""
    return np.rint(plane).astype(np.int16)


def window_sads(blocks, rp, ys, xs, r):
    """SADs (2r + 1, 2r + 1, N) of ``blocks`` (N, b, b) against the blocks of ``rp`` at
    corners (ys + dy, xs + dx), dy and dx in 0..2r: one gather of each block's
    neighbourhood serves every offset of a search window."""
    b = blocks.shape[1]
    # pixels first, blocks last: each step below is a vector operation over all blocks
    near = gather(rp, ys, xs, b + 2 * r).transpose(1, 2, 0).copy()
    own = blocks.transpose(1, 2, 0).copy()
    out = np.empty((2 * r + 1, 2 * r + 1, len(blocks)))
    # int16 samples' SADs of blocks below 256 x 256 fit int32: the int64 sums, summed faster
    diff = np.empty(own.shape, np.result_type(own, near))
    total = np.int32 if diff.dtype in (np.int8, np.int16) and b < 256 else None
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            np.abs(np.subtract(own, near[dy : dy + b, dx : dx + b], out=diff), out=diff)
            out[dy, dx] = diff.sum(axis=(0, 1), dtype=total)
    return out


def sad_of(blocks, rp, pad, ys, xs, mv, b):
    """SAD of ``blocks`` against whole-pel displaced blocks of the padded reference."""
    pred = gather(rp, ys + pad + mv[:, 0], xs + pad + mv[:, 1], b)
    return np.abs(blocks - pred).sum(axis=(1, 2))


def bilinear_up(p, s):
    """Plane ``p`` (with a 3-pixel edge margin) interpolated bilinearly at 1/s pel: sample
    (i, j) is position (i / s, j / s) of the plane inside the margin. The s^2 times larger
    plane is float32: 8-bit samples' interpolations (multiples of 1 / s^2) are exact in it,
    and writing half the memory of float64 makes it three times faster to build."""
    g = p[3:-2, 3:-2]
    a, b, c, d = g[:-1, :-1], g[:-1, 1:], g[1:, :-1], g[1:, 1:]
    out = np.empty((a.shape[0] * s, a.shape[1] * s), np.float32)
    if s in (1, 2, 4, 8) and np.array_equal(g, np.clip(np.rint(g), 0, 255)):
        return bilinear_up_8bit(g.astype(np.int16), s, out)
    for fy in range(s):
        for fx in range(s):
            out[fy::s, fx::s] = (
                (s - fx) * (s - fy) * a + fx * (s - fy) * b + (s - fx) * fy * c + fx * fy * d
            ) / (s * s)
    return out


def bilinear_up_8bit(g, s, out):
    """:func:`bilinear_up` of 8-bit samples ``g`` (int16) into ``out``: each phase's weighted
    sum is an integer below 2^15, so rows then columns in int16 give the very sums of the
    float64 formula, at a quarter of its traffic, and with s a power of two their division
    by s^2 is exact in float32 as in float64: the very values. The column phases come
    side by side in one array (sample j's s phases at j s .. j s + s - 1, the plane's own
    column order), so each row phase is whole rows of ``out``, written in order."""
    h, w = g.shape[0] - 1, g.shape[1] - 1
    f = np.arange(s, dtype=np.int16)
    cols = np.multiply(g[:, :-1, None], s - f)  # (h + 1, w, s): the column phases
    cols += g[:, 1:, None] * f
    cols = cols.reshape(h + 1, w * s)
    phase = out.reshape(h, s, w * s)
    sums = np.empty((h, w * s), np.int16)
    for fy in range(s):
        np.multiply(cols[:-1], s - fy, out=sums)
        sums += fy * cols[1:]
        np.divide(sums, s * s, out=phase[:, fy], dtype=np.float32)
    return out


def bilinear_at(p, ry, rx, b, s):
    """Blocks (N, b, b) of ``bilinear_up(p, s)`` read at rows ``ry`` + i s and columns
    ``rx`` + j s, computed from ``p`` itself with the same arithmetic (identical values)
    instead of building the s^2 times larger plane."""
    near = windows(p[3:-2, 3:-2], b + 1)[ry // s, rx // s]  # one gather for all four
    fy, fx = (ry % s)[:, None, None], (rx % s)[:, None, None]

    def at(dy, dx, wy, wx):  # an integer p (8-bit samples) sums exactly in its own type
        return (wy * wx).astype(near.dtype) * near[:, dy : dy + b, dx : dx + b]

    return (
        at(0, 0, s - fy, s - fx) + at(0, 1, s - fy, fx) + at(1, 0, fy, s - fx) + at(1, 1, fy, fx)
    ) / (s * s)


# The latest luma interpolations: [key, pad, plane, arrays seen with that content], newest
# last, at most UP_KEEP.
UP_CACHE = []
UP_KEEP = 2


def upsampled(ref, s, pad):
    """Luma ``ref`` edge-padded by ``pad`` and interpolated at 1/s pel by the subpel
    component's filter. A picture's search, decisions and prediction read the same
    reference many times, so the latest few are kept by content; a wider margin holds the
    same samples, so a narrower request is a view into it (never write to the result)."""
    item, key = up_entry(ref, s)
    if item is None or item[1] < pad:
        up = interpolate(np.pad(np.asarray(ref, np.float64), pad + 3, mode="edge"), s)
        UP_CACHE[:] = [i for i in UP_CACHE if i[0] != key][-(UP_KEEP - 1) :]
        item = [key, pad, up, [ref]]
    else:
        UP_CACHE[:] = [i for i in UP_CACHE if i is not item]
    UP_CACHE.append(item)
    o = (item[1] - pad) * s
    h, w = (np.shape(ref)[0] + 2 * pad) * s, (np.shape(ref)[1] + 2 * pad) * s
    return item[2][o : o + h, o : o + w]


def up_entry(ref, s):
    """The UP_CACHE entry of ``ref`` at 1/s pel (or None) and its key. An array seen before
    (the same object: a reference is never written once made) finds it without a CRC of its
    samples (7 MB at 720p, several times a picture); another one with the same samples is
    remembered with it (the last few)."""
    for item in UP_CACHE:
        if item[0][0] == s and any(ref is r for r in item[3]):
            return item, item[0]
    key = (s, np.shape(ref), zlib.crc32(np.ascontiguousarray(ref, np.float64)))
    for item in UP_CACHE:
        if item[0] == key:
            item[3][:] = item[3][-3:] + [ref]
            return item, key
    return None, key


def mc_up(up, s, pad, ys, xs, mv, b):
    """Prediction blocks (N, b, b) at top-left corners (ys, xs) displaced by ``mv`` (1/s
    pel), read from ``up`` = :func:`upsampled` (ref, s, pad), in the plane's type (the
    subpel component may keep 8-bit samples as uint8)."""
    ry = (ys + pad) * s + mv[:, 0]
    rx = (xs + pad) * s + mv[:, 1]
    return windows(up, b, s)[ry, rx]


def motion_compensate(ref, mv, b, s, luma=True, last=None):
    """Prediction plane from ``ref`` for the block vector field ``mv`` (1/s pel): luma
    from the subpel component's interpolation, chroma bilinear. ``last``: (field, plane) of
    an earlier call with this reference; only the blocks whose vector differs from that
    field's are computed (a block's samples depend on its vector alone), the others copied."""
    nby, nbx = mv.shape[:2]
    if last is None:
        ys = np.repeat(np.arange(nby) * b, nbx)
        xs = np.tile(np.arange(nbx) * b, nby)
        pred = compensate_blocks(ref, mv.reshape(-1, 2), ys, xs, b, s, luma)
        return from_blocks(pred.reshape(nby, nbx, b, b)).astype(np.float64, copy=False)
    plane = last[1].copy()
    ys, xs = np.nonzero((mv != last[0]).any(axis=2))
    if ys.size:
        pred = compensate_blocks(ref, mv[ys, xs], ys * b, xs * b, b, s, luma)
        plane.reshape(nby, b, nbx, b)[ys, :, xs, :] = pred
    return plane


def compensate_blocks(ref, v, ys, xs, b, s, luma):
    """Prediction blocks (N, b, b) at top-left corners (ys, xs) of ``ref`` displaced by
    vectors ``v`` (N, 2) (see :func:`motion_compensate`)."""
    pad = int(np.abs(v).max()) // s + 2
    if luma:
        return mc_up(upsampled(ref, s, pad), s, pad, ys, xs, v, b)
    ref = np.asarray(ref)
    p = np.pad(ref.astype(np.int32 if ref.dtype == np.uint8 else np.float64), pad + 3, "edge")
    return bilinear_at(p, (ys + pad) * s + v[:, 0], (xs + pad) * s + v[:, 1], b, s)


def mv_walk(role, mv=None, diffs=None):
    """Vectors in raster order, each predicted by the median of its left, above and
    above-right neighbours (above-left at the right edge, left only on the first row). By
    ``role``: 0 takes the prediction (a skipped block), 1 adds its coded difference, 2 copies
    the vector of the top-left block of its 2 x 2 group (the rest of a macroblock that has
    one vector on a grid of half-size blocks). Encoder: ``mv`` given, returns (final
    vectors, differences of the coded ones); decoder: ``diffs``. Each vector depends on the
    one before it, so the walk is plain Python on Python integers (numpy's per-call cost
    on two-element arrays is larger than the work)."""
    nmy, nmx = role.shape
    roles = role.tolist()
    given = None if mv is None else mv.tolist()
    coded = None if diffs is None else diffs.tolist()
    final = [[(0, 0)] * nmx for _ in range(nmy)]
    out = []
    for y in range(nmy):
        row, above = final[y], final[y - 1]
        for x in range(nmx):
            kind = roles[y][x]
            if kind == 2:
                row[x] = final[y - y % 2][x - x % 2]
                continue
            ly, lx = row[x - 1] if x else (0, 0)
            if y == 0:
                py, px = ly, lx
            else:
                ay, ax = above[x]
                ry, rx = above[x + 1] if x + 1 < nmx else (above[x - 1] if x else (0, 0))
                # The medians, by comparisons (the builtins min and max cost more).
                lo, hi = (ly, ay) if ly < ay else (ay, ly)
                py = lo if ry < lo else hi if ry > hi else ry
                lo, hi = (lx, ax) if lx < ax else (ax, lx)
                px = lo if rx < lo else hi if rx > hi else rx
            if kind == 0:
                row[x] = (py, px)
            elif given is not None:
                vy, vx = given[y][x]
                row[x] = (vy, vx)
                out.append((vy - py, vx - px))
            else:
                dy, dx = coded[len(out)]
                row[x] = (py + dy, px + dx)
                out.append((dy, dx))
    return np.array(final, np.int64).reshape(nmy, nmx, 2), np.array(out, np.int64).reshape(-1, 2)


def neighbour_vectors(field):
    """Every block's left, right, above and below neighbour's vector (at the edges its own),
    each as (blocks, 2): candidates that keep a field smooth and cheap to code."""
    nby, nbx = field.shape[:2]
    rows, cols = np.arange(nby), np.arange(nbx)
    near = (
        field[:, np.maximum(cols - 1, 0)],
        field[:, np.minimum(cols + 1, nbx - 1)],
        field[np.maximum(rows - 1, 0)],
        field[np.minimum(rows + 1, nby - 1)],
    )
    return [n.reshape(-1, 2).copy() for n in near]


def median_pred(mv):
    """The vector :func:`mv_walk` predicts at every block, given the final field ``mv``."""
    left = np.zeros_like(mv)
    left[:, 1:] = mv[:, :-1]
    above = np.zeros_like(mv)
    above[1:] = mv[:-1]
    ar = np.zeros_like(mv)
    ar[1:, :-1] = mv[:-1, 1:]
    if mv.shape[1] > 1:
        ar[1:, -1] = mv[:-1, -2]
    med = left + above + ar - np.maximum(np.maximum(left, above), ar)
    med -= np.minimum(np.minimum(left, above), ar)
    med[0] = left[0]
    return med


def per_tile(pixels, t):
    """Sums of a pixel map over t x t tiles."""
    h, w = pixels.shape
    return pixels.reshape(h // t, t, w // t, t).sum(axis=(1, 3))


def tile_rate(rate, nbx, b, t):
    """Sums over t x t pixel tiles of per-block estimates ``rate`` (b x b blocks, rows of
    ``nbx``); a block larger than a tile shares its bits equally among the tiles it covers."""
    grid = rate.reshape(-1, nbx)
    if t >= b:
        return per_tile(grid, t // b)
    k = b // t
    return np.kron(grid, np.ones((k, k))) / (k * k)


def transform_plane(plane, m, b, zz):
    n = b * b
    blocks = to_blocks(plane, b)
    nby, nbx = blocks.shape[:2]
    return (m @ blocks @ m.T).reshape(nby * nbx, n)[:, zz], nbx


def estimate_transform(blocks, m):
    """``m @ blocks @ m.T`` of a stack of b x b blocks as one product with kron(m, m):
    several times faster than as many small products and equal to within rounding (1e-13),
    so for the encoder's estimates only, never for what the decoder reconstructs."""
    b = m.shape[0]
    return (blocks.reshape(-1, b * b) @ np.kron(m, m).T).reshape(blocks.shape)


def inverse_plane(coef, m, b, unzz, shape):
    """The plane of the inverse transforms of ``coef`` (blocks, b * b in zig-zag order).
    Most residual blocks quantise to nothing: only the others are transformed."""
    nby, nbx = shape[0] // b, shape[1] // b
    some = coef.any(axis=1)
    out = np.zeros((nby * nbx, b, b))
    out[some] = m.T @ coef[some][:, unzz].reshape(-1, b, b) @ m
    return from_blocks(out.reshape(nby, nbx, b, b))


def level_rate(levels):
    """Estimated bits of each block of levels: a flag, the end, the nonzero magnitudes."""
    a = np.abs(levels)
    nz = a > 0
    eob = np.where(nz.any(axis=1), levels.shape[1] - np.argmax(nz[:, ::-1], axis=1), 0)
    mags = np.zeros(a.shape)
    mags[nz] = 3.0 + 2.0 * np.log2(a[nz])  # most levels are 0
    return 1.0 + 2.0 * np.log2(1.0 + eob) + mags.sum(1)


def block_mask(coded, mbk, b):
    """Which b x b blocks of a plane touch a coded macroblock (mbk x mbk pixels each)."""
    pixels = np.kron(coded, np.ones((mbk, mbk), bool))
    return to_blocks(pixels, b).any(axis=(2, 3)).reshape(-1)


# inter_costs' latest prediction of each plane at each block size and precision ((k, b, s):
# (reference plane, field, plane)) and its latest costs with a residual ([src, ref, sizes,
# field, dist, bits, recs]).
INTER_PREDS = {}
INTER_COSTS = []


def inter_costs(src, ref, field, cfg, residual=True, recs=None):
    """Per macroblock: distortion (SSD over Y, U, V) of predicting with vector ``field``
    and, with ``residual``, coding the residual; and its estimated bits (for decisions).
    ``recs``, a list, receives the reconstructed planes (never write to them). A P
    picture's skip and split decisions cost the same coded field twice (the second call is
    the first's result) and inherited fields that differ in a few blocks (only those are
    compensated again)."""
    sizes = (int(cfg["MB_SIZE"]), int(cfg["MV_SCALE"]), int(cfg["BLOCK_SIZE"]))
    memo = INTER_COSTS[0] if INTER_COSTS else None
    if residual and memo and memo[0] is src and memo[1] is ref and memo[2] == sizes:
        if np.array_equal(memo[3], field):
            if recs is not None:
                recs.extend(memo[6])
            return memo[4].copy(), memo[5].copy()
    if not residual and recs is None:
        dist = motion_distortion(src, (ref,), (field,), sizes[:2], INTER_SSD)
        return dist, np.zeros(dist.shape)
    preds = [inter_prediction(ref[k], field, k, sizes) for k in range(3)]
    if not residual:
        return prediction_costs(src, preds, cfg, 1.0, residual, recs)
    made = []
    dist, bits = prediction_costs(src, preds, cfg, 1.0, residual, made)
    for plane in made:
        plane.flags.writeable = False
    INTER_COSTS[:] = [[src, ref, sizes, field.copy(), dist.copy(), bits.copy(), made]]
    if recs is not None:
        recs.extend(made)
    return dist, bits


# inter_costs' latest [src, references, sizes, fields, per-macroblock SSD of each plane].
INTER_SSD = []


def motion_distortion(src, refs, fields, sizes, memo):
    """Per macroblock: SSD over Y, U, V of predicting from ``refs`` with vectors ``fields``
    (one of each, or two: the average of both predictions, as DIRECT) (sizes: block size,
    vector precision). A macroblock's SSD depends on its own vectors: from ``memo``'s (a
    list, the latest call's), only those of the macroblocks whose vectors differ are
    computed (8-bit samples and their interpolations, multiples of 1/128, square and sum
    exactly in any order)."""
    last = memo[0] if memo else None
    same = last and len(last[1]) == len(refs) and all(a is b for a, b in zip(last[1], refs))
    if same and last[0] is src and last[2] == sizes:
        ys, xs = np.nonzero(np.any([(f != g).any(axis=2) for f, g in zip(fields, last[3])], axis=0))
        ssd = [plane.copy() for plane in last[4]]
    else:
        ys, xs = np.nonzero(np.ones(fields[0].shape[:2], bool))
        ssd = [np.zeros(fields[0].shape[:2]) for _ in range(3)]
    if ys.size:
        for k in range(3):
            mb, s = (sizes[0], sizes[1]) if k == 0 else (sizes[0] // 2, 2 * sizes[1])
            each = [
                compensate_blocks(r[k], f[ys, xs], ys * mb, xs * mb, mb, s, k == 0)
                for r, f in zip(refs, fields)
            ]
            pred = each[0] if len(each) == 1 else (each[0].astype(float) + each[1]) / 2
            ssd[k][ys, xs] = ((to_blocks(src[k], mb)[ys, xs] - pred) ** 2).sum(axis=(1, 2))
    memo[:] = [[src, refs, sizes, [f.copy() for f in fields], ssd]]
    dist = np.zeros(fields[0].shape[:2])
    for plane in ssd:  # Y, U, V: the order prediction_costs adds them in
        dist += plane
    return dist


def inter_prediction(ref, field, k, sizes):
    """Plane ``k``'s prediction from ``ref`` with vectors ``field`` (see
    :func:`inter_costs`): from the latest one of the same reference and block size, only
    the blocks whose vectors differ are computed."""
    mb, s = sizes[0] if k == 0 else sizes[0] // 2, sizes[1] if k == 0 else 2 * sizes[1]
    last = INTER_PREDS.get((k, mb, s))
    last = last[1:] if last and last[0] is ref else None
    plane = motion_compensate(ref, field, mb, s, k == 0, last)
    plane.flags.writeable = False
    INTER_PREDS[k, mb, s] = (ref, field.copy(), plane)
    return plane


def prediction_costs(src, preds, cfg, step_ratio, residual=True, recs=None):
    """Per macroblock: SSD over Y, U, V of the prediction planes ``preds`` (and, with
    ``residual``, of coding the residual at the step times ``step_ratio``) and the residual's
    estimated bits; ``recs``, a list, receives the reconstructed planes. Each macroblock's
    residual is coded on its own, so a plane goes in bands of rows of about BAND_BLOCKS
    blocks, each band's intermediate planes still in the cache when the next step reads
    them."""
    b, mb = int(cfg["BLOCK_SIZE"]), int(cfg["MB_SIZE"])
    zz = zigzag(b)
    bases = (transform_matrix(b), zz, np.argsort(zz))
    shape = (src[0].shape[0] // mb, src[0].shape[1] // mb)
    dist = np.zeros(shape)
    bits = np.zeros(shape)
    for k in range(3):
        mbk, pred = (mb if k == 0 else mb // 2), preds[k]
        rec = pred
        if residual:
            step = (cfg["STEP_Y"] if k == 0 else cfg["STEP_C"]) * step_ratio
            steps = quant_steps(b, step, cfg)
            rec = np.empty(pred.shape)
            unit = max(b, mbk)  # rows of whole blocks and whole macroblocks
            per_unit = (pred.shape[1] // b) * (unit // b)
            for lo, hi in bands(pred.shape[0] // unit, -(-BAND_BLOCKS // per_unit)):
                y, rows = lo * unit, (hi - lo) * unit
                band, tiles = slice(y, y + rows), slice(y // mbk, (y + rows) // mbk)
                lv, rec[band] = residual_band(src[k][band], pred[band], b, bases, steps, cfg)
                bits[tiles] += tile_rate(level_rate(lv), pred.shape[1] // b, b, mbk)
                dist[tiles] += per_tile((src[k][band] - rec[band]) ** 2, mbk)
        else:
            dist += per_tile((src[k] - rec) ** 2, mbk)
        if recs is not None:
            recs.append(rec)
    return dist, bits


# Blocks per band of prediction_costs (at least a few hundred: a matrix product of fewer
# rows may take another path in BLAS, with other rounding).
BAND_BLOCKS = 2048


def bands(count, size):
    """Rows 0..count-1 in runs (lo, hi) of at least ``size`` rows, as even as can be (one
    run below twice ``size``: a small picture is one band, and no band is a small rest)."""
    n = max(1, count // max(1, size))
    return [(i * count // n, (i + 1) * count // n) for i in range(n)]


def residual_band(src, pred, b, bases, steps, cfg):
    """Encoder: the levels (blocks, b * b) of the residual ``src`` - ``pred`` (rows of whole
    b x b blocks) transformed (bases: the matrix, zig-zag order and its inverse) and
    quantised at ``steps``, and the reconstruction they give."""
    m, zz, unzz = bases
    coef = estimate_transform(to_blocks(src - pred, b), m).reshape(-1, b * b)[:, zz]
    lv = quantise(coef, steps, False, cfg)
    return lv, pred + inverse_plane(dequantise(lv, steps), m, b, unzz, pred.shape)


def settle(chosen, costs, other):
    """Encoder: ``chosen`` (blocks that inherit their vectors from their neighbours) less
    those that no longer cost less than ``other`` once the vectors they really inherit,
    given the final choice, are known; dropping one changes what the others inherit, so
    until none is dropped (each round only drops: it ends)."""
    while chosen.any():
        worse = chosen & (costs(chosen) >= other)
        if not worse.any():
            break
        chosen = chosen & ~worse
    return chosen
'''

SKELETON = '''
# Global multiplier of the quantiser step at every quality.
QP_SCALE = 1.0  # @param float 0.25..4.0
# Quality points per doubling of the quantiser step (where the ladder of qualities lands).
QUALITY_OCTAVE = 12.0  # @param float 6.0..24.0
# Quantiser step of intra pictures relative to P pictures.
I_QP_RATIO = 0.75  # @param float 0.4..1.5
# Chroma quantiser step relative to the luma step.
CHROMA_QP_RATIO = 1.2  # @param float 0.5..3.0
# Macroblock (motion block) size in luma pixels.
MB_SIZE = 16  # @param choice 8,16,32
# Motion search range in whole luma pixels (camera motion on natural clips needs 16-24).
SEARCH_RANGE = 24  # @param int 2..24
# Motion cost: SAD + MOTION_LAMBDA * step * vector bits.
MOTION_LAMBDA = 1.0  # @param float 0.0..8.0
# A picture starts a new scene (an intra picture, a GOP of its own that nothing before it
# references) when its best motion-compensated prediction error from the picture before it
# exceeds SCENE_CUT times its intra (mean-removed) error, both at quarter size; 0: never.
SCENE_CUT = 0.8  # @param float 0.0..4.0

MAGIC = b"CLCP"
# magic, version, width, height, frames, fps, quality, CRC-32 of program_config(quality)
HEADER = struct.Struct("<4sBIIIdBI")


def program_config(quality):
    """Everything the decoder needs, by name: the skeleton's numbers and each slot's."""
    step = QP_SCALE * 2.0 ** ((100 - quality) / QUALITY_OCTAVE)
    cfg = {"MB_SIZE": MB_SIZE, "SEARCH_RANGE": SEARCH_RANGE, "STEP_Y": step,
           "STEP_C": step * CHROMA_QP_RATIO, "I_QP_RATIO": I_QP_RATIO, "SCENE_CUT": SCENE_CUT}
    for part in (transform_config, intra_config, motion_config, subpel_config, mode_config,
                 quant_config, entropy_config, loopfilter_config, gop_config):
        cfg.update(part())
    return {k: float(v) for k, v in cfg.items()}


def config_crc(cfg):
    """CRC-32 of every named number of ``cfg``: the header carries only the quality, the
    decoder derives the rest from its own constants and checks they are the encoder's."""
    return zlib.crc32(repr(sorted(cfg.items())).encode())


def geometry(cfg, h, w):
    b, mb = int(cfg["BLOCK_SIZE"]), int(cfg["MB_SIZE"])
    m = max(mb, 2 * b)
    return b, mb, -(-h // m) * m, -(-w // m) * m


def intra_plane(src, levels, modes, shape, b, steps, cfg, rec=None, mask=None, stats=None):
    """Predict each block from reconstructed neighbours, choose the mode (encoder:
    :func:`intra_choice`), transform-code the residual; returns levels, modes,
    reconstruction. A block needs only the blocks above and to its left, so the blocks are
    coded in the batches of :func:`intra_batches`. In an inter picture only the blocks of
    ``mask`` are intra, and ``rec`` holds the others' reconstruction to predict from.
    ``stats`` (encoder): :func:`mode_stats` of this plane kind; the choice then pays each
    mode's bits in the context :func:`code_modes` will code it in, and counts it."""
    m, zz = transform_matrix(b), zigzag(b)
    unzz = np.argsort(zz)
    nby, nbx = shape[0] // b, shape[1] // b
    encoding = src is not None
    if encoding:
        levels = np.zeros((nby * nbx, b * b), np.int64)
        modes = np.zeros(nby * nbx, np.int64)
        blocks = to_blocks(src, b)
    rec = np.zeros(shape) if rec is None else np.asarray(rec, np.float64).copy()
    grid = rec.reshape(nby, b, nbx, b)  # grid[by, :, bx, :] is block (by, bx) of rec
    todo = np.ones((nby, nbx), bool) if mask is None else mask.reshape(nby, nbx)
    if not encoding:  # every residual is known: transform them all at once
        some = levels.any(axis=1)
        residuals = np.zeros((nby * nbx, b, b))
        residuals[some] = m.T @ dequantise(levels[some], steps)[:, unzz].reshape(-1, b, b) @ m
    for bys, bxs in intra_batches(todo, encoding):
        preds = intra_neighbours(rec, bys, bxs, b, cfg)
        idx, n = bys * nbx + bxs, len(bys)
        if encoding:
            blk = blocks[bys, bxs]
            bits = 0.0
            if stats is not None:
                ctx = mode_contexts(modes.reshape(nby, nbx), todo, bys, bxs, preds.shape[1])
                bits = np.log2(stats.sum(axis=1)[ctx, None] / stats[ctx])
            modes[idx], levels[idx] = intra_choice(blk, preds, m, zz, steps, cfg, bits)
            if stats is not None:  # counts: whole numbers, added in any order the same
                seen = np.bincount(ctx * stats.shape[1] + modes[idx], minlength=stats.size)
                stats += seen.reshape(stats.shape)
        mode = modes[idx]
        if not encoding and (mode.min() < 0 or mode.max() >= preds.shape[1]):
            raise ValueError("bad intra mode")
        chosen = preds[np.arange(n), mode]
        if encoding:
            res = m.T @ dequantise(levels[idx], steps)[:, unzz].reshape(n, b, b) @ m
        else:
            res = residuals[idx]
        grid[bys, :, bxs, :] = np.clip(np.floor(chosen + res + 0.5), 0, 255)
    return levels, modes, rec.astype(np.uint8)


def intra_choice(blk, preds, m, zz, steps, cfg, mode_bits=0.0):
    """Encoder: each block's intra mode among ``preds`` (blocks, modes, b, b) and its
    levels. With the intra slot's INTRA_LAMBDA, the least SSD + INTRA_LAMBDA * step^2 *
    estimated bits of the quantised residual and of the mode itself (``mode_bits``,
    (blocks, modes)) (H.264's RD mode decision: a mode whose residual quantises to a few
    levels, or that the neighbours make likely, wins over one with a smaller but costlier
    residual); without, the least transformed residual magnitude (SATD)."""
    coef = m @ (blk[:, None] - preds) @ m.T
    lam = float(cfg.get("INTRA_LAMBDA", 0.0)) * float(steps[0]) ** 2
    n, k = coef.shape[:2]
    if lam <= 0:
        best = np.argmin(np.abs(coef).sum(axis=(2, 3)), axis=1)
        flat = coef[np.arange(n), best].reshape(n, -1)[:, zz]
        return best, quantise(flat, steps, True, cfg)
    flat = coef.reshape(n * k, -1)[:, zz]
    lv = quantise(flat, steps, True, cfg)
    cost = ((flat - dequantise(lv, steps)) ** 2).sum(axis=1) + lam * level_rate(lv)
    best = np.argmin(cost.reshape(n, k) + lam * mode_bits, axis=1)
    return best, lv.reshape(n, k, -1)[np.arange(n), best]


def intra_batches(todo, encoding):
    """The blocks of ``todo`` (a grid) in batches (rows, columns) that need only blocks of
    earlier batches or outside ``todo``: a block's prediction reads the blocks above, left
    and above-left of it. The encoder takes the anti-diagonals of the wavefront (it counts
    the modes it chose after each, and its choices follow those counts). The decoder takes
    each block one batch after the latest of those neighbours: in an intra picture that is
    the anti-diagonals again, but an isolated intra macroblock of an inter picture takes
    three batches, not a wavefront's hundreds."""
    nby, nbx = todo.shape
    diagonals = []
    for d in range(nby + nbx - 1):
        bys = np.arange(max(0, d - nbx + 1), min(d, nby - 1) + 1)
        bys = bys[todo[bys, d - bys]]
        if bys.size:
            diagonals.append((bys, d - bys))
    if encoding:
        yield from diagonals
        return
    level = np.full((nby + 1, nbx + 1), -1, np.int64)  # row and column -1 stay outside
    for bys, bxs in diagonals:  # the neighbours lie on earlier anti-diagonals
        near = np.maximum(level[bys - 1, bxs], level[bys, bxs - 1])
        level[bys, bxs] = np.maximum(near, level[bys - 1, bxs - 1]) + 1
    flat = level[:nby, :nbx].ravel()
    order = np.argsort(flat, kind="stable")  # by batch, in raster order within one
    cuts = np.cumsum(np.bincount(flat[flat >= 0]))
    for chunk in np.split(order[len(flat) - cuts[-1] :], cuts[:-1]) if cuts.size else []:
        yield np.divmod(chunk, nbx)


def mode_contexts(grid, todo, bys, bxs, n):
    """The context of the intra mode of blocks (bys, bxs): the modes of the blocks above and
    to the left in ``grid`` (0..n-1, or n where that block is outside the picture or not
    intra, ``todo`` false), as above * (n + 1) + left: neighbouring blocks of one edge or
    gradient share a direction, (n + 1)^2 contexts in all."""
    up, lt = np.maximum(bys - 1, 0), np.maximum(bxs - 1, 0)
    above = np.where((bys > 0) & todo[up, bxs], grid[up, bxs], n)
    left = np.where((bxs > 0) & todo[bys, lt], grid[bys, lt], n)
    return above * (n + 1) + left


def mode_stats(cfg, kind):
    """Encoder: running counts (contexts, modes) of the intra modes chosen so far in this
    sequence for plane kind ``kind`` (what the entropy coder's adaptive model learns too),
    kept in ``cfg``; None with one mode (nothing to code) or no RD choice."""
    n = int(cfg.get("INTRA_MODES", 1))
    if n == 1 or float(cfg.get("INTRA_LAMBDA", 0.0)) <= 0:
        return None
    table = cfg.setdefault("MODE_STATS", {})
    return table.setdefault(kind, np.ones(((n + 1) ** 2, n)))


def code_modes(coder, kind, modes, todo, n):
    """The intra modes (grid, encoder: given) of the blocks of ``todo`` anti-diagonal by
    anti-diagonal (both neighbours of a block lie on the one before), each in the context
    :func:`mode_contexts` of its above and left neighbours' modes; zero elsewhere."""
    out = np.zeros(todo.shape, np.int64)
    if n == 1:
        return out
    nby, nbx = todo.shape
    for d in range(nby + nbx - 1):
        bys = np.arange(max(0, d - nbx + 1), min(d, nby - 1) + 1)
        bys = bys[todo[bys, d - bys]]
        if bys.size:
            bxs = d - bys
            ctx = mode_contexts(out, todo, bys, bxs, n)
            given = None if modes is None else modes[bys, bxs]
            out[bys, bxs] = coder.symbols(kind, given, bys.size, ctx, n, (n + 1) ** 2)
    if out.min(initial=0) < 0 or out.max(initial=0) >= n:
        raise ValueError(f"bad {kind} symbol")
    return out


def intra_mb_on(cfg):
    """Whether inter pictures may code macroblocks intra: the mode slot offers it and a
    macroblock's chroma is made of whole transform blocks."""
    b, mb = int(cfg["BLOCK_SIZE"]), int(cfg["MB_SIZE"])
    return bool(cfg.get("INTRA_MB")) and (mb // 2) % b == 0


def intra_mb_costs(cfg, src, near, ratio, lam):
    """Encoder: per macroblock, D + lam R of coding it intra at the step times ``ratio``:
    each b x b block of Y, U and V in the mode of least SATD, by SSD + lam * (estimated bits
    of the levels and the mode; quantising every mode would cost four times as much),
    predicted from planes ``near``: the picture's reconstruction does not exist yet, its
    best inter reconstruction stands in (its coding noise included, which the source would
    leave out and so favour intra). A block's cost depends on its own samples and
    neighbours alone, so the blocks go in bands of rows of about INTRA_MB_BAND blocks: the
    candidates of a band stay in the cache (a 720p plane's are 30 MB)."""
    b, mb = int(cfg["BLOCK_SIZE"]), int(cfg["MB_SIZE"])
    cost = np.zeros((src[0].shape[0] // mb, src[0].shape[1] // mb))
    for k in range(3):
        step = (cfg["STEP_Y"] if k == 0 else cfg["STEP_C"]) * ratio
        nby, nbx = src[k].shape[0] // b, src[k].shape[1] // b
        j = np.concatenate(
            [
                intra_block_costs(cfg, src[k], near[k], lo, hi, step, lam)
                for lo, hi in bands(nby, -(-INTRA_MB_BAND // nbx))
            ]
        )
        cost += per_tile(j.reshape(nby, nbx), (mb if k == 0 else mb // 2) // b)
    return cost


# Blocks per band of intra_mb_costs (at least a few hundred: a matrix product of fewer rows
# may take another path in BLAS, with other rounding).
INTRA_MB_BAND = 2048


def intra_block_costs(cfg, plane, near, y0, y1, step, lam):
    """Encoder: :func:`intra_mb_costs`' D + lam R of each b x b block of ``plane`` in block
    rows y0..y1-1, in raster order."""
    b = int(cfg["BLOCK_SIZE"])
    m, zz = transform_matrix(b), zigzag(b)
    steps = quant_steps(b, step, cfg)
    mode_bits = math.log2(max(1, int(cfg.get("INTRA_MODES", 1))))
    nbx = plane.shape[1] // b
    bys, bxs = np.divmod(np.arange(y0 * nbx, y1 * nbx), nbx)
    preds = intra_neighbours(near, bys, bxs, b, cfg)
    own = to_blocks(plane[y0 * b : y1 * b], b).reshape(-1, 1, b, b)
    flat = least_satd(np.subtract(own, preds, out=preds), m, zz)
    lv = quantise(flat, steps, True, cfg)
    return ((flat - dequantise(lv, steps)) ** 2).sum(axis=1) + lam * (level_rate(lv) + mode_bits)


def least_satd(residuals, m, zz):
    """Encoder: per block, the zig-zag coefficients of the mode of least SATD among
    ``residuals`` (blocks, modes, b, b; overwritten). The magnitudes go into the residuals'
    memory and the chosen rows are taken whole, then permuted (no 30 MB temporaries at
    720p, no gather element by element): the values of the plain indexing."""
    n, k, b = residuals.shape[:3]
    coef = estimate_transform(residuals, m)
    scratch = residuals if residuals.dtype == coef.dtype else None  # never a narrower type
    best = np.argmin(np.abs(coef, out=scratch).sum(axis=(2, 3)), axis=1)
    return np.take(coef.reshape(n * k, b * b)[np.arange(n) * k + best], zz, axis=1)


def intra_blocks(cfg, coder, k, src, rec, intra, step):
    """The intra macroblocks ``intra`` of plane ``k`` of an inter picture whose other blocks
    are reconstructed in ``rec``: their levels (in the intra pictures' statistics) and modes,
    then their reconstruction from their neighbours' as in an intra picture. Returns the
    plane and which b x b blocks were intra."""
    b, mb = int(cfg["BLOCK_SIZE"]), int(cfg["MB_SIZE"])
    shape = rec.shape
    steps = quant_steps(b, step, cfg)
    mask = block_mask(intra, mb if k == 0 else mb // 2, b)
    count, row = mask.size, shape[1] // b
    kind = "intra_y" if k == 0 else "intra_c"
    if src is not None:
        stats = mode_stats(cfg, kind)
        lv, modes, out = intra_plane(src, None, None, shape, b, steps, cfg, rec, mask, stats)
        coder.levels(kind, lv, count, b * b, row, mask)
    else:
        lv = coder.levels(kind, None, count, b * b, row, mask)
        modes = None
    n_modes = int(cfg.get("INTRA_MODES", 1))
    where = mask.reshape(-1, row)
    grid = None if modes is None else modes.reshape(where.shape)
    modes = code_modes(coder, kind + "_mode", grid, where, n_modes).ravel()
    if src is None:
        out = intra_plane(None, lv, modes, shape, b, steps, cfg, rec, mask)[2]
    return out, mask


def intra_neighbours(rec, bys, bxs, b, cfg):
    """The intra slot's candidate predictions (blocks, modes, b, b) of blocks (bys, bxs)
    from ``rec``, in batches of blocks that have the same neighbours available (kind: 2 with
    a block above, + 1 with one to the left; most batches are all of kind 3). The most
    common kind (the latest on a tie: kind 0 is one block) is predicted for every block
    (the others' missing neighbours wrap around to finite samples, and a block's
    predictions depend on its own neighbours alone), then the others are predicted again
    as their kind: no copy of the bulk into place (30 MB for a 720p plane's four modes)."""
    grid = rec.reshape(rec.shape[0] // b, b, rec.shape[1] // b, b)
    kind = (bys > 0) * 2 + (bxs > 0)
    count = np.bincount(kind, minlength=4)
    most = 3 - int(np.argmax(count[::-1]))
    preds = kind_predictors(grid, bys, bxs, most, b, cfg)
    for k in np.flatnonzero(count):
        if k != most:
            sel = np.flatnonzero(kind == k)
            preds[sel] = kind_predictors(grid, bys[sel], bxs[sel], k, b, cfg)
    return preds


def kind_predictors(grid, ys, xs, k, b, cfg):
    """The intra slot's candidates of blocks (ys, xs) of ``grid`` as blocks of kind ``k``
    (see :func:`intra_neighbours`)."""
    top = grid[ys - 1, b - 1, xs] if k >= 2 else None
    left = grid[ys, :, xs - 1, b - 1] if k % 2 else None
    corner = grid[ys - 1, b - 1, xs - 1, b - 1] if k == 3 else None
    return intra_predictors(top, left, corner, b, cfg)


def code_intra(cfg, coder, src):
    """An intra picture, plane by plane; returns the loop-filtered reconstruction."""
    b = int(cfg["BLOCK_SIZE"])
    rec = []
    for k in range(3):
        shape = cfg["SHAPES"][k]
        step = (cfg["STEP_Y"] if k == 0 else cfg["STEP_C"]) * cfg["I_QP_RATIO"]
        steps = quant_steps(b, step, cfg)
        count, row = (shape[0] // b) * (shape[1] // b), shape[1] // b
        kind = "intra_y" if k == 0 else "intra_c"
        if src is not None:
            stats = mode_stats(cfg, kind)
            lv, modes, r = intra_plane(src[k], None, None, shape, b, steps, cfg, stats=stats)
            coder.levels(kind, lv, count, b * b, row)
        else:
            lv = coder.levels(kind, None, count, b * b, row)
        grid = np.ones((count // row, row), bool)
        n_modes = int(cfg.get("INTRA_MODES", 1))  # how many candidates the intra slot offers
        given = None if src is None else modes.reshape(grid.shape)
        modes = code_modes(coder, kind + "_mode", given, grid, n_modes).ravel()
        if src is None:
            r = intra_plane(None, lv, modes, shape, b, steps, cfg)[2]
        rec.append(loop_filter(r, b, step, cfg))
    return rec


def code_vectors(cfg, coder, src, ref):
    """A P picture's block vectors (1/MV_SCALE pel), which macroblocks are coded with a
    vector and which intra. Encoder: search, decide modes, code skip flags, with INTRA_MB
    which coded macroblocks are intra, with SPLIT which others carry four half-size
    vectors, then the coded vectors' differences (an intra macroblock takes the predicted
    vector, as a skipped one). The field is on the grid of half-size blocks with SPLIT, of
    macroblocks without."""
    mb = int(cfg["MB_SIZE"])
    shape = (cfg["SHAPES"][0][0] // mb, cfg["SHAPES"][0][1] // mb)
    mv = skip = split = half = intra = None
    if src is not None:
        mv = search_vectors(cfg, src, ref)
        skip = np.zeros(shape, bool)
        if cfg["SKIP"]:
            skip = mode_decide(src, ref, mv, cfg)
        if cfg.get("SPLIT"):
            half = search_vectors(cfg, src, ref, mb // 2)
            split, skip, intra = split_decide(src, ref, mv, half, skip, cfg)
    if cfg["SKIP"]:
        skip = code_rows(coder, "skip", None if skip is None else skip.astype(np.int64), shape, 2)
    else:
        skip = np.zeros(shape, np.int64)
    coded = skip == 0
    none = np.zeros(shape, bool)
    if not cfg.get("SPLIT"):
        return code_field(cfg, coder, "mv", mv, coded.astype(np.int64)), coded, none
    intra = code_flags(coder, "intra_mb", intra, coded) if intra_mb_on(cfg) else none
    moving = coded & ~intra
    if mv is not None:
        mv = np.where(twice(split)[..., None], half, twice(mv))
    split = code_flags(coder, "split", split, moving)
    return code_field(cfg, coder, "mv", mv, split_roles(split, moving)), moving, intra


def code_flags(coder, kind, flags, where):
    """Flags of the macroblocks in ``where`` (encoder: ``flags`` given), False elsewhere."""
    n = int(where.sum())
    given = None if flags is None else flags[where].astype(np.int64)
    out = np.zeros(where.shape, bool)
    out[where] = coder.symbols(kind, given, n, np.zeros(n, np.int64), 2) > 0
    return out


def split_roles(split, coded):
    """The :func:`mv_walk` role of each half-size block: all four of a split macroblock
    coded, the top-left one of another coded (skipped: predicted) and the rest copies."""
    corner = np.zeros((2 * split.shape[0], 2 * split.shape[1]), bool)
    corner[::2, ::2] = True
    return np.where(twice(split), 1, np.where(corner, twice(coded) * 1, 2))


def twice(a):
    """``a`` on the grid of half-size blocks: each macroblock's value in its four blocks."""
    return a.repeat(2, axis=0).repeat(2, axis=1)


def code_inter(cfg, coder, src, ref):
    """A P picture: vectors and modes, then each plane's residual in the coded blocks."""
    mb, s = int(cfg["MB_SIZE"]), int(cfg["MV_SCALE"])
    mv, coded, intra = code_vectors(cfg, coder, src, ref)
    mb = mb // 2 if cfg.get("SPLIT") else mb
    preds = [
        motion_compensate(ref[k], mv, mb if k == 0 else mb // 2, s if k == 0 else 2 * s, k == 0)
        for k in range(3)
    ]
    return code_residuals(cfg, coder, "inter", src, preds, coded, 1.0, intra)


def residual_levels(cfg, coder, kind, res, mask, b, step, shape):
    """Code (encoder: ``res`` given) or decode (``res`` None) the levels of the b x b blocks
    of a residual plane where ``mask``; returns the reconstructed residual plane."""
    m, zz = transform_matrix(b), zigzag(b)
    steps = quant_steps(b, step, cfg)
    count, row = len(mask), shape[1] // b
    if res is not None:
        lv = plane_levels(res, b, step, cfg) * mask[:, None]
        coder.levels(kind, lv, count, b * b, row, mask)
    else:
        lv = coder.levels(kind, None, count, b * b, row, mask)
    return inverse_plane(dequantise(lv, steps), m, b, np.argsort(zz), shape)


# plane_levels' latest residual plane and its levels by (block size, step).
PLANE_LEVELS = []


def plane_levels(res, b, step, cfg):
    """Encoder: the quantised levels (blocks, b * b in zig-zag order) of every b x b block of
    residual plane ``res`` at ``step`` (never write to them). The transform size choice
    quantises the luma residual at both sizes, and coding it quantises the same again: the
    latest plane's are kept."""
    if not PLANE_LEVELS or PLANE_LEVELS[0] is not res:
        PLANE_LEVELS[:] = [res, {}]
    known = PLANE_LEVELS[1]
    if (b, step) not in known:
        m, zz = transform_matrix(b), zigzag(b)
        lv = quantise(transform_plane(res, m, b, zz)[0], quant_steps(b, step, cfg), False, cfg)
        lv.flags.writeable = False
        known[b, step] = lv
    return known[b, step]


def small_transform_choice(cfg, res, coded, step):
    """Encoder: which coded macroblocks' luma residual is cheaper in SMALL_BLOCK transforms
    than in BLOCK_SIZE ones, by SSD + TX_LAMBDA * step^2 * estimated bits."""
    mb = int(cfg["MB_SIZE"])
    cost = []
    for b in (int(cfg["BLOCK_SIZE"]), int(cfg["SMALL_BLOCK"])):
        m, zz = transform_matrix(b), zigzag(b)
        steps = quant_steps(b, step, cfg)
        nbx = res.shape[1] // b
        lv = plane_levels(res, b, step, cfg)
        rec = inverse_plane(dequantise(lv, steps), m, b, np.argsort(zz), res.shape)
        lam = float(cfg["TX_LAMBDA"]) * step * step
        cost.append(per_tile((res - rec) ** 2, mb) + lam * tile_rate(level_rate(lv), nbx, b, mb))
    return coded & (cost[1] < cost[0])


def code_residuals(cfg, coder, kind, src, preds, coded, ratio, intra=None):
    """The residual of each plane in the blocks of ``coded`` macroblocks at the step times
    ``ratio``; with SMALL_BLOCK, each coded macroblock's luma in BLOCK_SIZE or SMALL_BLOCK
    transforms (a flag per coded macroblock); then the ``intra`` macroblocks, predicted from
    that reconstruction. Returns the loop-filtered reconstructions."""
    b, mb = int(cfg["BLOCK_SIZE"]), int(cfg["MB_SIZE"])
    small = int(cfg.get("SMALL_BLOCK", 0))
    rec = []
    for k, pred in enumerate(preds):
        step = (cfg["STEP_Y"] if k == 0 else cfg["STEP_C"]) * ratio
        mbk = mb if k == 0 else mb // 2
        res = None if src is None else src[k] - pred
        name = f"{kind}_{'y' if k == 0 else 'c'}"
        split = np.zeros(coded.shape, bool)
        if k == 0 and small:
            given = None if res is None else small_transform_choice(cfg, res, coded, step)
            flags = coder.symbols(
                name + "_tx",
                None if given is None else given[coded].astype(np.int64),
                int(coded.sum()),
                np.zeros(int(coded.sum()), np.int64),
                2,
            )
            split[coded] = flags > 0
        total = np.zeros(pred.shape)
        filtered = []
        for size, where in ((b, coded & ~split), (small, split)):
            if size and (where.any() or size == b):
                mask = block_mask(where, mbk, size)
                kind_b = name + str(size)
                total += residual_levels(cfg, coder, kind_b, res, mask, size, step, pred.shape)
                filtered.append((size, mask.reshape(-1, pred.shape[1] // size)))
        r = np.clip(np.floor(pred + total + 0.5), 0, 255).astype(np.uint8)
        if intra is not None and intra.any():
            r, where = intra_blocks(cfg, coder, k, None if src is None else src[k], r, intra, step)
            filtered[0] = (b, filtered[0][1] | where.reshape(filtered[0][1].shape))
        for size, mask in filtered:
            r = loop_filter(r, size, step, cfg, mask)
        rec.append(r)
    return rec


def search_vectors(cfg, src, ref, mb=None):
    """Encoder: vectors (1/MV_SCALE pel) of ``src`` luma's mb x mb blocks (default:
    macroblocks) against reference ``ref``."""
    mb = mb or int(cfg["MB_SIZE"])
    lam = float(MOTION_LAMBDA) * cfg["STEP_Y"]
    r0 = ref[0].astype(np.float64)
    mv = motion_search(src[0], r0, mb, int(cfg["SEARCH_RANGE"]), lam)
    return subpel_refine(src[0], r0, mv, mb, lam, cfg).astype(np.int64)


# Classes of the coded vector difference above a block (sum of both components' magnitudes,
# 1/MV_SCALE pel): the context of each component of the block's own difference.
MVD_CLASSES = np.array([1, 4, 16, 64])


def code_field(cfg, coder, kind, field, role):
    """Vectors of the blocks of ``role`` 1 as differences to their median prediction (see
    :func:`mv_walk` for the others), row by row, each component in the context of which
    component it is and how large the difference coded above the block was (none, small,
    ..., large: fast motion comes in regions); returns the final field on both sides."""
    coded = role == 1
    got = np.zeros(role.shape + (2,), np.int64)
    final, diffs = mv_walk(role, mv=field) if field is not None else (None, None)
    done = 0
    for y in range(role.shape[0]):
        cols = np.flatnonzero(coded[y])
        above = np.abs(got[y - 1, cols]).sum(axis=1) if y else np.zeros(cols.size, np.int64)
        near = np.searchsorted(MVD_CLASSES, above, side="right")
        ctx = (2 * near[:, None] + np.arange(2)).ravel()
        given = None if diffs is None else diffs[done : done + cols.size].ravel()
        n_ctx = 2 * len(MVD_CLASSES) + 2
        got[y, cols] = coder.ints(kind, given, 2 * cols.size, ctx, n_ctx).reshape(-1, 2)
        done += cols.size
    if final is not None:
        return final
    final = mv_walk(role, diffs=got[coded])[0]
    if np.abs(final).max(initial=0) > (int(cfg["SEARCH_RANGE"]) + 2) * int(cfg["MV_SCALE"]):
        raise ValueError("motion vector out of range")
    return final


def code_rows(coder, kind, values, shape, limit):
    """Small per-block symbols row by row, in the context of the symbol above (nothing to
    code when there is one possible symbol)."""
    out = np.zeros(shape, np.int64)
    if limit == 1:
        return out
    above = np.zeros(shape[1], np.int64)
    for y in range(shape[0]):
        given = values[y] if values is not None else None
        out[y] = above = coder.symbols(kind, given, shape[1], above, limit)
    if out.min(initial=0) < 0 or out.max(initial=0) >= limit:
        raise ValueError(f"bad {kind} symbol")
    return out


def bipred_planes(past, future, fields, mode, cfg):
    """A B picture's prediction planes: per macroblock forward (mode 0), backward (1) or the
    average of both (2, and DIRECT, 3)."""
    return bipred_mix(bipred_refs(past, future, fields, cfg), mode, cfg)


def bipred_refs(past, future, fields, cfg):
    """The forward and backward prediction of each plane with vectors ``fields``."""
    mb, s = int(cfg["MB_SIZE"]), int(cfg["MV_SCALE"])
    out = []
    for k in range(3):
        mbk, sk = (mb, s) if k == 0 else (mb // 2, 2 * s)
        pair = zip((past, future), fields)
        out.append(tuple(motion_compensate(r[k], f, mbk, sk, k == 0) for r, f in pair))
    return out


def bipred_mix(pairs, mode, cfg):
    """Per macroblock of ``mode`` the forward, backward or averaged plane of ``pairs`` (one
    of them, unmixed, where every macroblock has the same mode: never write to it)."""
    planes = []
    one = int(mode.flat[0]) if (mode == mode.flat[0]).all() else None
    for k, (fwd, bwd) in enumerate(pairs):
        if one is not None:
            planes.append(fwd if one == 0 else bwd if one == 1 else (fwd + bwd) / 2)
            continue
        mbk = int(cfg["MB_SIZE"]) // (1 if k == 0 else 2)
        sel = np.kron(mode, np.ones((mbk, mbk), np.int64))
        planes.append(np.where(sel == 0, fwd, np.where(sel == 1, bwd, (fwd + bwd) / 2)))
    return planes


def bipred_used(mode, d):
    """Macroblocks whose vector of direction ``d`` (0 forward, 1 backward) is coded."""
    return (mode == d) | (mode == 2)


def bipred_decide(cfg, src, past, future, ratio):
    """Encoder: both directions' vectors and each macroblock's mode. With B_MODE_LAMBDA,
    forward, backward or averaged by distortion + lambda * estimated bits (residual and
    vectors), then DIRECT (3: both vectors the median of the neighbours' final vectors,
    averaged, no residual) wherever that costs less, re-decided until the inherited vectors
    settle, and with INTRA_MB intra (4) where that costs less than the three; without
    B_MODE_LAMBDA, by SAD + lambda * vector bits and never DIRECT nor intra."""
    mb, s = int(cfg["MB_SIZE"]), int(cfg["MV_SCALE"])
    fields = [search_vectors(cfg, src, ref) for ref in (past, future)]
    mvb = [mv_bits(f - median_pred(f)).sum(axis=2) for f in fields]
    mvb.append(mvb[0] + mvb[1])
    lam_d = float(cfg.get("B_MODE_LAMBDA", 0.0)) * (cfg["STEP_Y"] * ratio) ** 2
    if lam_d <= 0:
        lam = float(MOTION_LAMBDA) * cfg["STEP_Y"]
        preds = [motion_compensate(r[0], f, mb, s) for r, f in zip((past, future), fields)]
        preds.append((preds[0] + preds[1]) / 2)
        sad = [per_tile(np.abs(src[0] - p), mb) + lam * b for p, b in zip(preds, mvb)]
        return fields, np.argmin(sad, 0)
    each = np.ones(mvb[0].shape, np.int64)
    recs = [[], [], []]
    pairs = bipred_refs(past, future, fields, cfg)  # the three modes mix the same two
    costs = [
        prediction_costs(src, bipred_mix(pairs, each * m, cfg), cfg, ratio, True, recs[m])
        for m in range(3)
    ]
    total = [d + lam_d * (r + b) for (d, r), b in zip(costs, mvb)]
    mode = np.argmin(total, 0)
    coded = np.choose(mode, total)
    if intra_mb_on(cfg):
        near = [
            np.choose(np.kron(mode, np.ones((mbk, mbk), np.int64)), [r[k] for r in recs])
            for k, mbk in enumerate((mb, mb // 2, mb // 2))
        ]
        intra = intra_mb_costs(cfg, src, near, ratio, lam_d)
        mode = np.where(intra < coded, 4, mode)
        coded = np.minimum(coded, intra)
    def direct_costs(direct):
        current = np.where(direct, 3, mode)
        finals = [mv_walk(bipred_used(current, d) * 1, mv=f)[0] for d, f in enumerate(fields)]
        inherited = [median_pred(f) for f in finals]
        return motion_distortion(src, (past, future), inherited, (mb, s), memo) + lam_d

    memo = []
    direct = np.zeros(mode.shape, bool)
    for _ in range(3):
        direct = direct_costs(direct) < coded + lam_d
    return fields, np.where(settle(direct, direct_costs, coded + lam_d), 3, mode)



def code_bipred(cfg, coder, src, past, future, ratio):
    """A B picture: per macroblock forward, backward, averaged or DIRECT prediction from the
    anchors around it, or intra; the vectors each direction uses, then the residual of every
    block of the first three at the step times ``ratio``, then the intra macroblocks."""
    mb = int(cfg["MB_SIZE"])
    shape = (cfg["SHAPES"][0][0] // mb, cfg["SHAPES"][0][1] // mb)
    fields = mode = None
    if src is not None:
        fields, mode = bipred_decide(cfg, src, past, future, ratio)
    mode = code_rows(coder, "b_mode", mode, shape, 5 if intra_mb_on(cfg) else 4)
    final = [
        code_field(
            cfg, coder, f"b_mv{d}", None if fields is None else fields[d], bipred_used(mode, d) * 1
        )
        for d in (0, 1)
    ]
    planes = bipred_planes(past, future, final, mode, cfg)
    return code_residuals(cfg, coder, "b", src, planes, mode < 3, ratio, mode == 4)


def scene_error(cur, prev, rng=6, b=8):
    """Encoder: the least SAD of each b x b block of ``cur`` against ``prev`` displaced by up
    to ``rng`` pixels, summed, over the blocks' SAD from their own means (a cheap intra
    cost): well below 1 when ``prev`` predicts ``cur``, above it after a scene cut."""
    h, w = cur.shape
    p = np.pad(prev, rng, mode="edge")
    best = np.full((h // b, w // b), np.inf)
    c, q, total, unit = cur, p, None, 1.0
    if sixteenths(cur) and sixteenths(p):  # exact integer SADs of int16 sixteenths, / 16
        c, q = (np.rint(a * 16).astype(np.int16) for a in (cur, p))
        total, unit = np.int32, 16.0
    for dy in range(2 * rng + 1):
        for dx in range(2 * rng + 1):
            sad = np.abs(c - q[dy : dy + h, dx : dx + w]).reshape(h // b, b, w // b, b)
            best = np.minimum(best, sad.sum(axis=(1, 3), dtype=total))
    best /= unit
    blocks = cur.reshape(h // b, b, w // b, b)
    flat = np.abs(blocks - blocks.mean(axis=(1, 3), keepdims=True)).sum()
    return best.sum() / max(flat, 1.0)


def sixteenths(a):
    """Whether every sample of ``a`` is a multiple of 1/16 in 0..255 (4 x 4 means of 8-bit
    samples): then as int16 sixteenths, sums of a few thousand of them exact in int32 and
    in float64 alike."""
    in_range = bool(a.size) and 0 <= a.min() and a.max() <= 255
    return in_range and np.array_equal(np.rint(a * 16), a * 16)


def scene_cuts(frames, cfg):
    """Encoder: which pictures start a new scene (see SCENE_CUT), from luma averaged over
    4 x 4 pixels (8 x 8 blocks of it, a search of +-24 pixels) or less on small pictures."""
    cuts = np.zeros(len(frames), np.int64)
    h, w = np.asarray(frames[0][0]).shape
    f = 4
    while f > 1 and min(h, w) < 16 * f:
        f //= 2
    h, w = h - h % (8 * f), w - w % (8 * f)
    if cfg["SCENE_CUT"] <= 0 or min(h, w) == 0:
        return cuts
    small = [
        np.asarray(y, np.float64)[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
        for y, _, _ in frames
    ]
    for i in range(1, len(frames)):
        cuts[i] = scene_error(small[i], small[i - 1]) > cfg["SCENE_CUT"]
    return cuts


def picture_plan(cfg, coder, frames, nf):
    """The GOP component's plan of each scene (a flag per picture after the first says
    which start one), one after the other: every scene starts with an intra picture and
    no picture predicts from another scene."""
    cuts = np.zeros(nf - 1, np.int64) if frames is None else scene_cuts(frames, cfg)[1:]
    if cfg["SCENE_CUT"] > 0:
        cuts = coder.symbols("scene", cuts, nf - 1, np.zeros(nf - 1, np.int64), 2)
    starts = [0] + [int(i) + 1 for i in np.flatnonzero(cuts)]
    plan = []
    for lo, hi in zip(starts, starts[1:] + [nf]):
        part = gop_plan(hi - lo, cfg)
        if sorted(i for i, _ in part) != list(range(hi - lo)) or part[0][1] != 0:
            raise ValueError("bad picture plan")
        plan += [(lo + i, kind) for i, kind in part]
    return plan


def code_sequence(cfg, coder, frames, nf):
    """Every picture in coding order (:func:`picture_plan`) through one coder; I, P and
    reference B pictures become anchors (P predicts from the latest anchor before it, B
    from the nearest anchors before and after it). Returns the reconstructions in display
    order."""
    plan = picture_plan(cfg, coder, frames, nf)
    out, anchors = [None] * nf, {}
    for index, kind in plan:
        src = None
        if frames is not None:
            src = [
                pad_plane(np.asarray(p), *shape).astype(np.float64)
                for p, shape in zip(frames[index], cfg["SHAPES"])
            ]
        before = [i for i in anchors if i < index]
        after = [i for i in anchors if i > index]
        if kind == 0:
            rec = code_intra(cfg, coder, src)
        elif kind == 1 and before:
            rec = code_inter(cfg, coder, src, anchors[max(before)])
        elif kind in (2, 3) and before and after:
            ratio = cfg["B_QP_RATIO"] if kind == 2 else cfg["REF_B_QP_RATIO"]
            past, future = anchors[max(before)], anchors[min(after)]
            rec = code_bipred(cfg, coder, src, past, future, ratio)
        else:
            raise ValueError("bad picture plan")
        if kind != 2:
            anchors[index] = rec
            anchors = dict(list(anchors.items())[-4:])  # the last four in coding order
        out[index] = rec
    return out


def encode(frames, fps, quality):
    """Encode ``(Y, U, V)`` uint8 4:2:0 frames into a self-describing bitstream."""
    if not frames:
        raise ValueError("no frames to encode")
    h, w = np.asarray(frames[0][0]).shape
    quality = min(100, max(1, int(quality)))
    cfg = program_config(quality)
    b, mb, ph, pw = geometry(cfg, h, w)
    header = HEADER.pack(MAGIC, 3, w, h, len(frames), float(fps), quality, config_crc(cfg))
    cfg["SHAPES"] = [(ph, pw), (ph // 2, pw // 2), (ph // 2, pw // 2)]
    coder = EntropyCoder(cfg)
    code_sequence(cfg, coder, frames, len(frames))
    data = header + coder.finish()
    return data + struct.pack("<I", zlib.crc32(data))


def decode(bitstream):
    """Decode a bitstream made by :func:`encode` using nothing but its bytes."""
    data = bytes(bitstream)
    if len(data) < HEADER.size + 4 or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise ValueError("bitstream too short or corrupted (CRC mismatch)")
    magic, version, w, h, nf, _fps, quality, crc = HEADER.unpack_from(data)
    if magic != MAGIC or version != 3 or not (0 < w <= 16384 and 0 < h <= 16384):
        raise ValueError("not a composed-codec bitstream")
    if not 1 <= quality <= 100:
        raise ValueError("bad header")
    cfg = program_config(quality)
    if config_crc(cfg) != crc:
        raise ValueError("bitstream made by a program with other parameters than this decoder")
    b, mb, ph, pw = geometry(cfg, h, w)
    cfg["SHAPES"] = [(ph, pw), (ph // 2, pw // 2), (ph // 2, pw // 2)]
    coder = EntropyCoder(cfg, data[HEADER.size : -4])
    out = []
    for y, u, v in code_sequence(cfg, coder, None, nf):
        out.append((y[:h, :w].copy(), u[: h // 2, : w // 2].copy(), v[: h // 2, : w // 2].copy()))
    return out
'''


def parse_components(source: str) -> dict[str, str] | None:
    """The composition a program records in its header comment, or ``None`` (hand-written)."""
    match = _MARKER_LINE.search(source)
    if not match:
        return None
    found = dict(item.split("=", 1) for item in match["body"].split() if "=" in item)
    if set(found) != set(SLOTS) or any(found[s] not in choices(s) for s in SLOTS):
        return None
    return {slot: found[slot] for slot in SLOTS}


def compose(parts: dict[str, str] | None = None, values: dict | None = None) -> str:
    """The program built from ``parts`` (slot -> component name; missing slots take the
    default); ``values`` sets any ``@param`` that exists in it (others are ignored)."""
    chosen = {**DEFAULT, **(parts or {})}
    comps = [get(slot, chosen[slot]) for slot in SLOTS]
    listing = "\n".join(f"* {c.slot}: {c.name} - {c.summary}" for c in comps)
    doc = (
        '"""Composed codec program (codeclab evolve designer).\n\n'
        "Built from interchangeable components, one per slot:\n\n"
        f"{listing}\n\n"
        "The header carries size, frames, rate, quality and a CRC-32 of the numbers\n"
        "program_config(quality) derives from them; a CRC-32 guards the whole stream.\n"
        '"""\n'
    )
    marker = MARKER + " " + " ".join(f"{c.slot}={c.name}" for c in comps)
    sections = [doc + marker + "\n\n" + PRELUDE, "# " + "-" * 30 + " core\n" + CORE]
    for c in comps:
        sections.append(f"# {'-' * 30} {c.slot}: {c.name}\n\n{c.source}")
    sections.append("# " + "-" * 30 + " skeleton: encode / decode\n" + SKELETON)
    source = "\n\n".join(s.strip("\n") + "\n" for s in sections)
    if values:
        known = parse_params(source)
        source = set_params(source, {k: v for k, v in values.items() if k in known})
    return source


def _values(source: str) -> dict:
    return {name: p.value for name, p in parse_params(source).items()}


def swap(source: str, slot: str, name: str) -> str:
    """``source`` with ``slot`` filled by component ``name``; evolved values carry over."""
    parts = parse_components(source)
    if parts is None:
        raise ValueError("not a composed program: no component header")
    return compose({**parts, slot: name}, _values(source))


def crossover(first: str, second: str, from_second: set[str] | frozenset[str]) -> str:
    """A child taking the slots in ``from_second`` (and their parameter values) from
    ``second`` and everything else, the skeleton's parameters included, from ``first``."""
    a, b = parse_components(first), parse_components(second)
    if a is None or b is None:
        raise ValueError("crossover needs two composed programs")
    parts = {slot: (b if slot in from_second else a)[slot] for slot in SLOTS}
    values = _values(first)
    second_values = _values(second)
    for slot in from_second:
        for pname in get(slot, parts[slot]).params:
            if pname in second_values:
                values[pname] = second_values[pname]
    return compose(parts, values)


def namespace(*parts: Component, core: bool = True) -> dict:
    """Run the prelude, the shared core and ``parts`` in a fresh namespace (for tests).

    This is lab code running the lab's own component text; programs themselves are only
    ever run in the sandbox.
    """
    text = PRELUDE + (CORE if core else "") + "\n".join(p.source for p in parts)
    scope: dict = {}
    exec(compile(text, "<components>", "exec"), scope)  # noqa: S102 - trusted lab source
    return scope
