"""Motion-compensated inter codec (seed program).

An IPPP... codec in the spirit of MPEG-4 Part 2 / early H.264, kept fully vectorised:

* the first picture and every ``GOP_SIZE``-th one are intra coded (block DCT, DPCM of
  DC levels), the others are P pictures predicted from the previous *reconstructed*
  picture, so encoder and decoder never drift;
* motion is estimated per macroblock on luma with a coarse-to-fine search (full search
  on a decimated picture, +-1 refinements, the zero, median and neighbour vectors as
  candidates, then half- and quarter-pel refinement on an H.264-style 6-tap / bilinear
  interpolated reference, then a round that lets neighbours' vectors win, which keeps
  the field smooth and cheap); the cost is SAD + lambda * estimated vector bits; chroma
  reuses the luma vector with bilinear interpolation;
* every macroblock is either SKIP (no vector, no residual: it inherits the H.264 P_Skip
  vector from its neighbours, zero for still background) or coded (vector difference to
  the median of left/above/above-right, a residual flag, DCT residual), chosen by a
  Lagrangian cost that is re-evaluated until the inherited vectors settle;
* residual and intra levels are dead-zone quantised with a rate-distortion choice of
  each block's end, and range coded (``constriction``) with context models that adapt
  after every row of blocks, identically in encoder and decoder (no tables are sent);
* an in-loop deblocking filter smooths block edges of coded blocks.

Everything the decoder needs is written in the header; a CRC-32 guards the bitstream.
"""

import functools
import math
import struct
import typing
import zlib

import constriction
import numpy as np

# Distance between intra-coded pictures (1 = every picture intra).
GOP_SIZE = 60  # @param int 1..300
# Transform block size in luma pixels (never larger than a macroblock, half for chroma).
BLOCK_SIZE = 8  # @param choice 4,8,16
# Macroblock (motion block) size in luma pixels.
MB_SIZE = 16  # @param choice 8,16,32
# Motion search range in whole luma pixels.
SEARCH_RANGE = 16  # @param int 2..32
# Motion vector precision: 1 = whole, 2 = half, 4 = quarter luma pixel.
MV_PRECISION = 4  # @param choice 1,2,4
# Global multiplier of the quantiser step at every quality.
QP_SCALE = 1.0  # @param float 0.25..4.0
# Quantiser step of intra pictures relative to P pictures (below 1: better references).
I_QP_RATIO = 0.75  # @param float 0.4..1.5
# Chroma quantiser step relative to the luma step.
CHROMA_QP_RATIO = 1.2  # @param float 0.5..3.0
# Dead zone of intra levels: the rounding offset is 0.5 - DEADZONE_INTRA.
DEADZONE_INTRA = 0.1  # @param float 0.0..0.5
# Dead zone of residual levels: the rounding offset is 0.5 - DEADZONE_INTER.
DEADZONE_INTER = 0.3  # @param float 0.0..0.5
# Extra step growth towards the highest frequency (0 = flat matrix, best for PSNR).
FREQ_SLOPE = 0.0  # @param float 0.0..2.0
# Lagrange multiplier (times step^2) for the end-of-block choice; 0 turns it off.
RDO_LAMBDA = 0.06  # @param float 0.0..1.0
# Lagrange multiplier (times step^2) for skip/coded decisions and motion cost.
MODE_LAMBDA = 0.1  # @param float 0.0..1.0
# Encoder passes that settle SKIP choices against their neighbours' final vectors.
SKIP_PASSES = 4  # @param int 1..8
# Extra motion search rounds trying the neighbours' vectors (smoother, cheaper fields).
ME_ROUNDS = 1  # @param int 0..4
# Strength of the in-loop deblocking filter; 0 turns it off.
DEBLOCK = 1.5  # @param float 0.0..2.0
# Largest level magnitude coded directly; larger ones use an escape code.
ESCAPE = 15  # @param int 2..40
# How many recent symbols a context's frequency table remembers (adaptation speed).
ADAPT_WINDOW = 1024  # @param int 32..16384

_MAGIC = b"CLMC"
_VERSION = 1
# magic, version, width, height, frames, fps, quality, transform block, macroblock,
# mv precision, search range, escape, window, intra luma/chroma steps,
# inter luma/chroma steps, frequency slope, deblock strength
_HEADER = struct.Struct("<4sBIIIdBBBBBBIdddddd")
_INC = 32  # count added per coded symbol
_N_BANDS = 13
_N_ECLS = 7
_N_NB = 3
_EXP_SYMBOLS = 26  # escape exponents 0..25 (values up to 2**25)
_MV_ESCAPE = 16
_FAMILY = constriction.stream.model.Categorical(perfect=False)
_HALF = constriction.stream.model.Categorical(np.array([0.5, 0.5], np.float32), perfect=False)


# ----------------------------------------------------------------------------- transforms


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix, so that SSD in the coefficient domain equals pixel SSD."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def _zigzag(n: int) -> np.ndarray:
    """Flat positions (u * n + v) of an n x n block in JPEG zig-zag order."""
    order = sorted(
        ((u, v) for u in range(n) for v in range(n)),
        key=lambda p: (p[0] + p[1], p[0] if (p[0] + p[1]) % 2 else p[1]),
    )
    return np.array([u * n + v for u, v in order], dtype=np.int64)


