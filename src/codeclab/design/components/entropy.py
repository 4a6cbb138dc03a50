"""Entropy coding: one coder object per bitstream, so adaptive statistics carry over from
plane to plane and picture to picture (small pictures never pay for relearning them) and
the body is one stream with no per-segment lengths or padding.

The coder codes given values (encoder) or returns decoded ones (decoder) through the very
same methods, which keeps the two sides in lock-step by construction. ``kind`` names a set
of statistics (intra luma levels, residual chroma levels, vector differences, ...).
"""

from codeclab.design.components.base import component

# The range coders share their parameters, models and coder methods; each has its own
# contexts (constants) and level coding (``levels``), pasted between these fragments.
_RANGE_HEAD = """\
# Largest level magnitude coded with its own symbol; larger ones use an escape.
ESCAPE = 15  # @param int 2..40
# How many recent symbols a context remembers (adaptation speed).
ADAPT_WINDOW = 1024  # @param int 32..16384
# Bits below a signed integer's leading one coded with adaptive models (the rest raw).
INT_TOP_BITS = 3  # @param int 0..6

AR_INC = 32
AR_FAMILY = constriction.stream.model.Categorical(perfect=False)
AR_HALF = constriction.stream.model.Categorical(np.array([0.5, 0.5], np.float32), perfect=False)
# Bit accounting for the lab's own benches (benchmarks/bench_bits.py), which set it in their
# in-process namespace to a function (key, bits); None in every program run.
BIT_LOG = None
"""
_RANGE_CODER = '''\
def entropy_config():
    return {"ESCAPE": ESCAPE, "ADAPT_WINDOW": ADAPT_WINDOW, "INT_TOP_BITS": INT_TOP_BITS}


class AdaptiveModel:
    """Frequency tables, one row per context, updated identically by encoder and decoder."""

    def __init__(self, n_ctx, n_sym, window, flat=False):
        prior = np.maximum(1, (AR_INC * 4) >> np.minimum(np.arange(n_sym), 30))
        if flat:
            prior = np.ones(n_sym)
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


class EntropyCoder:
    """Range coder with adaptive models by (kind, role), for the whole bitstream."""

    def __init__(self, cfg, data=None):
        self.encoding = data is None
        self.escape, self.window = int(cfg["ESCAPE"]), int(cfg["ADAPT_WINDOW"])
        self.int_top = int(cfg["INT_TOP_BITS"])
        self.models = {}
        if self.encoding:
            self.enc = constriction.stream.queue.RangeEncoder()
        else:
            if len(data) % 4:
                raise ValueError("entropy-coded data is not whole 32-bit words")
            self.dec = constriction.stream.queue.RangeDecoder(
                np.frombuffer(data, dtype="<u4").astype(np.uint32)
            )

    def model(self, key, n_ctx, n_sym, flat=False):
        if key not in self.models:
            self.models[key] = AdaptiveModel(n_ctx, n_sym, self.window, flat)
            self.models[key].key = key
        return self.models[key]

    def sym(self, model, ctx, values):
        if ctx.size == 0:
            return np.zeros(0, np.int64)
        probs = model.counts[ctx]
        if self.encoding:
            self.enc.encode(np.asarray(values, np.int32), AR_FAMILY, probs)
            out = np.asarray(values, np.int64)
        else:
            out = self.dec.decode(AR_FAMILY, probs).astype(np.int64)
        if BIT_LOG is not None:
            BIT_LOG(model.key, -np.log2(probs[np.arange(len(out)), out] / model.totals[ctx]).sum())
        model.update(ctx, out)
        return out

    def bits(self, values, n, key):
        if n == 0:
            return np.zeros(0, np.int64)
        if BIT_LOG is not None:
            BIT_LOG(key, float(n))
        if self.encoding:
            self.enc.encode(np.asarray(values, np.int32), AR_HALF)
            return np.asarray(values, np.int64)
        return self.dec.decode(AR_HALF, n).astype(np.int64)

    def tail(self, kind, mags, values, escape):
        """Escapes (adaptive Exp-Golomb exponent + raw bits) and signs; signed values."""
        pos = np.nonzero(mags == escape)
        n_esc = len(pos[0])
        if n_esc:
            if self.encoding:
                v = np.abs(values[pos]) - escape + 1
                x = np.zeros(n_esc, np.int64)
                for t in range(1, 31):
                    x += (v >> t) > 0
            exp_model = self.model((kind, "exp"), 1, 31)
            x = self.sym(exp_model, np.zeros(n_esc, np.int64), x if self.encoding else None)
            owner = np.repeat(np.arange(n_esc), x)
            shift = np.arange(int(x.sum())) - np.repeat(np.cumsum(x) - x, x)
            b = self.bits(
                (v[owner] >> shift) & 1 if self.encoding else None, len(owner), (kind, "escape")
            )
            rest = np.bincount(owner, weights=b << shift, minlength=n_esc).astype(np.int64)
            mags[pos] = escape + (1 << x) + rest - 1
        nz = np.nonzero(mags)
        given = (values[nz] < 0).astype(np.int64) if self.encoding else None
        sign = self.bits(given, len(nz[0]), (kind, "sign"))
        mags[nz] *= 1 - 2 * sign
        return mags

'''
_RANGE_TAIL = '''\
    @staticmethod
    def given_levels(levels, n, escape):
        """Encoder: the levels as integers, each block's end-of-block and the magnitude
        symbols (capped at the escape)."""
        levels = np.asarray(levels, np.int64)
        nz = levels != 0
        ends = np.where(nz.any(axis=1), n - np.argmax(nz[:, ::-1], axis=1), 0)
        return levels, ends, np.minimum(np.abs(levels), escape)

    @staticmethod
    def before_ends(cols, e):
        """Every position before the end-of-block ``e`` of blocks ``cols``: its block, its
        position, that block's end and whether it is the last one."""
        blk = np.repeat(cols, e)
        k = np.arange(int(e.sum())) - np.repeat(np.cumsum(e) - e, e)
        ee = np.repeat(e, e)
        return blk, k, ee, (k == ee - 1).astype(np.int64)

    def symbols(self, kind, values, count, ctx, n_sym, n_ctx=None):
        """Symbols 0..n_sym-1 (flags, modes), each in context ``ctx`` (0..n_ctx-1; by
        default another such symbol): an alphabet of their own, no escape, no sign."""
        model = self.model((kind, "sym"), n_ctx or n_sym, n_sym, flat=True)
        given = np.asarray(values, np.int64).ravel() if self.encoding else None
        return self.sym(model, np.asarray(ctx, np.int64).ravel()[:count], given)

    def ints(self, kind, values, count, ctx=None, n_ctx=1):
        """Signed integers (at most 2^30 in magnitude) with no escape: the magnitude's class
        (0 for 0, else its bit length; in context ``ctx``), the top bits below its leading
        one (up to INT_TOP_BITS, a model per class), the lower bits raw, then the signs.
        So a large value, a vector of fast camera motion, costs a few adaptive bins more
        than a small one rather than an escape and raw bits."""
        ctx = np.zeros(count, np.int64) if ctx is None else np.asarray(ctx, np.int64)
        mags = cls = None
        if self.encoding:
            values = np.asarray(values, np.int64).ravel()
            mags = np.abs(values)
            cls = np.zeros(count, np.int64)
            for t in range(31):
                cls += (mags >> t) > 0
        cls = self.sym(self.model((kind, "int"), n_ctx, 32), ctx, cls)
        out = np.where(cls > 0, 1 << np.maximum(cls - 1, 0), 0)
        for c in range(2, int(cls.max(initial=0)) + 1):
            sel = np.flatnonzero(cls == c)
            low = c - 1
            top = min(low, self.int_top)
            offset = None if mags is None else mags[sel] - (1 << low)
            if sel.size:
                model = self.model((kind, "int", c), 1, 1 << top, flat=True)
                given = None if offset is None else offset >> (low - top)
                high = self.sym(model, np.zeros(sel.size, np.int64), given)
                rest = self.raw(offset, low - top, sel.size, (kind, "escape"))
                out[sel] += (high << (low - top)) + rest
        nz = np.flatnonzero(out)
        sign = self.bits(None if mags is None else values[nz] < 0, nz.size, (kind, "sign"))
        out[nz] *= 1 - 2 * sign
        return out

    def raw(self, values, width, count, key):
        """The low ``width`` bits of each of ``count`` non-negative values, uncoded."""
        if width == 0:
            return np.zeros(count, np.int64)
        shift = np.tile(np.arange(width), count)
        given = None if values is None else (np.repeat(values, width) >> shift) & 1
        b = self.bits(given, count * width, key)
        return (b << shift).reshape(count, width).sum(axis=1)

    def finish(self):
        return self.enc.get_compressed().astype("<u4").tobytes()
'''

