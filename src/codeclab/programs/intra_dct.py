"""Intra-only block-DCT codec (seed program).

Every picture is coded on its own, like a better-entropy-coded JPEG:

* orthonormal block DCT on edge-padded planes (cropped again on output);
* dead-zone quantiser whose step follows ``quality`` on a log scale, with a
  rate-distortion choice of where each block's coefficients end (end-of-block);
* DPCM of the quantised DC levels (left neighbour, first column from above);
* context-adaptive range coding (``constriction``): frequency tables adapt after
  every row of blocks, identically in encoder and decoder, so no tables are sent.
  Coefficient contexts are frequency band x end-of-block class x "is last" x the
  magnitude of the same coefficient in the block above;
* an optional deblocking post-filter.

Everything the decoder needs (sizes, frame count, steps, filter and model settings)
is written in the header, and a CRC-32 guards the whole bitstream.
"""

import math
import struct
import zlib

import constriction
import numpy as np

# Transform block size in pixels (luma and chroma).
BLOCK_SIZE = 8  # @param choice 4,8,16
# Global multiplier of the quantiser step at every quality.
QP_SCALE = 1.0  # @param float 0.25..4.0
# Chroma quantiser step relative to the luma step.
CHROMA_QP_RATIO = 1.2  # @param float 0.5..3.0
# Dead zone: the rounding offset is 0.5 - DEADZONE (0 means plain rounding).
DEADZONE = 0.1  # @param float 0.0..0.5
# Extra step growth towards the highest frequency (0 = flat matrix, best for PSNR).
FREQ_SLOPE = 0.0  # @param float 0.0..2.0
# Lagrange multiplier (times step^2) for the end-of-block choice; 0 turns it off.
RDO_LAMBDA = 0.06  # @param float 0.0..1.0
# Strength of the deblocking post-filter; 0 turns it off.
DEBLOCK = 1.5  # @param float 0.0..2.0
# Largest coefficient magnitude coded directly; larger ones use an escape code.
ESCAPE = 15  # @param int 2..40
# How many recent symbols a context's frequency table remembers (adaptation speed).
ADAPT_WINDOW = 1024  # @param int 32..16384

