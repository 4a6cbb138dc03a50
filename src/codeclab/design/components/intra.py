"""Intra prediction of a block from its reconstructed top row and left column."""

from codeclab.design.components import component

DC = component(
    "intra",
    "dc",
    "DC prediction only: the mean of the reconstructed neighbours (no mode to code)",
    '''
def intra_config():
    return {}


def intra_predictors(top, left, corner, b, cfg):
    """One candidate: the mean of the available neighbours (128 when there are none)."""
    have = [x for x in (top, left) if x is not None]
    dc = float(np.mean(np.concatenate(have))) if have else 128.0
    return np.full((1, b, b), dc)
''',
)

DIRECTIONAL = component(
    "intra",
    "directional",
    "DC, vertical, horizontal and planar prediction, best chosen per block by SAD",
    '''
# Number of intra modes tried: 1 = DC, 3 = +vertical/horizontal, 4 = +planar.
INTRA_MODES = 4  # @param choice 1,3,4


def intra_config():
    return {"INTRA_MODES": INTRA_MODES}


def intra_predictors(top, left, corner, b, cfg):
    """Candidates (DC, vertical, horizontal, planar)[:INTRA_MODES] from the neighbours.

    Missing neighbours are replaced by the other side (or 128), so every mode exists
    everywhere and the mode index alone tells the decoder what to do.
    """
    count = int(cfg.get("INTRA_MODES", 4))
    if top is None and left is None:
        top = left = np.full(b, 128.0)
        corner = 128.0
    elif top is None:
        top = np.full(b, float(left[0]))
        corner = float(left[0])
    elif left is None:
        left = np.full(b, float(top[0]))
        corner = float(top[0])
    dc = np.full((b, b), (top.mean() + left.mean()) / 2.0)
    vert = np.tile(top, (b, 1))
    horiz = np.tile(left[:, None], (1, b))
    i = np.arange(1, b + 1)[:, None]
    j = np.arange(1, b + 1)[None, :]
    planar = ((b - j) * left[:, None] + j * top[-1] + (b - i) * top[None, :] + i * left[-1]) / (
        2.0 * b
    )
    return np.stack([dc, vert, horiz, planar][:count])
''',
)

COMPONENTS = [DC, DIRECTIONAL]
