"""Macroblock modes of P pictures: whether a block may be SKIPped (no vector difference, no
residual: it inherits its predicted vector), decided by the encoder by Lagrangian cost."""

from codeclab.design.components import component

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

SKIP = component(
    "mode",
    "skip",
    "SKIP or coded per macroblock by D + lambda R, re-decided until inherited vectors settle",
    '''
# Lagrange multiplier (times step^2) of the skip/coded decision.
MODE_LAMBDA = 0.12  # @param float 0.0..1.0
# Decision passes: a skipped block inherits its neighbours' final vectors, so re-decide.
SKIP_PASSES = 3  # @param int 1..6


def mode_config():
    return {"SKIP": 1}


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
''',
)

COMPONENTS = [CODED, SKIP]
