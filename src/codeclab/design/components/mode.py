"""Macroblock modes of P pictures: whether a block may be SKIPped (no vector difference, no
residual: it inherits its predicted vector), split into four vectors, or (``intra``, in B
pictures too) coded intra, decided by the encoder by Lagrangian cost D + lambda R.

lambda = MODE_LAMBDA * step^2, step the quantiser step of the orthonormal DCT (H.264's
Qstep = 2^((QP - 4) / 6)). H.264's mode lambda 0.85 * 2^((QP - 12) / 3) is then
0.85 * 2^(-8/3) * Qstep^2 = 0.134 Qstep^2, HEVC's 0.57 * 2^((QP - 12) / 3) is 0.090 Qstep^2;
MODE_LAMBDA = 0.12 lies between (a sweep on the natural train clips: 0.08 and 0.18 both
lose to it). R is the estimated bits of the quantised levels (``level_rate``), vectors
(``mv_bits``), modes and flags; D the SSD of the reconstruction over Y, U and V."""

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
    coded_cost = d_code + lam * (r_code + 1.0)

    def skip_costs(skip):
        pred = median_pred(mv_walk(1 - skip, mv=mv)[0])
        d_skip = inter_costs(src, ref, pred, cfg, residual=False)[0]
        return d_skip + lam - lam * mv_bits(mv - pred).sum(axis=2)

    skip = np.zeros(mv.shape[:2], bool)
    for _ in range(int(SKIP_PASSES)):
        skip = skip_costs(skip) < coded_cost
    return settle(skip, skip_costs, coded_cost)
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
    with INTRA_MB which are coded intra rather than either (where that costs least: newly
    uncovered areas, motion the vectors miss), and SKIP re-decided with the vectors skipped
    macroblocks then really inherit. Returns the split, skip and intra macroblocks."""
    lam = float(MODE_LAMBDA) * cfg["STEP_Y"] ** 2
    recs = []
    d_one, r_one = inter_costs(src, ref, mv, cfg, recs=recs)
    one = d_one + lam * (r_one + mv_bits(mv - median_pred(mv)).sum(axis=2))
    d_four, r_four = inter_costs(src, ref, half, {**cfg, "MB_SIZE": int(cfg["MB_SIZE"]) // 2})
    r_four += mv_bits(half - median_pred(half)).sum(axis=2)
    four = per_tile(d_four + lam * r_four, 2) + lam
    split = four < one
    coded_cost = np.minimum(one, four) + lam
    intra = np.zeros(split.shape, bool)
    if intra_mb_on(cfg):
        intra_cost = intra_mb_costs(cfg, src, recs, 1.0, lam) + lam
        intra = intra_cost < coded_cost
        coded_cost = np.minimum(coded_cost, intra_cost)

    def skip_costs(skip):
        moving = ~skip & ~intra
        field = np.where(twice(split & moving)[..., None], half, twice(mv))
        final = mv_walk(split_roles(split & moving, moving), mv=field)[0]
        inherited = median_pred(final)[::2, ::2]  # what each macroblock would inherit
        return inter_costs(src, ref, inherited, cfg, residual=False)[0] + lam

    for _ in range(int(SKIP_PASSES)):
        skip = skip_costs(skip) < coded_cost
    skip = settle(skip, skip_costs, coded_cost)
    return split & ~skip & ~intra, skip, intra & ~skip
'''
    + _SKIP_DECIDE,
)

INTRA = component(
    "mode",
    "intra",
    "as split, and each coded macroblock of a P or B picture may be intra instead (H.264's "
    "intra macroblocks in inter slices), all by D + lambda R with lambda = MODE_LAMBDA step^2",
    SPLIT.source.replace('"SPLIT": 1}', '"SPLIT": 1, "INTRA_MB": 1}', 1),
)

COMPONENTS = [CODED, SKIP, SPLIT, INTRA]
