"""Intra prediction of a block from its reconstructed top row and left column."""

from codeclab.design.components import component

FOUR = '''

def four_predictors(top, left, corner, b):
    """The neighbours with missing ones replaced by the other side (or 128), so every mode
    exists everywhere and the mode index alone tells the decoder what to do, and the DC,
    vertical, horizontal and planar predictions from them."""
    if top is None and left is None:
        top = left = np.full(b, 128.0)
        corner = 128.0
    elif top is None:
        top = np.full(b, float(left[0]))
        corner = float(left[0])
    elif left is None:
        left = np.full(b, float(top[0]))
        corner = float(top[0])
    top, left = np.asarray(top, np.float64), np.asarray(left, np.float64)
    dc = np.full((b, b), (top.mean() + left.mean()) / 2.0)
    vert = np.tile(top, (b, 1))
    horiz = np.tile(left[:, None], (1, b))
    i = np.arange(1, b + 1)[:, None]
    j = np.arange(1, b + 1)[None, :]
    planar = ((b - j) * left[:, None] + j * top[-1] + (b - i) * top[None, :] + i * left[-1]) / (
        2.0 * b
    )
    return top, left, corner, [dc, vert, horiz, planar]
'''

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
    "DC, vertical, horizontal and planar prediction, best chosen per block by D + lambda R",
    '''
# Number of intra modes tried: 1 = DC, 3 = +vertical/horizontal, 4 = +planar.
INTRA_MODES = 4  # @param choice 1,3,4
# Lagrange multiplier (times step^2) of the RD mode choice; 0 = least SATD.
INTRA_LAMBDA = 0.05  # @param float 0.0..1.0


def intra_config():
    return {"INTRA_MODES": INTRA_MODES, "INTRA_LAMBDA": INTRA_LAMBDA}


def intra_predictors(top, left, corner, b, cfg):
    """Candidates (DC, vertical, horizontal, planar)[:INTRA_MODES] from the neighbours."""
    count = int(cfg.get("INTRA_MODES", 4))
    return np.stack(four_predictors(top, left, corner, b)[3][:count])
'''
    + FOUR,
)

ANGULAR = component(
    "intra",
    "angular",
    "H.264/HEVC-style angular prediction: DC, vertical, horizontal, planar, then diagonal "
    "and near-vertical/horizontal angles from [1,2,1]-smoothed neighbours",
    '''
# Candidates tried, in this fixed order: DC, vertical, horizontal, planar (as `directional`),
# then diagonal down-right, vertical-right, horizontal-down, horizontal-up, vertical and
# horizontal tilted by a quarter pixel per row, vertical-left and diagonal down-left.
ANGULAR_MODES = 8  # @param choice 4,6,8,10,12
# Lagrange multiplier (times step^2) of the RD mode choice; 0 = least SATD.
INTRA_LAMBDA = 0.0  # @param float 0.0..1.0

# The angles after the first four, as (family, slope): family 0 predicts down the columns
# from the top row, 1 along the rows from the left column (the transpose); slope: pixels
# sideways per pixel travelled away from that reference. Without above-right samples the
# positive vertical slopes (vertical-left, down-left) only see a repeated sample: last.
ANGULAR_DIRECTIONS = (
    (0, -1.0),
    (0, -0.5),
    (1, -0.5),
    (1, 0.5),
    (0, -0.25),
    (1, -0.25),
    (0, 0.5),
    (0, 1.0),
)


def intra_config():
    return {"INTRA_MODES": ANGULAR_MODES, "INTRA_LAMBDA": INTRA_LAMBDA}


def angular_smooth(top, left, corner):
    """[1,2,1]-filtered neighbours (H.264 8x8 intra): an angle copies each reference sample
    across the whole block, so its coding noise would otherwise be copied too."""
    line = np.concatenate([left[::-1], [corner], top])
    padded = np.concatenate([line[:1], line, line[-1:]])
    smooth = (padded[:-2] + 2.0 * padded[1:-1] + padded[2:]) / 4.0
    n = len(left)
    return smooth[n + 1 :], smooth[:n][::-1], float(smooth[n])


def angular_project(top, left, corner, b, slope):
    """Copy the reference along lines of ``slope``: each pixel takes the value where its
    line meets the top row, or the left column when the line passes left of the corner
    (negative slopes), linearly interpolated between samples. Without samples beyond the
    block the top row and left column are extended by their last sample."""
    y = np.arange(b)[:, None]
    x = np.arange(b)[None, :]
    top_line = np.concatenate([[corner], top, np.full(b, top[-1])])  # x = -1 .. 2b - 1
    left_line = np.concatenate([[corner], left, np.full(b, left[-1])])  # y = -1 .. 2b - 1
    at_top = x + 1 + (y + 1) * slope  # where the line crosses y = -1, as a top_line index
    at_left = y + 1 - (x + 1) / (-slope if slope < 0 else 1.0)  # ... x = -1, in left_line
    grid = np.arange(2 * b + 1)
    return np.where(
        at_top >= 0,
        np.interp(at_top, grid, top_line),
        np.interp(at_left, grid, left_line),
    )


def intra_predictors(top, left, corner, b, cfg):
    """Candidates (DC, V, H, planar, then ANGULAR_DIRECTIONS)[:INTRA_MODES].

    Slanted edges and texture that DC/V/H/planar smear leave a large residual; a matching
    angle predicts them.
    """
    count = int(cfg.get("INTRA_MODES", 8))
    top, left, corner, preds = four_predictors(top, left, corner, b)
    s_top, s_left, s_corner = angular_smooth(top, left, float(corner))
    for family, slope in ANGULAR_DIRECTIONS[: max(0, count - 4)]:
        if family == 0:
            preds.append(angular_project(s_top, s_left, s_corner, b, slope))
        else:
            preds.append(angular_project(s_left, s_top, s_corner, b, slope).T)
    return np.stack(preds[:count])
'''
    + FOUR,
)

COMPONENTS = [DC, DIRECTIONAL, ANGULAR]
