"""Entropy coding of quantised levels (rows of zig-zag blocks) and of small signed integers."""

from codeclab.design.components import component

ADAPTIVE_RANGE = component(
    "entropy",
    "adaptive_range",
    "context-adaptive range coding (constriction): end-of-block, band/last/above contexts",
    '''
# Largest level magnitude coded with its own symbol; larger ones use an escape.
ESCAPE = 15  # @param int 2..40
# How many recent symbols a context remembers (adaptation speed).
ADAPT_WINDOW = 1024  # @param int 32..16384

AR_INC = 32
AR_FAMILY = constriction.stream.model.Categorical(perfect=False)
AR_HALF = constriction.stream.model.Categorical(np.array([0.5, 0.5], np.float32), perfect=False)


def entropy_config():
    return {"ESCAPE": ESCAPE, "ADAPT_WINDOW": ADAPT_WINDOW}


class AdaptiveModel:
    """Frequency tables, one row per context, updated identically by encoder and decoder."""

    def __init__(self, n_ctx, n_sym, window):
        prior = np.maximum(1, (AR_INC * 4) >> np.minimum(np.arange(n_sym), 30))
        self.counts = np.tile(prior.astype(np.float32), (n_ctx, 1))
        self.totals = self.counts.sum(axis=1)
        self.limit = float(window * AR_INC)

    def update(self, ctx, sym):
        n_ctx, n_sym = self.counts.shape
        hist = np.bincount(ctx * n_sym + sym, minlength=n_ctx * n_sym).astype(np.float32)
        self.counts += hist.reshape(n_ctx, n_sym) * AR_INC
        self.totals += np.bincount(ctx, minlength=n_ctx).astype(np.float32) * AR_INC
        big = self.totals > self.limit
        if big.any():
            self.counts[big] = np.floor((self.counts[big] + 1.0) * 0.5)
            self.totals[big] = self.counts[big].sum(axis=1)


class RangeIO:
    """Encodes given symbols, or decodes them: both sides run the same coding functions."""

    def __init__(self, data=None):
        self.encoding = data is None
        if self.encoding:
            self.enc = constriction.stream.queue.RangeEncoder()
        else:
            words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
            self.dec = constriction.stream.queue.RangeDecoder(words)

    def sym(self, model, ctx, values):
        if ctx.size == 0:
            return np.zeros(0, np.int64)
        probs = model.counts[ctx]
        if self.encoding:
            self.enc.encode(np.asarray(values, np.int32), AR_FAMILY, probs)
            out = np.asarray(values, np.int64)
        else:
            out = self.dec.decode(AR_FAMILY, probs).astype(np.int64)
        model.update(ctx, out)
        return out

    def bits(self, values, n):
        if n == 0:
            return np.zeros(0, np.int64)
        if self.encoding:
            self.enc.encode(np.asarray(values, np.int32), AR_HALF)
            return np.asarray(values, np.int64)
        return self.dec.decode(AR_HALF, n).astype(np.int64)

    def getvalue(self):
        return self.enc.get_compressed().astype("<u4").tobytes()


def ar_tail(io, mags, values, escape, window):
    """Escapes (adaptive Exp-Golomb exponent + raw bits) and signs; returns signed values."""
    pos = np.nonzero(mags == escape)
    n_esc = len(pos[0])
    if n_esc:
        if io.encoding:
            v = np.abs(values[pos]) - escape + 1
            x = np.zeros(n_esc, np.int64)
            for t in range(1, 31):
                x += (v >> t) > 0
        exp_model = AdaptiveModel(1, 31, window)
        x = io.sym(exp_model, np.zeros(n_esc, np.int64), x if io.encoding else None)
        owner = np.repeat(np.arange(n_esc), x)
        shift = np.arange(int(x.sum())) - np.repeat(np.cumsum(x) - x, x)
        b = io.bits((v[owner] >> shift) & 1 if io.encoding else None, len(owner))
        rest = np.bincount(owner, weights=b << shift, minlength=n_esc).astype(np.int64)
        mags[pos] = escape + (1 << x) + rest - 1
    nz = np.nonzero(mags)
    sign = io.bits((values[nz] < 0).astype(np.int64) if io.encoding else None, len(nz[0]))
    mags[nz] *= 1 - 2 * sign
    return mags


def ar_levels(io, levels, count, n, row, cfg):
    """Per row of blocks: each block's end-of-block (context: the block above), then the
    magnitudes before it (context: frequency band x is-last x the magnitude above)."""
    escape, window = int(cfg["ESCAPE"]), int(cfg["ADAPT_WINDOW"])
    t = np.arange(n) * 64.0 / n
    band = np.searchsorted(np.array([1, 2, 3, 5, 8, 12, 18, 27, 40]), t, side="right")
    eob_model = AdaptiveModel(4, n + 1, window)
    mag_model = AdaptiveModel(10 * 2 * 3, escape + 1, window)
    mags = np.zeros((count, n), np.int64)
    if io.encoding:
        nz = levels != 0
        eob_all = np.where(nz.any(axis=1), n - np.argmax(nz[:, ::-1], axis=1), 0)
        sym_all = np.minimum(np.abs(levels), escape)
    prev_e = np.zeros(row, np.int64)
    prev_m = np.zeros((row, n), np.int64)
    cols = np.arange(row)
    for r in range(count // row):
        s = slice(r * row, (r + 1) * row)
        ectx = np.searchsorted(np.array([1, 3, 7]), prev_e, side="right")
        e = io.sym(eob_model, ectx, eob_all[s] if io.encoding else None)
        total = int(e.sum())
        if total:
            blk = np.repeat(cols, e)
            k = np.arange(total) - np.repeat(np.cumsum(e) - e, e)
            last = (k == np.repeat(e, e) - 1).astype(np.int64)
            ctx = (band[k] * 2 + last) * 3 + np.minimum(prev_m[blk, k], 2)
            m = io.sym(mag_model, ctx, sym_all[s][blk, k] if io.encoding else None)
            mags[r * row + blk, k] = m
        prev_e = e
        prev_m = mags[s]
    return ar_tail(io, mags, levels, escape, window)


def entropy_encode_levels(levels, row, cfg):
    io = RangeIO()
    ar_levels(io, np.asarray(levels, np.int64), len(levels), levels.shape[1], row, cfg)
    return io.getvalue()


def entropy_decode_levels(data, count, n, row, cfg):
    return ar_levels(RangeIO(data), None, count, n, row, cfg)


def ar_ints(io, values, count, cfg):
    window = int(cfg["ADAPT_WINDOW"])
    model = AdaptiveModel(1, 17, window)
    mags = np.zeros(count, np.int64)
    a = np.minimum(np.abs(values), 16) if io.encoding else None
    for start in range(0, count, 64):
        s = slice(start, min(count, start + 64))
        ctx = np.zeros(s.stop - s.start, np.int64)
        mags[s] = io.sym(model, ctx, a[s] if io.encoding else None)
    return ar_tail(io, mags, values, 16, window)


def entropy_encode_ints(values, cfg):
    io = RangeIO()
    v = np.asarray(values, np.int64).ravel()
    ar_ints(io, v, len(v), cfg)
    return io.getvalue()


def entropy_decode_ints(data, count, cfg):
    return ar_ints(RangeIO(data), None, count, cfg)
''',
)