_MAGIC = b"CLID"
_VERSION = 1
# magic, version, width, height, frames, fps, quality, block, escape, window,
# luma step, chroma step, frequency slope, deblock strength
_HEADER = struct.Struct("<4sBIIIdBBBIdddd")
_INC = 32  # count added per coded symbol
_N_BANDS = 13
_N_ECLS = 7
_N_NB = 3
_EXP_SYMBOLS = 26  # escape exponents 0..25 (values up to 2**25)
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
    """(H, W) -> (H/b, W/b, b, b) without copying more than needed."""
    h, w = plane.shape
    return plane.reshape(h // b, b, w // b, b).transpose(0, 2, 1, 3)


def _from_blocks(blocks: np.ndarray) -> np.ndarray:
    nby, nbx, b, _ = blocks.shape
    return blocks.transpose(0, 2, 1, 3).reshape(nby * b, nbx * b)


def _pad(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.pad(plane, ((0, h - plane.shape[0]), (0, w - plane.shape[1])), mode="edge")


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
    """End-of-block and coefficient-magnitude models for one kind of plane."""

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


def _code_plane(
    io: _Coder,
    models: _PlaneModels,
    tables: _Tables,
    escape: int,
    levels: np.ndarray | None,
    shape: tuple[int, int, int],
) -> np.ndarray:
    """Code a (rows, cols, n) array of zig-zag ordered signed levels row by row.

    Per block: the end-of-block (1 + index of the last nonzero level), then the
    magnitudes before it, clipped at ``escape``; after the plane, the escapes
    (Exp-Golomb with adaptive exponent) and the signs.
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
    cols = np.arange(nbx)
    for r in range(nby):
        e = io.sym(models.eob, tables.eob_ctx[prev_e], eob_all[r] if io.encoding else None)
        total = int(e.sum())
        if total:
            blk = np.repeat(cols, e)
            k = np.arange(total) - np.repeat(np.cumsum(e) - e, e)
            ctx = tables.coef_ctx[k, np.repeat(e, e)] + np.minimum(prev_m[blk, k], _N_NB - 1)
            m = io.sym(models.coef, ctx, sym_all[r, blk, k] if io.encoding else None)
            mags[r, blk, k] = m
        prev_e = e
        prev_m = mags[r]
    # escapes: value = escape + (2**x + rest - 1), x coded adaptively, rest as raw bits
    esc_pos = np.nonzero(mags == escape)
    n_esc = len(esc_pos[0])
    if n_esc:
        if io.encoding:
            v = np.abs(levels[esc_pos]) - escape + 1
            x = np.zeros(n_esc, np.int64)
            for t in range(1, _EXP_SYMBOLS):
                x += (v >> t) > 0
        x = io.sym(models.exp, np.zeros(n_esc, np.int64), x if io.encoding else None)
        owner = np.repeat(np.arange(n_esc), x)
        shift = np.arange(int(x.sum())) - np.repeat(np.cumsum(x) - x, x)
        b = io.bits((v[owner] >> shift) & 1 if io.encoding else None, len(owner))
        rest = np.bincount(owner, weights=b << shift, minlength=n_esc).astype(np.int64)
        mags[esc_pos] = escape + (1 << x) + rest - 1
    nzp = np.nonzero(mags)
    sign = io.bits((levels[nzp] < 0).astype(np.int64) if io.encoding else None, len(nzp[0]))
    mags[nzp] *= 1 - 2 * sign
    return mags


# ---------------------------------------------------------------------- quantisation


def _step_vector(b: int, step: float, slope: float, zz: np.ndarray) -> np.ndarray:
    """Per-coefficient quantiser steps in zig-zag order."""
    u = np.arange(b)[:, None]
    v = np.arange(b)[None, :]
    w = 1.0 + slope * (u + v) / (2.0 * (b - 1))
    return (step * w).reshape(-1)[zz]


def _quantise(coef: np.ndarray, steps: np.ndarray, deadzone: float) -> np.ndarray:
    return (np.sign(coef) * np.floor(np.abs(coef) / steps + (0.5 - deadzone))).astype(np.int64)


_RATE_TABLE = np.concatenate([[1.0], 3.0 + 2.0 * np.log2(np.arange(1, 1024))])


def _rate_estimate(levels: np.ndarray) -> np.ndarray:
    """Rough bits of a level inside the coded run: ~1 for zero, 3 + 2 log2|l| otherwise."""
    return np.take(_RATE_TABLE, np.minimum(np.abs(levels), 1023))


def _rdo_eob(coef: np.ndarray, levels: np.ndarray, steps: np.ndarray, lam: float) -> np.ndarray:
    """Zero each block's tail (AC only) where its distortion saving is worth less than its bits.

    For every possible end e, J(e) = sum_{1<=k<e} (D_q + lam R) + sum_{k>=e} D_0; the
    best e among those that end on a nonzero level is kept.  Fully vectorised.
    """
    if lam <= 0:
        return levels
    shp = levels.shape
    c = coef.reshape(-1, shp[-1])[:, 1:]
    q = levels.reshape(-1, shp[-1])[:, 1:]
    dq = (c - q * steps[1:]) ** 2 + lam * _rate_estimate(q)
    d0 = c**2
    zero = np.zeros((len(c), 1))
    kept = np.concatenate([zero, np.cumsum(dq, axis=1)], axis=1)
    dropped = np.concatenate([np.cumsum(d0[:, ::-1], axis=1)[:, ::-1], zero], axis=1)
    cost = kept + dropped
    valid = np.concatenate([np.ones((len(c), 1), bool), q != 0], axis=1)
    cost[~valid] = np.inf
    end = np.argmin(cost, axis=1)
    q = np.where(np.arange(q.shape[1])[None, :] < end[:, None], q, 0)
    out = levels.reshape(-1, shp[-1]).copy()
    out[:, 1:] = q
    return out.reshape(shp)


# -------------------------------------------------------------------------- deblocking


def _deblock(plane: np.ndarray, b: int, step: float, strength: float) -> np.ndarray:
    """Weak H.264-style edge filter: smooths small steps across block edges only."""
    if strength <= 0 or step <= 0:
        return plane
    alpha = strength * (1.5 * step + 1.0)
    beta = strength * (0.35 * step + 1.0)
    tc = max(1, int(strength * 0.12 * step + 0.5))
    x = plane.astype(np.int32)
    for y in (x, x.T):
        w = y.shape[1]
        if w <= b:
            continue
        p1 = y[:, b - 2 : w - 2 : b]
        p0 = y[:, b - 1 : w - 1 : b]
        q0 = y[:, b:w:b]
        q1 = y[:, b + 1 : w : b]
        ok = (np.abs(p0 - q0) < alpha) & (np.abs(p1 - p0) < beta) & (np.abs(q1 - q0) < beta)
        delta = np.clip((4 * (q0 - p0) + (p1 - q1) + 4) >> 3, -tc, tc) * ok
        y[:, b - 1 : w - 1 : b] = p0 + delta
        y[:, b:w:b] = q0 - delta
    return np.clip(x, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- planes


class _Codec:
    """Per-sequence state shared by encoder and decoder (tables, models, matrices)."""

    def __init__(
        self, b: int, step_y: float, step_c: float, slope: float, esc: int, win: int
    ) -> None:
        self.b = b
        self.n = b * b
        self.esc = esc
        self.mat = _dct_matrix(b)
        self.zz = _zigzag(b)
        self.unzz = np.argsort(self.zz)
        self.steps = (
            _step_vector(b, step_y, slope, self.zz),
            _step_vector(b, step_c, slope, self.zz),
        )
        self.tables = _Tables(self.n)
        self.models = (_PlaneModels(self.n, esc, win), _PlaneModels(self.n, esc, win))

    def plane(
        self, io: _Coder, kind: int, src: np.ndarray | None, shape: tuple[int, int]
    ) -> np.ndarray:
        """Code one padded plane; returns the reconstructed plane (uint8)."""
        b, n = self.b, self.n
        nby, nbx = shape[0] // b, shape[1] // b
        steps = self.steps[kind]
        coded = None
        if io.encoding:
            blocks = _to_blocks(src.astype(np.float64) - 128.0, b)
            coef = (self.mat @ blocks @ self.mat.T).reshape(nby, nbx, n)[..., self.zz]
            q = _quantise(coef, steps, DEADZONE)
            q[..., 0] = np.floor(coef[..., 0] / steps[0] + 0.5).astype(np.int64)
            lam = RDO_LAMBDA * float(steps[0]) ** 2
            q = _rdo_eob(coef, q, steps, lam)
            coded = q.copy()
            dc = q[..., 0]
            res = np.diff(dc, axis=1, prepend=0)
            res[:, 0] = np.diff(dc[:, 0], prepend=0)
            coded[..., 0] = res
        lv = _code_plane(io, self.models[kind], self.tables, self.esc, coded, (nby, nbx, n))
        first = np.cumsum(lv[:, 0, 0])
        res = lv[..., 0].copy()
        res[:, 0] = first
        lv[..., 0] = np.cumsum(res, axis=1)
        coef = (lv * steps)[..., self.unzz].reshape(nby, nbx, b, b)
        pix = self.mat.T @ coef @ self.mat + 128.0
        return np.clip(np.floor(_from_blocks(pix) + 0.5), 0, 255).astype(np.uint8)


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
    """Luma step: doubles every 12 quality points; 1.0 * QP_SCALE at quality 100."""
    q = min(100, max(1, int(quality)))
    return QP_SCALE * 2.0 ** ((100 - q) / 12.0)


def encode(frames: list, fps: float, quality: int) -> bytes:
    """Encode ``(Y, U, V)`` uint8 4:2:0 frames into a self-describing bitstream."""
    h, w = _check_frames(frames)
    quality = min(100, max(1, int(quality)))
    b = int(BLOCK_SIZE)
    step_y = _quality_step(quality)
    step_c = step_y * CHROMA_QP_RATIO
    header = _HEADER.pack(
        _MAGIC, _VERSION, w, h, len(frames), float(fps), quality, b, int(ESCAPE),
        int(ADAPT_WINDOW), step_y, step_c, float(FREQ_SLOPE), float(DEBLOCK),
    )  # fmt: skip
    ph, pw = -(-h // (2 * b)) * 2 * b, -(-w // (2 * b)) * 2 * b
    codec = _Codec(b, step_y, step_c, float(FREQ_SLOPE), int(ESCAPE), int(ADAPT_WINDOW))
    io = _Coder()
    for y, u, v in frames:
        codec.plane(io, 0, _pad(np.asarray(y), ph, pw), (ph, pw))
        for c in (u, v):
            codec.plane(io, 1, _pad(np.asarray(c), ph // 2, pw // 2), (ph // 2, pw // 2))
    body = header + io.words().astype("<u4").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def decode(bitstream: bytes) -> list:
    """Decode a bitstream made by :func:`encode` using nothing but its bytes."""
    data = bytes(bitstream)
    if len(data) < _HEADER.size + 4 or (len(data) - _HEADER.size) % 4:
        raise ValueError("bitstream too short or misaligned")
    if struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise ValueError("bitstream CRC mismatch (corrupted or truncated)")
    magic, ver, w, h, nf, _fps, _q, b, esc, win, step_y, step_c, slope, deblock = (
        _HEADER.unpack_from(data)
    )
    if magic != _MAGIC or ver != _VERSION:
        raise ValueError("not an intra_dct bitstream")
    if b not in (4, 8, 16) or not (0 < w <= 16384 and 0 < h <= 16384) or esc < 2 or win < 1:
        raise ValueError("bad header")
    words = np.frombuffer(data[_HEADER.size : -4], dtype="<u4").astype(np.uint32)
    ph, pw = -(-h // (2 * b)) * 2 * b, -(-w // (2 * b)) * 2 * b
    codec = _Codec(b, step_y, step_c, slope, esc, win)
    io = _Coder(words)
    out = []
    for _ in range(nf):
        y = _deblock(codec.plane(io, 0, None, (ph, pw)), b, step_y, deblock)
        u = _deblock(codec.plane(io, 1, None, (ph // 2, pw // 2)), b, step_c, deblock)
        v = _deblock(codec.plane(io, 1, None, (ph // 2, pw // 2)), b, step_c, deblock)
        out.append((y[:h, :w].copy(), u[: h // 2, : w // 2].copy(), v[: h // 2, : w // 2].copy()))
    return out
