"""Quantisation of zig-zag ordered coefficients (steps per coefficient, uniform reconstruction)."""

from codeclab.design.components.base import component

_STEPS = '''
def quant_steps(b, step, cfg):
    """Per-coefficient steps in zig-zag order: a frequency weighting matrix that grows by
    FREQ_SLOPE towards the highest frequency (0 = flat, best for PSNR)."""
    u = np.arange(b)[:, None]
    v = np.arange(b)[None, :]
    weight = 1.0 + float(cfg["FREQ_SLOPE"]) * (u + v) / (2.0 * max(b - 1, 1))
    return (step * weight).reshape(-1)[zigzag(b)]


def dequantise(levels, steps):
    return levels * steps
'''

DEADZONE = component(
    "quant",
    "deadzone",
    "dead-zone scalar quantiser with a frequency weighting matrix",
    """
# Dead zone of intra levels: the rounding offset is 0.5 - DEADZONE_INTRA.
DEADZONE_INTRA = 0.1  # @param float 0.0..0.5
# Dead zone of residual levels: the rounding offset is 0.5 - DEADZONE_INTER.
DEADZONE_INTER = 0.3  # @param float 0.0..0.5
# Extra step growth towards the highest frequency (0 = flat matrix).
FREQ_SLOPE = 0.0  # @param float 0.0..2.0


def quant_config():
    return {"FREQ_SLOPE": FREQ_SLOPE}


def quantise(coef, steps, intra, cfg):
    dz = DEADZONE_INTRA if intra else DEADZONE_INTER
    return (np.sign(coef) * np.floor(np.abs(coef) / steps + (0.5 - dz))).astype(np.int64)
"""
    + _STEPS,
)

_EOB = '''

def level_bits(q):
    """Estimated bits of a level: one for a zero, more for larger magnitudes."""
    return np.where(q == 0, 1.0, 3.0 + 2.0 * np.log2(np.maximum(np.abs(q), 1)))


# level_bits of the magnitudes below its length, looked up instead of taking logarithms
LEVEL_BITS = level_bits(np.arange(8192.0))


def fast_level_bits(q):
    """:func:`level_bits` of integer-valued ``q`` (the same numbers), from LEVEL_BITS."""
    a = np.abs(q)
    if a.size and a.max() >= len(LEVEL_BITS):
        return level_bits(q)
    return LEVEL_BITS[a.astype(np.int64)]


def rd_end_of_block(coef, q, steps, lam, rows=None):
    """Per block, the end e minimising sum_{k<e} (D_q + lam R) + sum_{k>=e} D_0 (the DC
    position is always kept); levels from e on are zeroed. ``rows``: the blocks with a
    nonzero level after their DC if the caller knows them (the others end there already)."""
    shape = q.shape
    n = shape[-1]
    out = q.reshape(-1, n).copy()
    if rows is None:
        rows = np.flatnonzero(out[:, 1:].any(axis=1))
    c, ql = coef.reshape(-1, n)[rows], out[rows]
    kept = (c - ql * steps) ** 2 + lam * fast_level_bits(ql)
    # cost[:, e] = kept's sum before e + the zeroed squares' sum from e on, the sums written
    # in place (the same sums, in the same order, as joining them to a column of zeros)
    cost = np.empty(c.shape)
    cost[:, 0] = 0.0
    np.cumsum(kept[:, 1:], axis=1, out=cost[:, 1:])
    tail = np.cumsum((c[:, :0:-1] ** 2), axis=1)
    cost[:, :-1] += tail[:, ::-1]
    cost[:, 1:][ql[:, 1:] == 0] = np.inf
    end = np.argmin(cost, axis=1) + 1
    ql[np.arange(n) >= end[:, None]] = 0
    out[rows] = ql
    return out.reshape(shape)
'''

