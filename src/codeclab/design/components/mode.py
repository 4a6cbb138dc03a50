"""Macroblock modes of P pictures: whether a block may be SKIPped (no vector difference, no
residual: it inherits its predicted vector), decided by the encoder by Lagrangian cost."""

from codeclab.design.components.base import component

CODED = component(
    "mode",
    "coded",
    "every macroblock coded: a vector difference and a residual for each",
    """
def mode_config():
    return {"SKIP": 0}


def mode_decide(src, ref, mv, cfg):
    return np.zeros(mv.shape[:2], bool)
""",
)

_SKIP_DECIDE = '''
# Lagrange multiplier (times step^2) of the skip/coded decision.
MODE_LAMBDA = 0.12  # @param float 0.0..1.0
# Decision passes: a skipped block inherits its neighbours' final vectors, so re-decide.
SKIP_PASSES = 3  # @param int 1..6


def mode_decide(src, ref, mv, cfg):
    """SKIP where predicting with the inherited vector and no residual costs less than the
    vector difference plus the coded residual (distortion + lambda * estimated bits)."""
    lam = float(MODE_LAMBDA) * cfg["STEP_Y"] ** 2
    d_code, r_code = inter_costs(src, ref, mv, cfg)
    final = mv
    skip = np.zeros(mv.shape[:2], bool)
    for _ in range(int(SKIP_PASSES)):
        pred = median_pred(final)
        d_skip = inter_costs(src, ref, pred, cfg, residual=False)[0]
        r_mv = mv_bits(mv - pred).sum(axis=2)
        skip = d_skip + lam < d_code + lam * (r_code + r_mv + 1.0)
        final = np.where(skip[..., None], pred, mv)
    return skip
'''

SKIP = component(
    "mode",
    "skip",
    "SKIP or coded per macroblock by D + lambda R, re-decided until inherited vectors settle",
    """
def mode_config():
    return {"SKIP": 1}
"""
    + _SKIP_DECIDE,
)

SPLIT = component(
    "mode",
    "split",
    "SKIP, or coded with one vector, or split into four half-size blocks with a vector each "
    "(H.264's 8x8 partitions), each by D + lambda R",
    '''
def mode_config():
    return {"SKIP": 1, "SPLIT": 1}


def split_decide(src, ref, mv, half, skip, cfg):
    """Which macroblocks take the four vectors ``half`` of their half-size blocks rather
    than their one vector ``mv`` (distortion + lambda * (residual + vector bits + the flag)),
    and SKIP re-decided with the vectors skipped macroblocks then really inherit."""
    lam = float(MODE_LAMBDA) * cfg["STEP_Y"] ** 2
    d_one, r_one = inter_costs(src, ref, mv, cfg)
    one = d_one + lam * (r_one + mv_bits(mv - median_pred(mv)).sum(axis=2))
    d_four, r_four = inter_costs(src, ref, half, {**cfg, "MB_SIZE": int(cfg["MB_SIZE"]) // 2})
    r_four += mv_bits(half - median_pred(half)).sum(axis=2)
    four = per_tile(d_four + lam * r_four, 2) + lam
    split = four < one
    coded_cost = np.minimum(one, four) + lam
    for _ in range(int(SKIP_PASSES)):
        coded = ~skip
        field = np.where(twice(split & coded)[..., None], half, twice(mv))
        final = mv_walk(split_roles(split & coded, coded), mv=field)[0]
        inherited = median_pred(final)[::2, ::2]  # what each macroblock would inherit
        d_skip = inter_costs(src, ref, inherited, cfg, residual=False)[0]
        skip = d_skip + lam < coded_cost
    return split & ~skip, skip
'''
    + _SKIP_DECIDE,
)

COMPONENTS = [CODED, SKIP, SPLIT]