def _to_blocks(plane: np.ndarray, b: int) -> np.ndarray:
    """(H, W) -> (H/b, W/b, b, b)."""
    h, w = plane.shape
    return plane.reshape(h // b, b, w // b, b).transpose(0, 2, 1, 3)


def _from_blocks(blocks: np.ndarray) -> np.ndarray:
    nby, nbx, b, _ = blocks.shape
    return blocks.transpose(0, 2, 1, 3).reshape(nby * b, nbx * b)


def _pad(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.pad(plane, ((0, h - plane.shape[0]), (0, w - plane.shape[1])), mode="edge")


def _per_group(a: np.ndarray, f: int) -> np.ndarray:
    """Sum a (rows, cols) block-level array over f x f groups (blocks -> macroblocks)."""
    r, c = a.shape
    return a.reshape(r // f, f, c // f, f).sum(axis=(1, 3))


def _expand(a: np.ndarray, f: int) -> np.ndarray:
    """Repeat a macroblock-level array f times along both grid axes."""
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1)


# ------------------------------------------------------------------------ entropy coding


class _Model:
    """Adaptive frequency tables, one row per context, updated identically on both sides.

    Counts are whole numbers kept in float32 (exact below 2**24) so that rows can be
    handed to the coder without conversion; a row is halved when its total exceeds
    the window.
    """

    def __init__(self, n_ctx: int, prior: np.ndarray, window: int) -> None:
        self.counts = np.tile(np.asarray(prior, np.float32), (n_ctx, 1))
        self.totals = self.counts.sum(axis=1)
        self.limit = float(window * _INC)

    def update(self, ctx: np.ndarray, sym: np.ndarray) -> None:
        n_ctx, n_sym = self.counts.shape
        hist = np.bincount(ctx * n_sym + sym, minlength=n_ctx * n_sym).astype(np.float32)
        self.counts += hist.reshape(n_ctx, n_sym) * _INC
        self.totals += np.bincount(ctx, minlength=n_ctx).astype(np.float32) * _INC
        big = self.totals > self.limit
        if big.any():
            self.counts[big] = np.floor((self.counts[big] + 1.0) * 0.5)
            self.totals[big] = self.counts[big].sum(axis=1)


def _magnitude_prior(n_sym: int) -> np.ndarray:
    """Weak geometric start for magnitude tables; every symbol keeps a nonzero count."""
    return np.maximum(1, (_INC * 4) >> np.minimum(np.arange(n_sym), 30)).astype(np.int64)


class _Coder:
    """One object for both directions: encodes given symbols, or decodes and returns them.

    Encoder and decoder run the very same coding functions through it, which keeps
    contexts and model updates in lock-step by construction.
    """

    def __init__(self, words: np.ndarray | None = None) -> None:
        self.encoding = words is None
        if self.encoding:
            self.enc = constriction.stream.queue.RangeEncoder()
        else:
            self.dec = constriction.stream.queue.RangeDecoder(words)

    def sym(self, model: _Model, ctx: np.ndarray, values: np.ndarray | None) -> np.ndarray:
        if ctx.size == 0:
            return np.zeros(0, np.int64)
        probs = model.counts[ctx]
        if self.encoding:
            self.enc.encode(np.asarray(values, np.int32), _FAMILY, probs)
            out = np.array(values, np.int64)
        else:
            out = self.dec.decode(_FAMILY, probs).astype(np.int64)
        model.update(ctx, out)
        return out

    def bits(self, values: np.ndarray | None, n: int) -> np.ndarray:
        if n == 0:
            return np.zeros(0, np.int64)
        if self.encoding:
            self.enc.encode(np.asarray(values, np.int32), _HALF)
            return np.asarray(values, np.int64)
        return self.dec.decode(_HALF, n).astype(np.int64)

    def words(self) -> np.ndarray:
        return self.enc.get_compressed()


class _PlaneModels:
    """End-of-block and level-magnitude models for one kind of plane (intra or residual)."""

    def __init__(self, n: int, escape: int, window: int) -> None:
        self.eob = _Model(_N_ECLS + 1, np.ones(n + 1, np.int64), window)
        n_coef_ctx = _N_BANDS * _N_ECLS * 2 * _N_NB
        self.coef = _Model(n_coef_ctx, _magnitude_prior(escape + 1), window)
        self.exp = _Model(1, _magnitude_prior(_EXP_SYMBOLS), window)


class _Tables:
    """Static context tables for a block of n coefficients."""

    def __init__(self, n: int) -> None:
        t = np.arange(n) * 64.0 / n
        band_edges = np.array([1, 2, 3, 4, 6, 9, 13, 18, 25, 33, 44, 56])
        band = np.searchsorted(band_edges, t, side="right")
        e = np.arange(n + 1) * 64.0 / n
        ecls = np.searchsorted(np.array([1.5, 2.5, 4.5, 8.5, 16.5, 32.5]), e)
        self.eob_ctx = np.where(np.arange(n + 1) == 0, 0, ecls + 1)
        k = np.arange(n)[:, None]
        ee = np.arange(n + 1)[None, :]
        last = (k == ee - 1).astype(np.int64)
        self.coef_ctx = ((band[:, None] * _N_ECLS + ecls[None, :]) * 2 + last) * _N_NB


def _code_tail(
    io: _Coder, exp_model: _Model, mags: np.ndarray, values: np.ndarray | None, escape: int
) -> np.ndarray:
    """Code escapes (Exp-Golomb, adaptive exponent) and signs; returns signed values."""
    esc_pos = np.nonzero(mags == escape)
    n_esc = len(esc_pos[0])
    if n_esc:
        if io.encoding:
            v = np.abs(values[esc_pos]) - escape + 1
            x = np.zeros(n_esc, np.int64)
            for t in range(1, _EXP_SYMBOLS):
                x += (v >> t) > 0
        x = io.sym(exp_model, np.zeros(n_esc, np.int64), x if io.encoding else None)
        owner = np.repeat(np.arange(n_esc), x)
        shift = np.arange(int(x.sum())) - np.repeat(np.cumsum(x) - x, x)
        b = io.bits((v[owner] >> shift) & 1 if io.encoding else None, len(owner))
        rest = np.bincount(owner, weights=b << shift, minlength=n_esc).astype(np.int64)
        mags[esc_pos] = escape + (1 << x) + rest - 1
    nzp = np.nonzero(mags)
    sign = io.bits((values[nzp] < 0).astype(np.int64) if io.encoding else None, len(nzp[0]))
    mags[nzp] *= 1 - 2 * sign
    return mags


def _code_plane(
    io: _Coder,
    models: _PlaneModels,
    tables: _Tables,
    escape: int,
    levels: np.ndarray | None,
    shape: tuple[int, int, int],
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Code a (rows, cols, n) array of zig-zag ordered signed levels row by row.

    Only blocks where ``mask`` is true are coded (the others are zero).  Per block: the
    end-of-block (1 + index of the last nonzero level), then the magnitudes before it,
    clipped at ``escape``, with contexts from frequency band, end-of-block class,
    "is last" and the same level in the block above; then escapes and signs.
    """
    nby, nbx, n = shape
    mags = np.zeros(shape, np.int64)
    if io.encoding:
        absl = np.abs(levels)
        nz = absl > 0
        eob_all = np.where(nz.any(axis=2), n - np.argmax(nz[..., ::-1], axis=2), 0)
        sym_all = np.minimum(absl, escape)
    prev_e = np.zeros(nbx, np.int64)
    prev_m = np.zeros((nbx, n), np.int64)
    all_cols = np.arange(nbx)
    for r in range(nby):
        cols = all_cols if mask is None else np.flatnonzero(mask[r])
        row_e = np.zeros(nbx, np.int64)
        if len(cols):
            ctx = tables.eob_ctx[prev_e[cols]]
            e = io.sym(models.eob, ctx, eob_all[r, cols] if io.encoding else None)
            row_e[cols] = e
            total = int(e.sum())
            if total:
                blk = np.repeat(cols, e)
                k = np.arange(total) - np.repeat(np.cumsum(e) - e, e)
                ctx = tables.coef_ctx[k, np.repeat(e, e)] + np.minimum(prev_m[blk, k], _N_NB - 1)
                m = io.sym(models.coef, ctx, sym_all[r, blk, k] if io.encoding else None)
                mags[r, blk, k] = m
        prev_e = row_e
        prev_m = mags[r]
    return _code_tail(io, models.exp, mags, levels, escape)


# ---------------------------------------------------------------------- quantisation


def _step_vector(b: int, step: float, slope: float, zz: np.ndarray) -> np.ndarray:
    """Per-coefficient quantiser steps in zig-zag order."""
    u = np.arange(b)[:, None]
    v = np.arange(b)[None, :]
    w = 1.0 + slope * (u + v) / (2.0 * max(b - 1, 1))
    return (step * w).reshape(-1)[zz]


def _quantise(coef: np.ndarray, steps: np.ndarray, deadzone: float) -> np.ndarray:
    return (np.sign(coef) * np.floor(np.abs(coef) / steps + (0.5 - deadzone))).astype(np.int64)


_RATE_TABLE = np.concatenate([[1.0], 3.0 + 2.0 * np.log2(np.arange(1, 1024))])


def _rate_estimate(levels: np.ndarray) -> np.ndarray:
    """Rough bits of a level inside the coded run: ~1 for zero, 3 + 2 log2|l| otherwise."""
    return np.take(_RATE_TABLE, np.minimum(np.abs(levels), 1023))


def _rdo_eob(
    coef: np.ndarray, levels: np.ndarray, steps: np.ndarray, lam: float, start: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut each block's tail where its distortion saving is worth less than its bits.

    Positions before ``start`` are always kept.  For every end e,
    J(e) = sum_{start<=k<e} (D_q + lam R) + sum_{k>=e} D_0, and the best e among those
    that end on a nonzero level wins.  Returns the levels and, per block, the resulting
    distortion (coefficient domain) and estimated bits.  Fully vectorised.
    """
    shp = levels.shape
    n = shp[-1]
    c = coef.reshape(-1, n)
    q = levels.reshape(-1, n).copy()
    dq = (c - q * steps) ** 2
    d0 = c**2
    rq = _rate_estimate(q)
    if lam > 0:
        a = (dq + lam * rq)[:, start:]
        b = d0[:, start:]
        zero = np.zeros((len(c), 1))
        cost = np.concatenate([zero, np.cumsum(a, axis=1)], axis=1) + np.concatenate(
            [np.cumsum(b[:, ::-1], axis=1)[:, ::-1], zero], axis=1
        )
        valid = np.concatenate([np.ones((len(c), 1), bool), q[:, start:] != 0], axis=1)
        cost[~valid] = np.inf
        end = np.argmin(cost, axis=1) + start
        q[np.arange(n)[None, :] >= np.maximum(end, start)[:, None]] = 0
    inside = np.arange(n)[None, :] < (n - np.argmax(q[:, ::-1] != 0, axis=1))[:, None]
    inside &= (q != 0).any(axis=1)[:, None]
    dist = np.where(q != 0, (c - q * steps) ** 2, d0).sum(axis=1)
    any_nz = (q != 0).any(axis=1)
    rate = np.where(inside, _rate_estimate(q), 0.0).sum(axis=1) + np.where(any_nz, 2.5, 0.5)
    return q.reshape(shp), dist.reshape(shp[:-1]), rate.reshape(shp[:-1])


# -------------------------------------------------------------------------- deblocking


def _deblock(
    plane: np.ndarray,
    b: int,
    step: float,
    strength: float,
    flags: np.ndarray | None = None,
    mvb: np.ndarray | None = None,
) -> np.ndarray:
    """Weak H.264-style filter on block edges.

    An edge is filtered when ``flags`` is None (intra) or when either neighbouring block
    has coded levels or their motion vectors differ; within it, only small steps that
    look like quantisation artefacts are smoothed.
    """
    if strength <= 0 or step <= 0:
        return plane
    alpha = strength * (1.5 * step + 1.0)
    beta = strength * (0.35 * step + 1.0)
    tc = max(1, int(strength * 0.12 * step + 0.5))
    x = plane.astype(np.int32)
    for axis in (1, 0):
        y = x if axis == 1 else x.T
        w = y.shape[1]
        if w <= b:
            continue
        p1 = y[:, b - 2 : w - 2 : b]
        p0 = y[:, b - 1 : w - 1 : b]
        q0 = y[:, b:w:b]
        q1 = y[:, b + 1 : w : b]
        ok = (np.abs(p0 - q0) < alpha) & (np.abs(p1 - p0) < beta) & (np.abs(q1 - q0) < beta)
        if flags is not None:
            f = flags if axis == 1 else flags.T
            m = mvb if axis == 1 else mvb.transpose(1, 0, 2)
            edge = f[:, :-1] | f[:, 1:] | (m[:, :-1] != m[:, 1:]).any(axis=2)
            ok &= np.repeat(edge, b, axis=0)
        delta = np.clip((4 * (q0 - p0) + (p1 - q1) + 4) >> 3, -tc, tc) * ok
        y[:, b - 1 : w - 1 : b] = p0 + delta
        y[:, b:w:b] = q0 - delta
    return np.clip(x, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- motion helpers


def _decimate(plane: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks (f a power of two), by repeated pairwise averaging."""
    out = plane.astype(np.float32)
    while f > 1:
        out = (out[0::2] + out[1::2]) * 0.5
        out = (out[:, 0::2] + out[:, 1::2]) * 0.5
        f //= 2
    return out


def _gather_sad(
    blocks: np.ndarray,
    flat: np.ndarray,
    base: np.ndarray,
    wp: int,
    area: int,
    mv: np.ndarray,
    sel: np.ndarray,
) -> np.ndarray:
    """SAD of blocks ``sel`` (rows of ``blocks``/``base``) at their vectors ``mv``.

    ``flat`` is the raveled reference of row stride ``wp``; ``base`` holds each block's
    pixel indices at vector zero; the SAD is scaled by ``area`` (decimation factor^2).
    """
    pred = np.take(flat, base[sel] + (mv[:, 0] * wp + mv[:, 1])[:, None])
    # float32 sums of whole numbers below 2**24 are exact whatever the summation order
    ones = np.ones(blocks.shape[1], np.float32)
    return (np.abs(blocks[sel] - pred) @ ones).astype(np.float64) * area


def _square(mv: np.ndarray, step: int) -> list[np.ndarray]:
    """The 8 fields offset from ``mv`` by ``step`` in each direction."""
    offsets = [(dy, dx) for dy in (-step, 0, step) for dx in (-step, 0, step) if dy or dx]
    return [mv + np.array(o) for o in offsets]


def _neighbours(mv: np.ndarray) -> list[np.ndarray]:
    """Fields holding each block's left, right, above and below vectors (own at edges)."""
    out = []
    for axis in (0, 1):
        for shift in (1, -1):
            n = np.roll(mv, shift, axis=axis)
            edge = [slice(None)] * 3
            edge[axis] = 0 if shift == 1 else -1
            n[tuple(edge)] = mv[tuple(edge)]
            out.append(n)
    return out


def _mv_bits(d: np.ndarray) -> np.ndarray:
    """Approximate bits of a signed vector component difference (Exp-Golomb like)."""
    return 1.0 + 2.0 * np.floor(np.log2(np.abs(d) + 1.0))


def _median_pred(mv: np.ndarray) -> np.ndarray:
    """Median of left, above and above-right vectors (above-left at the right edge).

    The first row predicts from the left only.  Missing neighbours count as zero.
    Must match :meth:`_Codec._walk`, which does the same one block at a time.
    """
    nmy, nmx, _ = mv.shape
    left = np.zeros_like(mv)
    left[:, 1:] = mv[:, :-1]
    above = np.zeros_like(mv)
    above[1:] = mv[:-1]
    ar = np.zeros_like(mv)
    ar[1:, :-1] = mv[:-1, 1:]
    if nmx > 1:
        ar[1:, -1] = mv[:-1, -2]
    med = left + above + ar - np.maximum(np.maximum(left, above), ar)
    med -= np.minimum(np.minimum(left, above), ar)
    med[0] = left[0]
    return med


def _skip_pred(mv: np.ndarray) -> np.ndarray:
    """Vector a SKIP macroblock inherits (H.264 P_Skip rule) given its neighbours.

    Zero at the top row and left column or when the left or above vector is zero (so
    still background stays still), otherwise the median prediction.
    """
    med = _median_pred(mv)
    zero = np.zeros(mv.shape[:2], bool)
    zero[0] = True
    zero[:, 0] = True
    zero[1:, 1:] |= (mv[1:, :-1] == 0).all(axis=2) | (mv[:-1, 1:] == 0).all(axis=2)
    return np.where(zero[..., None], 0, med)


def _six_tap(a: np.ndarray, axis: int) -> np.ndarray:
    """H.264 half-sample filter (1, -5, 20, 20, -5, 1), unscaled; output is 5 shorter."""
    n = a.shape[axis]

    def sl(o: int) -> np.ndarray:
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(o, n - 5 + o)
        return a[tuple(idx)]

    return sl(0) - 5 * sl(1) + 20 * sl(2) + 20 * sl(3) - 5 * sl(4) + sl(5)


# ---------------------------------------------------------------------------- the codec


class _Codec:
    """Per-sequence state shared by encoder and decoder: tables, models, reference."""

    def __init__(self, p: dict) -> None:
        self.w, self.h = p["w"], p["h"]
        self.mb = p["mb"]
        self.tb = min(p["tb"], self.mb)
        self.tbc = min(p["tb"], self.mb // 2)
        self.s = p["s"]
        self.range = p["range"]
        self.esc = p["esc"]
        self.deblock = p["deblock"]
        self.ph = -(-self.h // self.mb) * self.mb
        self.pw = -(-self.w // self.mb) * self.mb
        self.nmy, self.nmx = self.ph // self.mb, self.pw // self.mb
        self.margin = self.range + 4
        self.mat, self.zz, self.unzz, self.tables = {}, {}, {}, {}
        for b in {self.tb, self.tbc}:
            self.mat[b] = _dct_matrix(b)
            self.zz[b] = _zigzag(b)
            self.unzz[b] = np.argsort(self.zz[b])
            self.tables[b] = _Tables(b * b)
        # (picture type, plane kind) -> steps; picture type 0 = intra, 1 = inter
        bs = (self.tb, self.tbc)
        self.step = {
            (0, 0): p["siy"], (0, 1): p["sic"], (1, 0): p["spy"], (1, 1): p["spc"],
        }  # fmt: skip
        self.steps = {
            key: _step_vector(bs[key[1]], st, p["slope"], self.zz[bs[key[1]]])
            for key, st in self.step.items()
        }
        win = p["win"]
        self.models = {
            (t, k): _PlaneModels(bs[k] ** 2, self.esc, win) for t in (0, 1) for k in (0, 1)
        }
        self.skip_model = _Model(6, np.ones(2, np.int64), win)
        self.res_model = _Model(9, np.ones(2, np.int64), win)
        self.mv_model = _Model(6, _magnitude_prior(_MV_ESCAPE + 1), win)
        self.mv_exp = _Model(1, _magnitude_prior(_EXP_SYMBOLS), win)
        self.prev_state = np.zeros((self.nmy, self.nmx), np.int64)
        self.ref: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._up: np.ndarray | None = None
        self._lbase = self._luma_base()
        self._cbase = self._chroma_base()
        self._chroma_pad: list | None = None

    # ------------------------------------------------------------------ transforms

    def _block_size(self, kind: int) -> int:
        return self.tb if kind == 0 else self.tbc

    def _forward(self, plane: np.ndarray, kind: int) -> np.ndarray:
        b = self._block_size(kind)
        m = self.mat[b]
        blocks = _to_blocks(plane, b)
        nby, nbx = blocks.shape[:2]
        return (m @ blocks @ m.T).reshape(nby, nbx, b * b)[..., self.zz[b]]

    def _inverse(self, levels: np.ndarray, ptype: int, kind: int) -> np.ndarray:
        b = self._block_size(kind)
        m = self.mat[b]
        nby, nbx = levels.shape[:2]
        coef = (levels * self.steps[ptype, kind])[..., self.unzz[b]].reshape(nby, nbx, b, b)
        return _from_blocks(m.T @ coef @ m)

    def _shape(self, kind: int) -> tuple[int, int, int]:
        b = self._block_size(kind)
        f = 1 if kind == 0 else 2
        return self.ph // f // b, self.pw // f // b, b * b

    # ------------------------------------------------------------------ intra pictures

    def intra_plane(self, io: _Coder, kind: int, src: np.ndarray | None) -> np.ndarray:
        """Code one padded plane of an intra picture; returns its reconstruction."""
        steps = self.steps[0, kind]
        coded = None
        if io.encoding:
            coef = self._forward(src.astype(np.float64) - 128.0, kind)
            q = _quantise(coef, steps, DEADZONE_INTRA)
            q[..., 0] = np.floor(coef[..., 0] / steps[0] + 0.5).astype(np.int64)
            q = _rdo_eob(coef, q, steps, RDO_LAMBDA * float(steps[0]) ** 2, 1)[0]
            coded = q.copy()
            dc = q[..., 0]
            res = np.diff(dc, axis=1, prepend=0)
            res[:, 0] = np.diff(dc[:, 0], prepend=0)
            coded[..., 0] = res
        b = self._block_size(kind)
        lv = _code_plane(
            io, self.models[0, kind], self.tables[b], self.esc, coded, self._shape(kind)
        )
        res = lv[..., 0].copy()
        res[:, 0] = np.cumsum(lv[:, 0, 0])
        lv[..., 0] = np.cumsum(res, axis=1)
        pix = self._inverse(lv, 0, kind) + 128.0
        rec = np.clip(np.floor(pix + 0.5), 0, 255).astype(np.uint8)
        return _deblock(rec, b, self.step[0, kind], self.deblock)

    def intra_picture(self, io: _Coder, src: tuple | None) -> tuple:
        rec = tuple(self.intra_plane(io, k, None if src is None else src[i])
                    for i, k in enumerate((0, 1, 1)))  # fmt: skip
        self.prev_state = np.zeros((self.nmy, self.nmx), np.int64)
        self._set_ref(rec)
        return rec

    # ------------------------------------------------------------- motion compensation

    def _set_ref(self, rec: tuple) -> None:
        """New reference picture; its interpolated/padded forms are built when first used."""
        self.ref = rec
        self._up = None
        self._chroma_pad = None

    def _upsampled(self) -> np.ndarray:
        if self._up is None:
            self._up = self._upsample(self.ref[0])
        return self._up

    def _upsample(self, ref: np.ndarray) -> np.ndarray:
        """Reference luma with a margin, at ``s`` x resolution (6-tap halves, bilinear quarters)."""
        m = self.margin
        p = np.pad(ref, m + 3, mode="edge").astype(np.int32)
        g = p[3:-3, 3:-3]
        if self.s == 1:
            return g.astype(np.uint8)
        hh, ww = g.shape
        b1 = _six_tap(p, 1)[:, 1 : 1 + ww]
        up = np.empty((2 * hh, 2 * ww), np.int16)
        up[0::2, 0::2] = g
        up[0::2, 1::2] = np.clip((b1[3:-3] + 16) >> 5, 0, 255)
        up[1::2, 0::2] = np.clip((_six_tap(p[:, 3:-3], 0)[1 : 1 + hh] + 16) >> 5, 0, 255)
        up[1::2, 1::2] = np.clip((_six_tap(b1, 0)[1 : 1 + hh] + 512) >> 10, 0, 255)
        if self.s == 2:
            return up.astype(np.uint8)
        e = np.pad(up, ((0, 1), (0, 1)), mode="edge")
        right, down, diag = e[:-1, 1:], e[1:, :-1], e[1:, 1:]
        q = np.empty((4 * hh, 4 * ww), np.uint8)
        q[0::2, 0::2] = up
        q[0::2, 1::2] = (up + right + 1) >> 1
        q[1::2, 0::2] = (up + down + 1) >> 1
        q[1::2, 1::2] = (up + right + down + diag + 2) >> 2
        return q

    def _luma_base(self) -> np.ndarray:
        """Indices into the upsampled reference of every macroblock pixel at vector zero.

        Shape (macroblocks, mb * mb), macroblocks in raster order.
        """
        mb, s, m = self.mb, self.s, self.margin
        wu = (self.pw + 2 * m) * s
        yy = (np.arange(self.nmy)[:, None, None, None] * mb + np.arange(mb)[:, None] + m) * s
        xx = (np.arange(self.nmx)[None, :, None, None] * mb + np.arange(mb)[None, :] + m) * s
        return (yy * wu + xx).astype(np.int64).reshape(-1, mb * mb)

    def _chroma_base(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column (in the margin-padded chroma plane) of every macroblock pixel."""
        c, mc = self.mb // 2, self.margin // 2 + 2
        yy = np.arange(self.nmy)[:, None, None, None] * c + np.arange(c)[:, None] + mc
        xx = np.arange(self.nmx)[None, :, None, None] * c + np.arange(c)[None, :] + mc
        shape = (self.nmy, self.nmx, c, c)
        return (
            np.broadcast_to(yy, shape).reshape(-1, c * c).astype(np.int64),
            np.broadcast_to(xx, shape).reshape(-1, c * c).astype(np.int64),
        )

    def _mc_luma(self, mv: np.ndarray, sel: np.ndarray | None = None) -> np.ndarray:
        """Luma prediction (macroblocks, mb * mb) for flat vectors ``mv`` (1/s pixels).

        ``sel`` picks a subset of macroblocks (``mv`` then holds only their vectors).
        """
        base = self._lbase if sel is None else self._lbase[sel]
        wu = (self.pw + 2 * self.margin) * self.s
        return np.take(self._upsampled(), base + (mv[:, 0] * wu + mv[:, 1])[:, None])

    def _mc_chroma(self, i: int, mv: np.ndarray, sel: np.ndarray | None = None) -> np.ndarray:
        """Bilinear chroma prediction at 1/(2s) pixel (the luma vector, same number)."""
        if self._chroma_pad is None:
            mc = self.margin // 2 + 2
            self._chroma_pad = [
                np.pad(self.ref[k], mc, mode="edge").astype(np.int32).ravel() for k in (1, 2)
            ]
        flat = self._chroma_pad[i - 1]
        wp = self.pw // 2 + 2 * (self.margin // 2 + 2)
        cy, cx = self._cbase if sel is None else (self._cbase[0][sel], self._cbase[1][sel])
        d = 2 * self.s
        sh = d.bit_length() - 1
        py = cy * d + mv[:, :1]
        px = cx * d + mv[:, 1:]
        fy, fx = py & (d - 1), px & (d - 1)
        i0 = (py >> sh) * wp + (px >> sh)
        a, b = np.take(flat, i0), np.take(flat, i0 + 1)
        cc, dd = np.take(flat, i0 + wp), np.take(flat, i0 + wp + 1)
        val = (d - fx) * (d - fy) * a + fx * (d - fy) * b + (d - fx) * fy * cc + fx * fy * dd
        return (val + (d * d) // 2) >> (2 * sh)

    # ---------------------------------------------------------------- motion search

    def _search(self, src: np.ndarray, lam_m: float) -> np.ndarray:
        """Coarse-to-fine block matching; returns vectors (nmy, nmx, 2) in 1/s pixels."""
        mb, s, rng = self.mb, self.s, self.range
        ref = self.ref[0]
        srcf = src.astype(np.float32)
        levels = 0
        while levels < 2 and (mb >> (levels + 1)) >= 4:
            levels += 1
        # full search on the decimated picture
        f = 1 << levels
        s_l, r_l = _decimate(srcf, f), _decimate(ref.astype(np.float32), f)
        bl = mb // f
        rc = -(-rng // f)
        rp = np.pad(r_l, rc, mode="edge")
        h, w = s_l.shape
        best = np.full((self.nmy, self.nmx), np.inf, np.float32)
        mv = np.zeros((self.nmy, self.nmx, 2), np.int64)
        cands = sorted(
            ((dy, dx) for dy in range(-rc, rc + 1) for dx in range(-rc, rc + 1)),
            key=lambda t: (abs(t[0]) + abs(t[1]), t),
        )
        for dy, dx in cands:
            d = np.abs(s_l - rp[rc + dy : rc + dy + h, rc + dx : rc + dx + w])
            cost = d.reshape(self.nmy, bl, self.nmx, bl).sum(axis=(1, 3)) * (f * f)
            cost += lam_m * float(_mv_bits(np.array(dy * f * s)) + _mv_bits(np.array(dx * f * s)))
            better = cost < best
            best = np.where(better, cost, best)
            mv[better] = (dy, dx)
        # +-1 refinement on the intermediate levels
        for lev in range(levels - 1, 0, -1):
            f = 1 << lev
            mv *= 2
            s_l, r_l = _decimate(srcf, f), _decimate(ref.astype(np.float32), f)
            bl = mb // f
            lim = -(-rng // f)
            pad = lim + 1
            rp = np.pad(r_l, pad, mode="edge")
            wp = rp.shape[1]
            yy = np.arange(self.nmy)[:, None, None, None] * bl + np.arange(bl)[:, None] + pad
            xx = np.arange(self.nmx)[None, :, None, None] * bl + np.arange(bl)[None, :] + pad
            base = (yy * wp + xx).reshape(-1, bl * bl)
            blocks = _to_blocks(s_l, bl).reshape(-1, bl * bl)
            cost = functools.partial(_gather_sad, blocks, rp.ravel(), base, wp, f * f)
            mv = self._refine(mv, _square(mv, 1), lim, cost, lam_m, scale=s * f)
        # full resolution, on the interpolated reference (vectors in 1/s pixels)
        if levels:
            mv *= 2
        mv *= s
        blocks = _to_blocks(src.astype(np.float32), mb).reshape(-1, mb * mb)
        wu = (self.pw + 2 * self.margin) * s
        sad = functools.partial(_gather_sad, blocks, self._upsampled(), self._lbase, wu, 1)
        lim = rng * s
        pmv = _median_pred(mv)
        cands = _square(mv, s) + [0 * mv, pmv, (pmv // s) * s] + _neighbours(mv)
        mv = self._refine(mv, cands, lim, sad, lam_m, scale=1)
        step = s // 2
        while step >= 1:
            mv = self._refine(mv, _square(mv, step), lim, sad, lam_m, scale=1)
            step //= 2
        # propagate good vectors between neighbours, which also smooths the field
        for _ in range(ME_ROUNDS):
            cands = [_median_pred(mv)] + _neighbours(mv)
            mv = self._refine(mv, cands, lim, sad, lam_m, scale=1)
        return mv

    def _refine(
        self,
        mv: np.ndarray,
        cands: list[np.ndarray],
        lim: int,
        cost_fn: typing.Callable[[np.ndarray, np.ndarray], np.ndarray],
        lam_m: float,
        scale: int,
    ) -> np.ndarray:
        """Keep, per block, the best of ``mv`` and the candidate fields ``cands``.

        The cost is ``cost_fn`` (SAD of the selected blocks) plus ``lam_m`` times the
        estimated bits of the difference to the median prediction; ``scale`` converts
        vectors to 1/s pixels.  Only blocks whose candidate differs are evaluated.
        """
        shape = mv.shape
        pmv = _median_pred(mv).reshape(-1, 2)

        def total(m: np.ndarray, sel: np.ndarray) -> np.ndarray:
            d = (m - pmv[sel]) * scale
            return cost_fn(m, sel) + lam_m * (_mv_bits(d[:, 0]) + _mv_bits(d[:, 1]))

        best_mv = np.clip(mv, -lim, lim).reshape(-1, 2).copy()
        best = total(best_mv, np.arange(len(best_mv)))
        for cand in cands:
            cand = np.clip(cand, -lim, lim).reshape(-1, 2)
            sel = np.flatnonzero((cand != best_mv).any(axis=1))
            if len(sel) == 0:
                continue
            c = total(cand[sel], sel)
            better = c < best[sel]
            idx = sel[better]
            best[idx] = c[better]
            best_mv[idx] = cand[idx]
        return best_mv.reshape(shape)

    # ------------------------------------------------------------------ P pictures

    def _predict(self, mv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Motion-compensated (Y, U, V) planes for the vector field ``mv``."""
        flat = mv.reshape(-1, 2)
        c = self.mb // 2
        y = _from_blocks(self._mc_luma(flat).reshape(self.nmy, self.nmx, self.mb, self.mb))
        u = _from_blocks(self._mc_chroma(1, flat).reshape(self.nmy, self.nmx, c, c))
        v = _from_blocks(self._mc_chroma(2, flat).reshape(self.nmy, self.nmx, c, c))
        return y, u, v

    def _walk(self, skip: np.ndarray, values: np.ndarray, diffs: bool) -> np.ndarray:
        """Build the final vector field one macroblock at a time, in raster order.

        SKIP macroblocks take the P_Skip vector of :func:`_skip_pred`; coded ones take
        ``values`` (one row per coded macroblock) added to the median prediction of
        :func:`_median_pred` when ``diffs`` is true (decoder), or ``values[r, c]`` as
        is (encoder).  The scalar rules here must match those two vectorised functions.
        """
        nmy, nmx = skip.shape
        lim = self.range * self.s
        field = [[(0, 0)] * nmx for _ in range(nmy)]
        vals = values.tolist()
        sk = skip.tolist()
        k = 0
        for r in range(nmy):
            row = field[r]
            up = field[r - 1] if r else None
            for c in range(nmx):
                left = row[c - 1] if c else (0, 0)
                if up is None:
                    pred = left
                else:
                    a = up[c]
                    ar = up[c + 1] if c + 1 < nmx else (up[c - 1] if c else (0, 0))
                    pred = (
                        sorted((left[0], a[0], ar[0]))[1],
                        sorted((left[1], a[1], ar[1]))[1],
                    )
                if sk[r][c]:
                    if up is None or c == 0 or left == (0, 0) or up[c] == (0, 0):
                        row[c] = (0, 0)
                    else:
                        row[c] = pred
                    continue
                if diffs:
                    v = (pred[0] + vals[k][0], pred[1] + vals[k][1])
                    k += 1
                else:
                    v = tuple(vals[r][c])
                if abs(v[0]) > lim or abs(v[1]) > lim:
                    raise ValueError("motion vector out of range")
                row[c] = v
        return np.array(field, np.int64).reshape(nmy, nmx, 2)

    def _mb_factor(self, kind: int) -> int:
        """Transform blocks per macroblock side in a plane of this kind."""
        return (self.mb if kind == 0 else self.mb // 2) // self._block_size(kind)

    def _code_inter(
        self,
        io: _Coder,
        skip: np.ndarray | None,
        mv: np.ndarray | None,
        levels: list | None,
    ) -> tuple:
        """Skip flags, vector differences, residual flags and levels of one P picture.

        Contexts: skip flags from the previous picture's modes around the macroblock;
        the horizontal vector difference from how many of left/above are coded, the
        vertical one from the size of the horizontal one; the residual flag from the
        vector difference size and the previous picture's mode at the same place.
        """
        enc = io.encoding
        ps = np.pad((self.prev_state == 0).astype(np.int64), 1)
        ctx = ps[1:-1, 1:-1] + ps[:-2, 1:-1] + ps[2:, 1:-1] + ps[1:-1, :-2] + ps[1:-1, 2:]
        skip = io.sym(self.skip_model, ctx.ravel(), skip.ravel() if enc else None)
        skip = skip.reshape(self.nmy, self.nmx).astype(bool)
        coded = ~skip
        cp = np.pad(coded.astype(np.int64), ((1, 0), (1, 0)))
        nb = (cp[:-1, 1:] + cp[1:, :-1])[coded]
        mvd = (mv - _median_pred(mv))[coded] if enc else None
        amvd = np.minimum(np.abs(mvd), _MV_ESCAPE) if enc else None
        mx = io.sym(self.mv_model, nb, amvd[:, 1] if enc else None)
        my = io.sym(self.mv_model, 3 + np.minimum(mx, 2), amvd[:, 0] if enc else None)
        mags = np.stack([my, mx], axis=1)
        d = _code_tail(io, self.mv_exp, mags, mvd, _MV_ESCAPE)
        if not enc:
            mv = self._walk(skip, d, diffs=True)
        big = np.abs(d).sum(axis=1)
        rctx = np.where(big == 0, 0, np.where(big <= 2, 1, 2)) * 3 + self.prev_state[coded]
        has_res = None
        if enc:
            has_res = np.zeros((self.nmy, self.nmx), bool)
            for i, kind in enumerate((0, 1, 1)):
                nz = (levels[i] != 0).any(axis=2).astype(np.int64)
                has_res |= _per_group(nz, self._mb_factor(kind)) > 0
            has_res = has_res[coded]
        res = io.sym(self.res_model, rctx, has_res if enc else None).astype(bool)
        with_res = np.zeros((self.nmy, self.nmx), bool)
        with_res[coded] = res
        out = []
        for i, kind in enumerate((0, 1, 1)):
            b = self._block_size(kind)
            lv = _code_plane(
                io, self.models[1, kind], self.tables[b], self.esc,
                levels[i] if enc else None, self._shape(kind),
                _expand(with_res, self._mb_factor(kind)),
            )  # fmt: skip
            out.append(lv)
        self.prev_state = np.where(skip, 0, np.where(with_res, 2, 1))
        return mv, out

    def _recon_inter(self, mv: np.ndarray, levels: list) -> tuple:
        """Prediction + residual, clipped, then in-loop deblocking (shared by both sides)."""
        pred = self._predict(mv)
        rec = []
        for i, kind in enumerate((0, 1, 1)):
            b = self._block_size(kind)
            pix = pred[i] + self._inverse(levels[i], 1, kind)
            r = np.clip(np.floor(pix + 0.5), 0, 255).astype(np.uint8)
            flags = (levels[i] != 0).any(axis=2)
            mvb = _expand(mv, self._mb_factor(kind))
            rec.append(_deblock(r, b, self.step[1, kind], self.deblock, flags, mvb))
        rec = tuple(rec)
        self._set_ref(rec)
        return rec

    def inter_picture(self, io: _Coder, src: tuple | None) -> tuple:
        skip = mv = levels = None
        if io.encoding:
            skip, mv, levels = self._decide(src)
        mv, levels = self._code_inter(io, skip, mv, levels)
        return self._recon_inter(mv, levels)

    def _skip_cost(self, src_blocks: list, mv: np.ndarray, sel: np.ndarray) -> np.ndarray:
        """SSD over the three planes of macroblocks ``sel`` predicted with vectors ``mv``."""
        pred = (self._mc_luma(mv, sel), self._mc_chroma(1, mv, sel), self._mc_chroma(2, mv, sel))
        total = np.zeros(len(sel))
        for sb, p in zip(src_blocks, pred, strict=True):
            total += ((sb[sel] - p) ** 2).sum(axis=1)
        return total

    def _decide(self, src: tuple) -> tuple:
        """Motion search and the Lagrangian SKIP/coded choice for every macroblock.

        A SKIP macroblock inherits its vector from its final neighbours, so the choice is
        repeated (up to SKIP_PASSES times, until it settles) against the field the
        previous choice produced; only macroblocks whose SKIP vector changed are re-costed.
        """
        lam = MODE_LAMBDA * self.step[1, 0] ** 2
        mv = self._search(src[0], math.sqrt(lam))
        pred = self._predict(mv)
        levels, d_coded, r_res, n_nz = [], 0.0, 0.0, 0
        for i, kind in enumerate((0, 1, 1)):
            f = self._mb_factor(kind)
            steps = self.steps[1, kind]
            coef = self._forward(src[i].astype(np.float64) - pred[i], kind)
            q = _quantise(coef, steps, DEADZONE_INTER)
            q, dist, rate = _rdo_eob(coef, q, steps, RDO_LAMBDA * float(steps[0]) ** 2, 0)
            levels.append(q)
            d_coded = d_coded + _per_group(dist, f)
            r_res = r_res + _per_group(rate, f)
            n_nz = n_nz + _per_group((q != 0).any(axis=2).astype(np.int64), f)
        pmv = _median_pred(mv)
        r_mv = _mv_bits(mv[..., 0] - pmv[..., 0]) + _mv_bits(mv[..., 1] - pmv[..., 1])
        j_coded = d_coded + lam * (2.0 + r_mv + np.where(n_nz > 0, r_res, 0.0))
        c = self.mb // 2
        src_blocks = [_to_blocks(src[0], self.mb).reshape(-1, self.mb**2).astype(np.int64)] + [
            _to_blocks(src[k], c).reshape(-1, c * c).astype(np.int64) for k in (1, 2)
        ]
        j_skip = np.zeros(self.nmy * self.nmx)
        field, skip, last = mv, None, None
        for _ in range(SKIP_PASSES):
            smv = _skip_pred(field)
            flat = smv.reshape(-1, 2)
            changed = np.ones(len(flat), bool) if last is None else (flat != last).any(axis=1)
            sel = np.flatnonzero(changed)
            j_skip[sel] = self._skip_cost(src_blocks, flat[sel], sel) + lam * 1.0
            last = flat
            new = j_skip.reshape(self.nmy, self.nmx) <= j_coded
            # a coded macroblock that would code nothing is a SKIP in disguise
            new |= (n_nz == 0) & (mv == smv).all(axis=2)
            if skip is not None and (new == skip).all():
                break
            skip = new
            field = self._walk(skip, mv, diffs=False)
        for i, kind in enumerate((0, 1, 1)):
            levels[i] = np.where(_expand(skip, self._mb_factor(kind))[..., None], 0, levels[i])
        return skip, field, levels


# ------------------------------------------------------------------------------ entry


def _check_frames(frames: list) -> tuple[int, int]:
    """Validate the 4:2:0 input (even sizes, same shape throughout); returns (H, W)."""
    if not frames:
        raise ValueError("no frames to encode")
    h, w = np.asarray(frames[0][0]).shape
    if h % 2 or w % 2 or h > 16384 or w > 16384:
        raise ValueError("width and height must be even and at most 16384")
    for y, u, v in frames:
        if (np.shape(y), np.shape(u), np.shape(v)) != ((h, w), (h // 2, w // 2), (h // 2, w // 2)):
            raise ValueError("all frames must be 4:2:0 with the first frame's size")
    return h, w


def _quality_step(quality: int) -> float:
    """P-picture luma step: doubles every 12 quality points; QP_SCALE at quality 100."""
    q = min(100, max(1, int(quality)))
    return QP_SCALE * 2.0 ** ((100 - q) / 12.0)


def encode(frames: list, fps: float, quality: int) -> bytes:
    """Encode ``(Y, U, V)`` uint8 4:2:0 frames into a self-describing bitstream."""
    h, w = _check_frames(frames)
    quality = min(100, max(1, int(quality)))
    spy = _quality_step(quality)
    p = {
        "w": w, "h": h, "tb": int(BLOCK_SIZE), "mb": int(MB_SIZE), "s": int(MV_PRECISION),
        "range": int(SEARCH_RANGE), "esc": int(ESCAPE), "win": int(ADAPT_WINDOW),
        "siy": spy * I_QP_RATIO, "sic": spy * I_QP_RATIO * CHROMA_QP_RATIO,
        "spy": spy, "spc": spy * CHROMA_QP_RATIO, "slope": float(FREQ_SLOPE),
        "deblock": float(DEBLOCK),
    }  # fmt: skip
    header = _HEADER.pack(
        _MAGIC, _VERSION, w, h, len(frames), float(fps), quality, p["tb"], p["mb"],
        p["s"], p["range"], p["esc"], p["win"], p["siy"], p["sic"], p["spy"], p["spc"],
        p["slope"], p["deblock"],
    )  # fmt: skip
    codec = _Codec(p)
    io = _Coder()
    gop = max(1, int(GOP_SIZE))
    for i, (y, u, v) in enumerate(frames):
        src = (
            _pad(np.asarray(y), codec.ph, codec.pw),
            _pad(np.asarray(u), codec.ph // 2, codec.pw // 2),
            _pad(np.asarray(v), codec.ph // 2, codec.pw // 2),
        )
        intra = i % gop == 0
        io.bits(np.array([int(intra)]), 1)
        if intra:
            codec.intra_picture(io, src)
        else:
            codec.inter_picture(io, src)
    body = header + io.words().astype("<u4").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def decode(bitstream: bytes) -> list:
    """Decode a bitstream made by :func:`encode` using nothing but its bytes."""
    data = bytes(bitstream)
    if len(data) < _HEADER.size + 4 or (len(data) - _HEADER.size) % 4:
        raise ValueError("bitstream too short or misaligned")
    if struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise ValueError("bitstream CRC mismatch (corrupted or truncated)")
    f = _HEADER.unpack_from(data)
    magic, ver, w, h, nf = f[:5]
    if magic != _MAGIC or ver != _VERSION:
        raise ValueError("not an inter_mc bitstream")
    keys = ("tb", "mb", "s", "range", "esc", "win", "siy", "sic", "spy", "spc", "slope", "deblock")
    p = dict(zip(keys, f[7:], strict=True))
    p["w"], p["h"] = w, h
    if (
        p["tb"] not in (4, 8, 16) or p["mb"] not in (8, 16, 32) or p["s"] not in (1, 2, 4)
        or not (0 < w <= 16384 and 0 < h <= 16384) or p["esc"] < 2 or p["win"] < 1
        or not 1 <= p["range"] <= 64
    ):  # fmt: skip
        raise ValueError("bad header")
    words = np.frombuffer(data[_HEADER.size : -4], dtype="<u4").astype(np.uint32)
    codec = _Codec(p)
    io = _Coder(words)
    out = []
    for i in range(nf):
        intra = bool(io.bits(None, 1)[0])
        if not intra and i == 0:
            raise ValueError("first picture is not intra")
        rec = codec.intra_picture(io, None) if intra else codec.inter_picture(io, None)
        y, u, v = rec
        out.append((y[:h, :w].copy(), u[: h // 2, : w // 2].copy(), v[: h // 2, : w // 2].copy()))
    return out
