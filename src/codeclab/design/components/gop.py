"""Picture types and coding order: ``gop_plan(frames, cfg)`` lists (display index, type) in
coding order, type 0 = intra, 1 = P (predicts from the last anchor), 2 = B (predicts from
the anchors before and after it, is no reference itself)."""

from codeclab.design.components import component

IPPP = component(
    "gop",
    "ippp",
    "an intra picture every GOP_SIZE, P pictures referencing the previous reconstruction",
    """
# Distance between intra-coded pictures.
GOP_SIZE = 60  # @param int 1..300


def gop_config():
    return {"GOP_SIZE": GOP_SIZE}


def gop_plan(nf, cfg):
    gop = max(1, int(cfg["GOP_SIZE"]))
    return [(i, 0 if i % gop == 0 else 1) for i in range(nf)]
""",
)

IBP = component(
    "gop",
    "ibp",
    "B pictures: B_RUN bi-predicted pictures between anchors, coded after the later anchor "
    "with a coarser quantiser",
    """
# Distance between intra-coded pictures (at the next anchor).
GOP_SIZE = 60  # @param int 1..300
# B pictures between two anchors (I or P pictures).
B_RUN = 1  # @param int 1..3
# Quantiser step of B pictures relative to P pictures (no picture predicts from them).
B_QP_RATIO = 1.25  # @param float 0.8..2.5
# Lagrange multiplier (times the B step^2) of the DIRECT decision: a macroblock that takes
# both vectors from its neighbours and codes no residual; 0 turns DIRECT off.
B_DIRECT_LAMBDA = 0.12  # @param float 0.0..1.0


def gop_config():
    return {
        "GOP_SIZE": GOP_SIZE,
        "B_RUN": B_RUN,
        "B_QP_RATIO": B_QP_RATIO,
        "B_DIRECT_LAMBDA": B_DIRECT_LAMBDA,
    }


def gop_plan(nf, cfg):
    \"\"\"Anchors every B_RUN + 1 pictures and at the last one; each anchor is followed in
    coding order by the B pictures before it.\"\"\"
    run, gop = max(0, int(cfg["B_RUN"])), max(1, int(cfg["GOP_SIZE"]))
    anchors = list(range(0, nf, run + 1))
    if anchors[-1] != nf - 1:
        anchors.append(nf - 1)
    plan, last_intra = [], 0
    for prev, a in zip([None] + anchors[:-1], anchors):
        intra = a == 0 or a - last_intra >= gop
        last_intra = a if intra else last_intra
        plan.append((a, 0 if intra else 1))
        if prev is not None:
            plan += [(i, 2) for i in range(prev + 1, a)]
    return plan
""",
)

INTRA_ONLY = component(
    "gop",
    "intra_only",
    "every picture intra coded (no motion)",
    """
def gop_config():
    return {}


def gop_plan(nf, cfg):
    return [(i, 0) for i in range(nf)]
""",
)

COMPONENTS = [IPPP, IBP, INTRA_ONLY]
