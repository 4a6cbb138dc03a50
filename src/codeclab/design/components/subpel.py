"""Sub-pixel motion refinement (encoder side); bilinear interpolation is in the core."""

from codeclab.design.components import component

NONE = component(
    "subpel",
    "none",
    "whole-pel vectors only",
    """
def subpel_config():
    return {"MV_SCALE": 1}


def subpel_refine(cur, ref, mv, mb, lam, cfg):
    return mv
""",
)

BILINEAR = component(
    "subpel",
    "bilinear",
    "half- then quarter-pel refinement around the whole-pel vector (bilinear reference)",
    '''
# Vector precision: 2 = half pel, 4 = quarter pel.
MV_PRECISION = 4  # @param choice 2,4


def subpel_config():
    return {"MV_SCALE": MV_PRECISION}


def subpel_refine(cur, ref, mv, mb, lam, cfg):
    """Scale whole-pel vectors to 1/MV_SCALE pel and try the 8 neighbours at each halving."""
    s = int(cfg["MV_SCALE"])
    h, w = cur.shape
    nby, nbx = h // mb, w // mb
    blocks = to_blocks(cur, mb).reshape(-1, mb, mb)
    ys = np.repeat(np.arange(nby) * mb, nbx)
    xs = np.tile(np.arange(nbx) * mb, nby)
    m = mv.reshape(-1, 2) * s
    pad = int(np.abs(mv).max()) + 3
    rp = np.pad(ref, pad, mode="edge")

    def cost(v):
        pred = mc_blocks(rp, pad, ys, xs, v, mb, s)
        bits = mv_bits(v[:, 0]) + mv_bits(v[:, 1])
        return np.abs(blocks - pred).sum(axis=(1, 2)) + lam * bits

    best = cost(m)
    step = s // 2
    while step >= 1:
        centre = m.copy()
        for dy in (-step, 0, step):
            for dx in (-step, 0, step):
                if dy == 0 and dx == 0:
                    continue
                cand = centre + np.array((dy, dx))
                c = cost(cand)
                better = c < best
                best[better] = c[better]
                m[better] = cand[better]
        step //= 2
    return m.reshape(nby, nbx, 2)
''',
)

COMPONENTS = [NONE, BILINEAR]