EXP_GOLOMB = component(
    "entropy",
    "expgolomb",
    "Exp-Golomb codes: per block ue(end-of-block) then se(level) up to it; no adaptation",
    '''
# Exp-Golomb order k of the level codes (0 suits small levels, higher larger ones).
EG_ORDER = 0  # @param int 0..3


def entropy_config():
    return {"EG_ORDER": EG_ORDER}


def eg_bits(u, k):
    """Bits (uint8 array) of order-k Exp-Golomb codes of the non-negative integers ``u``."""
    c = np.asarray(u, np.int64) + (1 << k)
    length = np.zeros(len(c), np.int64)
    for t in range(63):
        length += (c >> t) > 0
    size = 2 * length - 1 - k
    total = int(size.sum())
    owner = np.repeat(np.arange(len(c)), size)
    j = np.arange(total) - np.repeat(np.cumsum(size) - size, size)
    zeros = (length - 1 - k)[owner]
    shift = size[owner] - 1 - j
    return np.where(j < zeros, 0, (c[owner] >> np.maximum(shift, 0)) & 1).astype(np.uint8)


def eg_pack(u, k):
    bits = eg_bits(u, k)
    return struct.pack("<I", len(bits)) + np.packbits(bits).tobytes()


def eg_reader(data):
    n = struct.unpack("<I", data[:4])[0]
    bits = np.unpackbits(np.frombuffer(data[4:], np.uint8))[:n]
    return (bits + 48).tobytes().decode()


def eg_next(text, pos, k):
    one = text.find("1", pos)
    if one < 0:
        raise ValueError("truncated Exp-Golomb stream")
    z = one - pos
    end = one + z + k + 1
    return int(text[one:end], 2) - (1 << k), end


def signed_to_u(v):
    return np.where(v > 0, 2 * v - 1, -2 * v)


def u_to_signed(u):
    return (u + 1) // 2 if u % 2 else -(u // 2)


def entropy_encode_levels(levels, row, cfg):
    levels = np.asarray(levels, np.int64)
    count, n = levels.shape
    nz = levels != 0
    eob = np.where(nz.any(axis=1), n - np.argmax(nz[:, ::-1], axis=1), 0)
    inside = np.arange(n)[None, :] < eob[:, None]
    k = int(cfg["EG_ORDER"])
    head = eg_pack(eob, 0)
    body = eg_pack(signed_to_u(levels)[inside], k)
    return struct.pack("<I", len(head)) + head + body


def entropy_decode_levels(data, count, n, row, cfg):
    k = int(cfg["EG_ORDER"])
    size = struct.unpack("<I", data[:4])[0]
    heads, body = eg_reader(data[4 : 4 + size]), eg_reader(data[4 + size :])
    out = np.zeros((count, n), np.int64)
    pa = pb = 0
    for i in range(count):
        e, pa = eg_next(heads, pa, 0)
        if e > n:
            raise ValueError("end-of-block past the block")
        for j in range(e):
            u, pb = eg_next(body, pb, k)
            out[i, j] = u_to_signed(u)
    return out


def entropy_encode_ints(values, cfg):
    return eg_pack(signed_to_u(np.asarray(values, np.int64).ravel()), 0)


def entropy_decode_ints(data, count, cfg):
    text, pos, out = eg_reader(data), 0, np.zeros(count, np.int64)
    for i in range(count):
        u, pos = eg_next(text, pos, 0)
        out[i] = u_to_signed(u)
    return out
''',
)

COMPONENTS = [ADAPTIVE_RANGE, EXP_GOLOMB]