ADAPTIVE_RANGE = component(
    "entropy",
    "adaptive_range",
    "context-adaptive range coding (constriction): end-of-block, band/end-class/last/above "
    "contexts, statistics kept across the whole sequence",
    _RANGE_HEAD
    + """\
AR_BANDS = np.array([1, 2, 3, 4, 6, 9, 13, 18, 25, 33, 44, 56])
AR_ECLS = np.array([1.5, 2.5, 4.5, 8.5, 16.5, 32.5])
"""
    + "\n\n"
    + _RANGE_CODER
    + '''\
    def levels(self, kind, levels, count, n, row, mask=None):
        """(count, n) zig-zag levels, rows of ``row`` blocks; blocks where ``mask`` is false
        are not coded (zero). Per block the end-of-block (context: the block above), then the
        magnitudes before it (context: band x end class x is-last x the level above)."""
        escape = self.escape
        t = np.arange(n) * 64.0 / n
        band = np.searchsorted(AR_BANDS, t, side="right")
        ecls = np.searchsorted(AR_ECLS, np.arange(n + 1) * 64.0 / n)
        eob_ctx = np.where(np.arange(n + 1) == 0, 0, ecls + 1)
        eob_model = self.model((kind, n, "eob"), len(AR_ECLS) + 2, n + 1, flat=True)
        n_ctx = (len(AR_BANDS) + 1) * (len(AR_ECLS) + 1) * 2 * 3
        mag_model = self.model((kind, n, "mag"), n_ctx, escape + 1)
        mags = np.zeros((count, n), np.int64)
        if self.encoding:
            levels, eob_all, sym_all = self.given_levels(levels, n, escape)
        prev_e = np.zeros(row, np.int64)
        prev_m = np.zeros((row, n), np.int64)
        for r in range(count // row):
            s = slice(r * row, (r + 1) * row)
            cols = np.arange(row) if mask is None else np.flatnonzero(mask[s])
            row_e = np.zeros(row, np.int64)
            given = eob_all[s][cols] if self.encoding else None
            e = self.sym(eob_model, eob_ctx[prev_e[cols]], given)
            row_e[cols] = e
            if e.sum():
                blk, k, ee, last = self.before_ends(cols, e)
                ctx = ((band[k] * (len(AR_ECLS) + 1) + ecls[ee]) * 2 + last) * 3
                ctx = ctx + np.minimum(prev_m[blk, k], 2)
                m = self.sym(mag_model, ctx, sym_all[s][blk, k] if self.encoding else None)
                mags[r * row + blk, k] = m
            prev_e = row_e
            prev_m = mags[s]
        return self.tail(kind, mags, levels, escape)

'''
    + _RANGE_TAIL,
)