RDO = component(
    "quant",
    "rdo",
    "dead-zone quantiser plus a rate-distortion choice of each block's last coefficient",
    """
# Dead zone of intra levels: the rounding offset is 0.5 - DEADZONE_INTRA.
DEADZONE_INTRA = 0.1  # @param float 0.0..0.5
# Dead zone of residual levels: the rounding offset is 0.5 - DEADZONE_INTER.
DEADZONE_INTER = 0.3  # @param float 0.0..0.5
# Extra step growth towards the highest frequency (0 = flat matrix).
FREQ_SLOPE = 0.0  # @param float 0.0..2.0
# Lagrange multiplier (times step^2) of the end-of-block choice; 0 turns it off.
RDO_LAMBDA = 0.06  # @param float 0.0..1.0


def quant_config():
    return {"FREQ_SLOPE": FREQ_SLOPE}


def quantise(coef, steps, intra, cfg):
    \"\"\"Dead-zone levels, then the rate-distortion choice of each block's end.\"\"\"
    dz = DEADZONE_INTRA if intra else DEADZONE_INTER
    q = (np.sign(coef) * np.floor(np.abs(coef) / steps + (0.5 - dz))).astype(np.int64)
    lam = float(RDO_LAMBDA) * float(steps[0]) ** 2
    return rd_end_of_block(coef, q, steps, lam) if lam > 0 else q
"""
    + _EOB
    + _STEPS,
)

RDOQ = component(
    "quant",
    "rdoq",
    "rate-distortion optimised quantisation: each level chosen among round, round-1 and 0 "
    "by D + lambda R, then the RD end-of-block choice",
    """
# Lagrange multiplier (times step^2) of residual levels; 0 = plain rounding.
RDOQ_LAMBDA = 0.1  # @param float 0.0..1.0
# Lagrange multiplier (times step^2) of intra levels (they become references: keep more).
RDOQ_LAMBDA_INTRA = 0.05  # @param float 0.0..1.0
# Extra step growth towards the highest frequency (0 = flat matrix).
FREQ_SLOPE = 0.0  # @param float 0.0..2.0


def quant_config():
    return {"FREQ_SLOPE": FREQ_SLOPE}


# The least double x with x + 0.5 >= 1 in floating point (0.5 less half an ulp: ties to even).
ROUNDS_UP = np.nextafter(0.5, 0.0)


def quantise(coef, steps, intra, cfg):
    \"\"\"Per coefficient the magnitude m in {round, round - 1, 0} minimising
    (|c| - m step)^2 + lam bits(m): a level is lowered only where the bits it saves are
    worth more than the error it adds; then the end-of-block choice.\"\"\"
    lam = float(RDOQ_LAMBDA_INTRA if intra else RDOQ_LAMBDA) * float(steps[0]) ** 2
    n = coef.shape[-1]
    # only where rounding gives a level (few coefficients): elsewhere every candidate is 0;
    # floor(|c| / step + 0.5) > 0 exactly where |c| / step is at least the double below 0.5
    # (that one's sum rounds up to 1), so one compare instead of an add and a floor (a NaN,
    # which floors to a nonzero, counts too: it is not below)
    ratio = np.abs(coef)
    np.divide(ratio, steps, out=ratio)
    some = np.flatnonzero(~(ratio < ROUNDS_UP))
    q = np.zeros(coef.shape, np.int64)
    if not some.size:
        return q
    col = some % n
    st = np.broadcast_to(steps, (n,))[col]
    c = coef.reshape(-1)[some]
    a = np.abs(c)
    top = np.floor(a / st + 0.5)
    lower = top - 1
    cost = [(a - m * st) ** 2 + lam * bits for m, bits in zip((top, lower), rounded_bits(top))]
    cost.append(a**2 + lam)  # the level 0: one bit
    # the first of the least costs, as argmin over (round, round - 1, 0) takes it
    first = (cost[0] <= cost[1]) & (cost[0] <= cost[2])
    mags = np.where(first, top, np.where(cost[1] <= cost[2], lower, 0.0))
    q.reshape(-1)[some] = np.where(c < 0, -mags, mags)
    if lam <= 0:
        return q
    after_dc = some[(col > 0) & (mags != 0)] // n
    rows = after_dc[np.r_[True, after_dc[1:] != after_dc[:-1]]] if after_dc.size else after_dc
    return rd_end_of_block(coef, q, steps, lam, rows)


def rounded_bits(top):
    \"\"\":func:`fast_level_bits` of the rounded magnitudes ``top`` (each at least 1) and of
    one less, from one index array.\"\"\"
    if top.size and top.max() >= len(LEVEL_BITS):
        return level_bits(top), level_bits(top - 1)
    t = top.astype(np.int64)
    return LEVEL_BITS[t], LEVEL_BITS[t - 1]
"""
    + _EOB
    + _STEPS,
)

COMPONENTS = [DEADZONE, RDO, RDOQ]
