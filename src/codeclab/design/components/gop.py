"""Picture types and coding order: ``gop_plan(frames, cfg)`` lists (display index, type) in
coding order, type 0 = intra, 1 = P (predicts from the last anchor), 2 = B (predicts from
the anchors before and after it, is no reference itself), 3 = a B picture that is an
anchor for the B pictures between it and its own anchors (a hierarchy, as in HEVC's
random-access configuration)."""

from codeclab.design.components.base import component

ANCHORS = """

def anchor_plan(nf, cfg, between):
    \"\"\"Anchors (I or P pictures) every B_RUN + 1 pictures and at the last one, intra at
    least every GOP_SIZE pictures; after each anchor in coding order, ``between(previous,
    anchor)``: the (display index, type) of the pictures between the two.\"\"\"
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
            plan += between(prev, a)
    return plan
"""

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
# Lagrange multiplier (times the B step^2) of the B macroblock modes (forward, backward,
# averaged, DIRECT: both vectors from the neighbours, no residual); 0: by SAD, no DIRECT.
B_MODE_LAMBDA = 0.12  # @param float 0.0..1.0


def gop_config():
    return {
        "GOP_SIZE": GOP_SIZE,
        "B_RUN": B_RUN,
        "B_QP_RATIO": B_QP_RATIO,
        "B_MODE_LAMBDA": B_MODE_LAMBDA,
    }


def gop_plan(nf, cfg):
    \"\"\"Each anchor is followed in coding order by the B pictures before it.\"\"\"
    return anchor_plan(nf, cfg, lambda lo, hi: [(i, 2) for i in range(lo + 1, hi)])
"""
    + ANCHORS,
)

PYRAMID = component(
    "gop",
    "pyramid",
    "hierarchical B pictures: anchors every B_RUN + 1 pictures, the middle picture between "
    "two anchors a B picture that the ones on either side of it predict from, recursively",
    """
# Distance between intra-coded pictures (at the next anchor).
GOP_SIZE = 60  # @param int 1..300
# Pictures between two I/P anchors, coded as a hierarchy of B pictures.
B_RUN = 3  # @param int 1..7
# Quantiser step of the B pictures nothing predicts from, relative to P pictures.
B_QP_RATIO = 1.5  # @param float 0.8..2.5
# Quantiser step of the B pictures others predict from, relative to P pictures.
REF_B_QP_RATIO = 1.2  # @param float 0.8..2.5
# Lagrange multiplier (times the B step^2) of the B macroblock modes; 0: by SAD, no DIRECT.
B_MODE_LAMBDA = 0.12  # @param float 0.0..1.0


def gop_config():
    return {
        "GOP_SIZE": GOP_SIZE,
        "B_RUN": B_RUN,
        "B_QP_RATIO": B_QP_RATIO,
        "REF_B_QP_RATIO": REF_B_QP_RATIO,
        "B_MODE_LAMBDA": B_MODE_LAMBDA,
    }


def gop_plan(nf, cfg):
    \"\"\"After each anchor, the pictures before it down to the previous anchor: the middle
    one first (a reference B when pictures remain on either side of it), then each half the
    same way.\"\"\"

    def between(lo, hi):
        if hi - lo < 2:
            return []
        mid = (lo + hi) // 2
        kind = 3 if hi - lo > 2 else 2
        return [(mid, kind)] + between(lo, mid) + between(mid, hi)

    return anchor_plan(nf, cfg, between)
"""
    + ANCHORS,
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

COMPONENTS = [IPPP, IBP, PYRAMID, INTRA_ONLY]
