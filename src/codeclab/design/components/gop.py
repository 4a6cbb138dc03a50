"""Picture types: which pictures are intra coded (the rest predict from the previous one)."""

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


def gop_is_intra(index, cfg):
    return index % max(1, int(cfg["GOP_SIZE"])) == 0
""",
)

INTRA_ONLY = component(
    "gop",
    "intra_only",
    "every picture intra coded (no motion)",
    """
def gop_config():
    return {}


def gop_is_intra(index, cfg):
    return True
""",
)

COMPONENTS = [IPPP, INTRA_ONLY]
