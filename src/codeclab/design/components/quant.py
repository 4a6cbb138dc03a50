"""Quantisation of zig-zag ordered coefficients (steps per coefficient, uniform reconstruction)."""

from codeclab.design.components import component

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

RDO = component(
    "quant",
    "rdo",
    "dead-zone quantiser plus a rate-distortion choice of each block's last coefficient",
    '''
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
    """Dead-zone levels, then per block the end e minimising
    sum_{k<e} (D_q + lam R) + sum_{k>=e} D_0 (the DC position is always kept)."""
    dz = DEADZONE_INTRA if intra else DEADZONE_INTER
    q = (np.sign(coef) * np.floor(np.abs(coef) / steps + (0.5 - dz))).astype(np.int64)
    lam = float(RDO_LAMBDA) * float(steps[0]) ** 2
    if lam <= 0:
        return q
    shape = q.shape
    n = shape[-1]
    c = coef.reshape(-1, n)
    ql = q.reshape(-1, n).copy()
    rate = np.where(ql == 0, 1.0, 3.0 + 2.0 * np.log2(np.maximum(np.abs(ql), 1)))
    kept = (c - ql * steps) ** 2 + lam * rate
    zero = np.zeros((len(c), 1))
    cost = np.concatenate([zero, np.cumsum(kept[:, 1:], axis=1)], axis=1) + np.concatenate(
        [np.cumsum((c[:, 1:] ** 2)[:, ::-1], axis=1)[:, ::-1], zero], axis=1
    )
    valid = np.concatenate([np.ones((len(c), 1), bool), ql[:, 1:] != 0], axis=1)
    cost[~valid] = np.inf
    end = np.argmin(cost, axis=1) + 1
    ql[np.arange(n)[None, :] >= end[:, None]] = 0
    return ql.reshape(shape)
'''
    + _STEPS,
)

COMPONENTS = [DEADZONE, RDO]
