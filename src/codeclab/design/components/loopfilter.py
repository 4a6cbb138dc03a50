"""In-loop filters applied to reconstructed planes (so references are filtered too)."""

from codeclab.design.components.base import component

NONE = component(
    "loopfilter",
    "none",
    "no loop filter",
    """
def loopfilter_config():
    return {}


def loop_filter(plane, b, step, cfg, coded=None):
    return plane
""",
)

DEBLOCK = component(
    "loopfilter",
    "deblock",
    "H.264-style weak edge filter: smooths small steps across the edges of coded blocks",
    '''
# Strength of the deblocking filter; 0 turns it off.
DEBLOCK = 1.5  # @param float 0.0..2.5


def loopfilter_config():
    return {"DEBLOCK": DEBLOCK}


def loop_filter(plane, b, step, cfg, coded=None):
    """Filter block edges with small steps; with ``coded`` (blocks, rows x columns), only
    edges next to a coded block (two skipped blocks share a prediction: no new edge)."""
    strength = float(cfg["DEBLOCK"])
    if strength <= 0 or step <= 0:
        return plane
    alpha = strength * (1.5 * step + 1.0)
    beta = strength * (0.35 * step + 1.0)
    tc = max(1, int(strength * 0.12 * step + 0.5))
    x = plane.astype(np.int32)
    for y, cm in ((x, coded), (x.T, None if coded is None else coded.T)):
        w = y.shape[1]
        if w <= b:
            continue
        p1 = y[:, b - 2 : w - 2 : b]
        p0 = y[:, b - 1 : w - 1 : b]
        q0 = y[:, b:w:b]
        q1 = y[:, b + 1 : w : b]
        ok = (np.abs(p0 - q0) < alpha) & (np.abs(p1 - p0) < beta) & (np.abs(q1 - q0) < beta)
        if cm is not None:
            ok &= np.repeat(cm[:, :-1] | cm[:, 1:], b, axis=0)
        delta = np.clip((4 * (q0 - p0) + (p1 - q1) + 4) >> 3, -tc, tc) * ok
        y[:, b - 1 : w - 1 : b] = p0 + delta
        y[:, b:w:b] = q0 - delta
    return np.clip(x, 0, 255).astype(np.uint8)
''',
)

COMPONENTS = [NONE, DEBLOCK]
