"""Intra prediction of blocks from their reconstructed top rows and left columns, a batch
of blocks at a time (the blocks of one anti-diagonal of the wavefront)."""

from codeclab.design.components.base import component

FOUR = '''

def four_predictors(top, left, corner, b):
    """The neighbours of a batch of blocks with missing ones replaced by the other side (or
    128), so every mode exists everywhere and the mode index alone tells the decoder what to
    do, and the DC, vertical, horizontal and planar predictions (n, 4, b, b) from them."""
    if top is None and left is None:
        top = left = np.full((1, b), 128.0)
        corner = np.full(1, 128.0)
    elif top is None:
        top, corner = np.repeat(left[:, :1], b, axis=1), left[:, 0]
    elif left is None:
        left, corner = np.repeat(top[:, :1], b, axis=1), top[:, 0]
    top, left = np.asarray(top, np.float64), np.asarray(left, np.float64)
    out = np.empty((len(top), 4, b, b))  # written in place: a batch is a few dozen blocks
    out[:, 0] = ((top.sum(axis=1) / b + left.sum(axis=1) / b) / 2.0)[:, None, None]
    out[:, 1] = top[:, None, :]
    out[:, 2] = left[:, :, None]
    i = np.arange(1, b + 1)[:, None]
    j = np.arange(1, b + 1)[None, :]
    out[:, 3] = (
        (b - j) * left[:, :, None]
        + j * top[:, -1, None, None]
        + (b - i) * top[:, None, :]
        + i * left[:, -1, None, None]
    ) / (2.0 * b)
    return top, left, np.asarray(corner, np.float64), out
'''

DC = component(
    "intra",
    "dc",
    "DC prediction only: the mean of the reconstructed neighbours (no mode to code)",
    '''
def intra_config():
    return {}


def intra_predictors(top, left, corner, b, cfg):
    """One candidate per block: the mean of the available neighbours (128 without)."""
    have = [x for x in (top, left) if x is not None]
    dc = np.mean(np.concatenate(have, axis=1), axis=1) if have else np.full(1, 128.0)
    return np.broadcast_to(dc[:, None, None, None], (len(dc), 1, b, b)).copy()
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
    return four_predictors(top, left, corner, b)[3][:, :count]
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
    """[1,2,1]-filtered neighbours (H.264 8x8 intra) of each block of a batch: an angle
    copies each reference sample across the whole block, so its coding noise would
    otherwise be copied too."""
    line = np.concatenate([left[:, ::-1], corner[:, None], top], axis=1)
    padded = np.concatenate([line[:, :1], line, line[:, -1:]], axis=1)
    smooth = (padded[:, :-2] + 2.0 * padded[:, 1:-1] + padded[:, 2:]) / 4.0
    n = left.shape[1]
    return smooth[:, n + 1 :], smooth[:, :n][:, ::-1], smooth[:, n]


def angular_taps(b, slope):
    """Copying the reference along lines of ``slope``: each pixel takes the value where its
    line meets the top row, or the left column when the line passes left of the corner
    (negative slopes), linearly interpolated between samples. Per pixel, the index of the
    sample before that point in the joined line [corner, top row, its last sample repeated
    b times, corner, left column, its last repeated b times] and the fraction towards the
    next sample, as np.interp computes them."""
    y = np.arange(b)[:, None]
    x = np.arange(b)[None, :]
    at_top = x + 1 + (y + 1) * slope  # where the line crosses y = -1, as a top-line index
    at_left = y + 1 - (x + 1) / (-slope if slope < 0 else 1.0)  # ... x = -1, left line
    top = at_top >= 0
    pos = np.clip(np.where(top, at_top, at_left), 0, 2 * b)
    j = np.floor(pos).astype(np.int64)
    return j + np.where(top, 0, 2 * b + 1), pos - j


def angular_angles(top, left, corner, b, count, out=None):
    """The first ``count`` ANGULAR_DIRECTIONS' predictions (n, count, b, b) from the
    smoothed neighbours, all read from one joined reference line per block: a pixel whose
    fraction is 0 copies its sample, the others interpolate (only they read the next).
    The copies, then the interpolations, are made side by side and put in place by one
    column take (numpy's take is several times faster than assigning to scattered
    columns), into ``out`` if given (e.g. the angles' part of all the candidates)."""
    lines = [
        np.concatenate([corner[:, None], s, np.repeat(s[:, -1:], b, axis=1)], axis=1)
        for s in (top, left)
    ]
    joined = np.concatenate([lines[0], lines[1], lines[1][:, -1:]], axis=1)
    at_copy, at_mix, frac, order = angular_plan(b, count)
    n, nc = len(joined), len(at_copy)
    side = np.empty((n, count * b * b), joined.dtype)
    side[:, :nc] = np.take(joined, at_copy, axis=1)
    lo = np.take(joined, at_mix, axis=1)
    mixed = np.take(joined, at_mix + 1, axis=1)
    np.subtract(mixed, lo, out=mixed)
    mixed *= frac
    mixed += lo  # (hi - lo) * frac + lo
    side[:, nc:] = mixed
    if out is None:
        out = np.empty((n, count, b, b), joined.dtype)
    np.take(side, order, axis=1, out=out.reshape(n, count * b * b), mode="clip")
    return out


# angular_plan's constants by (b, count).
ANGULAR_PLANS = {}


def angular_plan(b, count):
    """The first ``count`` directions' taps (:func:`angular_taps`; family 1 is family 0 with
    the top and left lines swapped, transposed) over the flat (count, b, b) positions: those
    of fraction 0 and their sample, the others with theirs and their fraction, and where
    each position's value lies among those (copies first) (cached)."""
    if (b, count) not in ANGULAR_PLANS:
        side = 2 * b + 1
        idx, frac = [], []
        for family, slope in ANGULAR_DIRECTIONS[:count]:
            j, f = angular_taps(b, slope)
            if family:
                j, f = np.where(j < side, j + side, j - side).T, f.T
            idx.append(j)
            frac.append(f)
        idx, frac = np.array(idx).ravel(), np.array(frac).ravel()
        copy, mix = np.flatnonzero(frac == 0), np.flatnonzero(frac != 0)
        order = np.argsort(np.concatenate([copy, mix]))
        ANGULAR_PLANS[b, count] = (idx[copy], idx[mix], frac[mix], order)
    return ANGULAR_PLANS[b, count]


def intra_predictors(top, left, corner, b, cfg):
    """Candidates (DC, V, H, planar, then ANGULAR_DIRECTIONS)[:INTRA_MODES].

    Slanted edges and texture that DC/V/H/planar smear leave a large residual; a matching
    angle predicts them.
    """
    count = int(cfg.get("INTRA_MODES", 8))
    top, left, corner, preds = four_predictors(top, left, corner, b)
    if count <= 4:
        return preds[:, :count]
    out = np.empty((len(preds), count, b, b))  # the angles are written in place
    out[:, :4] = preds
    s_top, s_left, s_corner = angular_smooth(top, left, corner)
    angular_angles(s_top, s_left, s_corner, b, count - 4, out[:, 4:])
    return out
'''
    + FOUR,
)

COMPONENTS = [DC, DIRECTIONAL, ANGULAR]