LEAN_RANGE = component(
    "entropy",
    "lean_range",
    "range coding with few contexts that learn fast on small pictures: end-of-block as class "
    "then offset, magnitudes by band/end-class/last",
    _RANGE_HEAD
    + '''
LR_BANDS = np.array([1, 3, 6, 10, 21, 36])
LR_ECLS = np.array([2.5, 8.5, 24.5])


EOB_POWERS = 1 << np.arange(30)


def eob_class(e):
    """0, 1, 2, 3-4, 5-8, 9-16, ...: 0 for 0, else 1 + ceil(log2(e)) (1 + how many powers
    of two lie below e)."""
    e = np.asarray(e, np.int64)
    return np.where(e == 0, 0, np.searchsorted(EOB_POWERS, e) + 1)
'''
    + "\n\n"
    + _RANGE_CODER
    + '''\
    def levels(self, kind, levels, count, n, row, mask=None):
        """(count, n) zig-zag levels, rows of ``row`` blocks; blocks where ``mask`` is false
        are not coded (zero). Per block the end-of-block (:meth:`end_of_block`, context:
        whether the block above had a level), then the magnitudes before it (context: band
        x end class x is-last, few enough to learn from the blocks of a small picture)."""
        escape = self.escape
        band = np.searchsorted(LR_BANDS, np.arange(n) * 64.0 / n, side="right")
        ecls = np.searchsorted(LR_ECLS, np.arange(n + 1) * 64.0 / n)
        n_ctx = (len(LR_BANDS) + 1) * (len(LR_ECLS) + 1) * 2
        mag_model = self.model((kind, n, "mag"), n_ctx, escape + 1)
        mags = np.zeros((count, n), np.int64)
        if self.encoding:
            levels, eob_all, sym_all = self.given_levels(levels, n, escape)
        above = np.zeros(row, np.int64)
        for r in range(count // row):
            s = slice(r * row, (r + 1) * row)
            cols = np.arange(row) if mask is None else np.flatnonzero(mask[s])
            given = eob_all[s][cols] if self.encoding else None
            e = self.end_of_block(kind, n, above[cols], given)
            above = np.zeros(row, np.int64)
            above[cols] = e > 0
            if e.sum():
                blk, k, ee, last = self.before_ends(cols, e)
                ctx = (band[k] * (len(LR_ECLS) + 1) + ecls[ee]) * 2 + last
                m = self.sym(mag_model, ctx, sym_all[s][blk, k] if self.encoding else None)
                mags[r * row + blk, k] = m
        return self.tail(kind, mags, levels, escape)

    def end_of_block(self, kind, n, ctx, given):
        """End-of-block positions 0..n: the class (:func:`eob_class`, context ``ctx``), then
        the offset within a class of several positions (a model per class), so that a few
        hundred blocks teach the coder a distribution over 65 or 257 positions."""
        n_cls = int(eob_class(n)) + 1
        cls_model = self.model((kind, n, "eob"), 2, n_cls)
        c = self.sym(cls_model, ctx, None if given is None else eob_class(given))
        e = np.minimum(c, 2)
        for k in range(3, n_cls):
            sel = np.flatnonzero(c == k)
            base = (1 << (k - 2)) + 1
            size = min(1 << (k - 2), n - base + 1)
            if sel.size:
                offset_model = self.model((kind, n, "eob", k), 1, size)
                offset = self.sym(
                    offset_model,
                    np.zeros(sel.size, np.int64),
                    None if given is None else given[sel] - base,
                )
                e[sel] = base + offset
        return e

'''
    + _RANGE_TAIL,
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
    """Bits (uint8 array) of order-k Exp-Golomb codes of the non-negative integers ``u``
    (``k``: one order, or each value's)."""
    k = np.asarray(k, np.int64)
    c = np.asarray(u, np.int64) + np.left_shift(1, k)
    length = np.zeros(len(c), np.int64)
    for t in range(int(c.max(initial=1)).bit_length()):  # not 63 rounds per block
        length += (c >> t) > 0
    size = 2 * length - 1 - k
    total = int(size.sum())
    owner = np.repeat(np.arange(len(c)), size)
    j = np.arange(total) - np.repeat(np.cumsum(size) - size, size)
    zeros = (length - 1 - k)[owner]
    shift = size[owner] - 1 - j
    return np.where(j < zeros, 0, (c[owner] >> np.maximum(shift, 0)) & 1).astype(np.uint8)


def signed_to_u(v):
    return np.where(v > 0, 2 * v - 1, -2 * v)


def u_to_signed(u):
    return (u + 1) // 2 if u % 2 else -(u // 2)


class EntropyCoder:
    """A bit writer, or a reader over the same bits ('0'/'1' text for fast scanning)."""

    def __init__(self, cfg, data=None):
        self.encoding = data is None
        self.k = int(cfg["EG_ORDER"])
        self.chunks = []
        if not self.encoding:
            n = struct.unpack("<I", data[:4])[0]
            bits = np.unpackbits(np.frombuffer(data[4:], np.uint8))[:n]
            self.text, self.pos = (bits + 48).tobytes().decode(), 0

    def next(self, k):
        one = self.text.find("1", self.pos)
        if one < 0:
            raise ValueError("truncated Exp-Golomb stream")
        end = one + (one - self.pos) + k + 1
        value = int(self.text[one:end], 2) - (1 << k)
        self.pos = end
        return value

    def levels(self, kind, levels, count, n, row, mask=None):
        """Per coded block ue(end-of-block), then se(level) up to it."""
        coded = np.ones(count, bool) if mask is None else np.asarray(mask, bool)
        if self.encoding:
            levels = np.asarray(levels, np.int64)
            nz = levels != 0
            eob = np.where(nz.any(axis=1), n - np.argmax(nz[:, ::-1], axis=1), 0)[coded]
            # Per block its head, then its levels up to the end: all blocks' codes at once.
            values = np.concatenate([eob[:, None], signed_to_u(levels[coded])], axis=1)
            sent = np.arange(n + 1) <= eob[:, None]
            orders = np.full(values.shape, self.k, np.int64)
            orders[:, 0] = 0
            self.chunks.append(eg_bits(values[sent], orders[sent]))
            return levels
        out = np.zeros((count, n), np.int64)
        for i in np.flatnonzero(coded):
            e = self.next(0)
            if e > n:
                raise ValueError("end-of-block past the block")
            for j in range(e):
                out[i, j] = u_to_signed(self.next(self.k))
        return out

    def symbols(self, kind, values, count, ctx, n_sym, n_ctx=None):
        """Symbols 0..n_sym-1 as ue(v) (no contexts)."""
        if self.encoding:
            values = np.asarray(values, np.int64).ravel()
            self.chunks.append(eg_bits(values, 0))
            return values
        return np.array([self.next(0) for _ in range(count)], np.int64)

    def ints(self, kind, values, count, ctx=None, n_ctx=1):
        if self.encoding:
            values = np.asarray(values, np.int64).ravel()
            self.chunks.append(eg_bits(signed_to_u(values), 0))
            return values
        return np.array([u_to_signed(self.next(0)) for _ in range(count)], np.int64)

    def finish(self):
        bits = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.uint8)
        return struct.pack("<I", len(bits)) + np.packbits(bits).tobytes()
''',
)

COMPONENTS = [ADAPTIVE_RANGE, LEAN_RANGE, EXP_GOLOMB]
