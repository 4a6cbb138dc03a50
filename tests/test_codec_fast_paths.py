"""The composed programs' fast paths (issue 16: 720p at 1 frame/s) equal the plain code they
replaced, on random input: the same levels, predictions, batches and classes."""

from __future__ import annotations

import numpy as np
import pytest

from codeclab.design import components as C
from codeclab.design.compose import compose, namespace


def ns(*parts: tuple[str, str]) -> dict:
    return namespace(*(C.get(slot, name) for slot, name in parts))


def composed() -> dict:
    """The default composed program's namespace (the skeleton's functions)."""
    scope: dict = {}
    exec(compile(compose(), "<composed>", "exec"), scope)  # noqa: S102 - the lab's own code
    return scope


def _dense_rdoq(scope: dict, coef, steps, lam):
    """The RDOQ quantiser as first written: every coefficient's three candidates."""
    a = np.abs(coef)
    top = np.floor(a / steps + 0.5)
    lower = np.maximum(top - 1, 0)
    bits = scope["level_bits"]
    cost = [(a - m * steps) ** 2 + lam * bits(m) for m in (top, lower, np.zeros_like(top))]
    first = (cost[0] <= cost[1]) & (cost[0] <= cost[2])
    mags = np.where(first, top, np.where(cost[1] <= cost[2], lower, 0.0))
    q = (np.sign(coef) * mags).astype(np.int64)
    return scope["rd_end_of_block"](coef, q, steps, lam) if lam > 0 else q


@pytest.mark.parametrize("scale", [0.3, 3.0, 40.0, 5000.0])
def test_sparse_rdoq_equals_the_dense_one(scale):
    """Only the coefficients that round to a level are weighed; sparse residuals (small
    scale), dense ones and levels past the bits table (large) all quantise the same."""
    scope = ns(("quant", "rdoq"))
    rng = np.random.default_rng(int(scale * 10))
    for b in (4, 8):
        steps = scope["quant_steps"](b, 6.0, {"FREQ_SLOPE": 0.5})
        coef = rng.laplace(0, scale, (300, b * b)) * (rng.random((300, 1)) < 0.7)
        for intra in (False, True):
            lam = float(0.05 if intra else 0.1) * float(steps[0]) ** 2
            got = scope["quantise"](coef, steps, intra, {})
            assert got.dtype == np.int64
            assert np.array_equal(got, _dense_rdoq(scope, coef, steps, lam))
    assert not scope["quantise"](np.zeros((3, 16)), steps[:16], True, {}).any()


def test_level_bits_table_equals_the_formula():
    scope = ns(("quant", "rdoq"))
    q = np.arange(-9000.0, 9000.0)
    assert np.array_equal(scope["fast_level_bits"](q), scope["level_bits"](q))


def test_eob_class_equals_counting_powers_of_two():
    scope = ns(("entropy", "lean_range"))
    e = np.concatenate([np.arange(0, 5000), [2**29 - 1, 2**29, 2**29 + 1, 2**31]])
    counted = np.array([0 if v == 0 else 1 + sum(v > (1 << t) for t in range(30)) for v in e])
    assert np.array_equal(scope["eob_class"](e), counted)


@pytest.mark.parametrize("encoding", [True, False])
def test_intra_batches_follow_the_neighbours(encoding):
    """Every block of the mask once, each after its above, left and above-left blocks that
    are in the mask; a full grid is its anti-diagonals (both sides); the decoder takes a lone
    2x2 group in 3 batches, the encoder (whose mode counts follow the anti-diagonals) in 3
    anti-diagonals too, but scattered groups in as many as their anti-diagonals span."""
    batches = composed()["intra_batches"]
    rng = np.random.default_rng(5)
    todo = rng.random((9, 13)) < 0.5
    when = np.full(todo.shape, -1)
    for k, (bys, bxs) in enumerate(batches(todo, encoding)):
        assert todo[bys, bxs].all() and (when[bys, bxs] < 0).all()
        when[bys, bxs] = k
    assert ((when >= 0) == todo).all()
    h, w = todo.shape
    for dy, dx in ((1, 0), (0, 1), (1, 1)):
        after = todo[dy:, dx:] & todo[: h - dy, : w - dx]
        assert (when[dy:, dx:][after] > when[: h - dy, : w - dx][after]).all()
    full = list(batches(np.ones((4, 6), bool), encoding))
    assert len(full) == 9 and all((ys + xs == d).all() for d, (ys, xs) in enumerate(full))
    apart = np.zeros((8, 16), bool)
    apart[0:2, 0:2] = apart[6:8, 12:14] = True
    assert len(list(batches(apart, encoding))) == (6 if encoding else 3)
    assert list(batches(np.zeros((3, 3), bool), encoding)) == []


def test_chroma_prediction_of_8_bit_samples_sums_in_integers():
    """bilinear_at on an int32 plane (8-bit samples) gives the float64 plane's numbers."""
    scope = ns()
    rng = np.random.default_rng(7)
    p = rng.integers(0, 256, (40, 56))
    ry, rx = rng.integers(0, 8 * 24, 50), rng.integers(0, 8 * 40, 50)
    whole = scope["bilinear_at"](p.astype(np.int32), ry, rx, 8, 8)
    assert whole.dtype == np.float64
    assert np.array_equal(whole, scope["bilinear_at"](p.astype(np.float64), ry, rx, 8, 8))


def test_bipred_mix_of_one_mode_equals_the_mixed_plane():
    scope = composed()
    cfg = scope["program_config"](40)
    rng = np.random.default_rng(9)
    pairs = [tuple(rng.integers(0, 256, (32 // k, 48 // k)).astype(float) for _ in "fb")
             for k in (1, 2, 2)]  # fmt: skip
    for mode in range(4):
        one = scope["bipred_mix"](pairs, np.full((2, 3), mode), cfg)
        mixed = np.full((2, 3), mode)
        mixed[0, 0] = (mode + 1) % 4  # a second mode: the per-macroblock path
        both = scope["bipred_mix"](pairs, mixed, cfg)
        for k, (a, c) in enumerate(zip(one, both, strict=True)):
            edge = 16 if k == 0 else 8
            assert np.array_equal(a[edge:], c[edge:]) and np.array_equal(a[:, edge:], c[:, edge:])


@pytest.mark.parametrize("b,t", [(8, 16), (8, 8), (4, 16), (16, 8), (8, 4)])
def test_tile_rate_equals_spreading_block_bits_over_pixels(b, t):
    """Per-tile bits from per-block estimates: what spreading each block's bits evenly over
    its pixels and summing them per tile gives (to rounding)."""
    scope = ns()
    rng = np.random.default_rng(b * t)
    nby, nbx = 64 // b, 96 // b
    rate = rng.random(nby * nbx) * 50
    pixels = np.kron(rate.reshape(nby, nbx), np.ones((b, b))) / (b * b)
    want = scope["per_tile"](pixels, t)
    assert np.allclose(scope["tile_rate"](rate, nbx, b, t), want, rtol=1e-12)


def _exhaustive_search(scope: dict, cur, ref, mb, rng, lam):
    """Full search as first written: every offset's SAD for every block, in scan order."""
    h, w = cur.shape
    c = np.clip(np.rint(cur), 0, 255)
    rp = np.pad(np.clip(np.rint(ref), 0, 255), rng + 1, mode="edge")
    best = np.full((h // mb, w // mb), np.inf)
    mv = np.zeros((h // mb, w // mb, 2), np.int64)
    for dy in range(-rng, rng + 1):
        for dx in range(-rng, rng + 1):
            shifted = rp[rng + 1 + dy : rng + 1 + dy + h, rng + 1 + dx : rng + 1 + dx + w]
            sad = np.abs(c - shifted).reshape(h // mb, mb, w // mb, mb).sum(axis=(1, 3))
            bits = scope["mv_bits"](np.array(dy)) + scope["mv_bits"](np.array(dx))
            cost = sad + lam * bits
            better = cost < best
            best[better] = cost[better]
            mv[better] = (dy, dx)
    return mv


@pytest.mark.parametrize(
    "mb,lam,r",
    [
        (16, 0.0, 5),
        (16, 12.5, 5),
        (8, 3.0, 5),
        (4, 0.0, 5),
        (8, 40.0, 5),
        (16, 2.0, 9),
        (8, 0.0, 3),
    ],
)
def test_pruned_full_search_equals_the_exhaustive_scan(mb, lam, r):
    """Successive elimination, a row of offsets at a time, finds the exhaustive scan's
    vectors, ties (flat areas, where many offsets of one row and of several cost the same)
    included, with and without the half-resolution seed (ranges from 4)."""
    scope = ns(("motion", "full_search"))
    rng = np.random.default_rng(mb + int(lam) + r)
    ref = rng.random((48, 64)) * 255
    ref[:24, :32] = 90.0
    cur = np.roll(ref, (3, -2), axis=(0, 1)) + rng.normal(0, 4, ref.shape)
    cur[:16, :16] = 90.0  # flat on flat: equal costs, the first in scan order wins
    cur[32:, 40:] = rng.random((16, 24)) * 255  # no match anywhere
    got = scope["motion_search"](cur, ref, mb, r, lam)
    assert np.array_equal(got, _exhaustive_search(scope, cur, ref, mb, r, lam))


def test_mv_walk_medians_equal_min_max_and_median_pred():
    """The walk's inline medians: every block's prediction is what :func:`median_pred`
    (min/max of the neighbours) gives on the final field, whatever the roles."""
    scope = composed()
    rng = np.random.default_rng(5)
    for _ in range(20):
        role = rng.integers(0, 2, (7, 9))
        mv = rng.integers(-3, 4, (7, 9, 2))
        final, diffs = scope["mv_walk"](role, mv=mv)
        pred = scope["median_pred"](final)
        assert np.array_equal(final[role == 0], pred[role == 0])
        assert np.array_equal(diffs, (mv - pred)[role == 1])


@pytest.mark.parametrize("order", [0, 1, 3])
def test_exp_golomb_levels_in_one_call_equal_the_per_block_codes(order):
    """All coded blocks' codes at once: the bits of each block's ue(end) then se(levels),
    one block after another, as first written."""
    scope = ns(("entropy", "expgolomb"))
    rng = np.random.default_rng(order)
    levels = np.round(rng.laplace(0, 2.0, (60, 16)) * (rng.random((60, 16)) < 0.4))
    levels[::7] = 0
    levels[3, -1] = 2**20
    mask = rng.random(60) < 0.7
    coder = scope["EntropyCoder"]({"EG_ORDER": order})
    coder.levels("a", levels, 60, 16, 6, mask)
    nz = levels != 0
    eob = np.where(nz.any(axis=1), 16 - np.argmax(nz[:, ::-1], axis=1), 0)
    want = [
        scope["eg_bits"](u, k)
        for block, e in zip(levels[mask].astype(np.int64), eob[mask], strict=True)
        for u, k in ((np.array([e]), 0), (scope["signed_to_u"](block[:e]), order))
    ]
    assert np.array_equal(np.concatenate(coder.chunks), np.concatenate(want))


def _angular_angles_as_written(scope: dict, top, left, corner, b, count):
    """Every pixel of every angle interpolated, then the fraction-0 ones replaced."""
    side = 2 * b + 1
    lines = [
        np.concatenate([corner[:, None], s, np.repeat(s[:, -1:], b, axis=1)], axis=1)
        for s in (top, left)
    ]
    joined = np.concatenate([lines[0], lines[1], lines[1][:, -1:]], axis=1)
    idx, frac = [], []
    for family, slope in scope["ANGULAR_DIRECTIONS"][:count]:
        j, f = scope["angular_taps"](b, slope)
        if family:
            j, f = np.where(j < side, j + side, j - side).T, f.T
        idx.append(j)
        frac.append(f)
    idx, frac = np.array(idx), np.array(frac)
    lo, hi = joined[:, idx], joined[:, idx + 1]
    return np.where(frac == 0, lo, (hi - lo) * frac + lo)


@pytest.mark.parametrize("b", [4, 8, 16])
def test_angular_angles_copying_fraction_0_equal_interpolating_all(b):
    scope = ns(("intra", "angular"))
    rng = np.random.default_rng(b)
    top, left = rng.random((2, 9, b)) * 255
    corner = rng.random(9) * 255
    for count in (1, 4, 8):
        got = scope["angular_angles"](top, left, corner, b, count)
        want = _angular_angles_as_written(scope, top, left, corner, b, count)
        assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("s", [1, 2, 4, 8])
def test_bilinear_up_of_8_bit_samples_equals_the_float_formula(s):
    """The int16 rows-then-columns path gives the float64 four-tap formula's very values."""
    scope = ns()
    p = np.random.default_rng(s).integers(0, 256, (21, 30)).astype(np.float64)
    p[:5, :8] = 255.0  # the largest sums
    g = p[3:-2, 3:-2]
    a, b, c, d = g[:-1, :-1], g[:-1, 1:], g[1:, :-1], g[1:, 1:]
    want = np.empty((a.shape[0] * s, a.shape[1] * s), np.float32)
    for fy in range(s):
        for fx in range(s):
            want[fy::s, fx::s] = (
                (s - fx) * (s - fy) * a + fx * (s - fy) * b + (s - fx) * fy * c + fx * fy * d
            ) / (s * s)
    got = scope["bilinear_up"](p, s)
    assert got.dtype == np.float32 and np.array_equal(got, want)


@pytest.mark.parametrize("luma", [True, False])
def test_motion_compensation_of_changed_blocks_equals_the_whole_field(luma):
    """Recomputing only the blocks whose vectors changed since ``last`` gives the plane
    computing them all gives."""
    scope = composed()
    rng = np.random.default_rng(int(luma))
    ref = rng.integers(0, 256, (48, 64)).astype(np.uint8 if not luma else np.float64)
    b, s = (16, 4) if luma else (8, 8)
    first = rng.integers(-20, 21, (3, 4, 2))
    field = first.copy()
    field[1:, 2:] = rng.integers(-40, 41, (2, 2, 2))  # far outside the first field's reach
    last = (first, scope["motion_compensate"](ref, first, b, s, luma))
    got = scope["motion_compensate"](ref, field, b, s, luma, last)
    assert np.array_equal(got, scope["motion_compensate"](ref, field, b, s, luma))
    same = scope["motion_compensate"](ref, first, b, s, luma, last)
    assert np.array_equal(same, last[1]) and same is not last[1]


@pytest.mark.parametrize("kind", [np.int16, np.float64])
def test_window_sads_in_place_equal_each_offsets_plain_sad(kind):
    """The in-place differences and int32 sums of int16 samples (float ones summed as
    before) give each offset's plain SAD, up to the largest 8-bit sums of 16 x 16 blocks."""
    scope = composed()
    rng = np.random.default_rng(3)
    rp = rng.integers(0, 256, (40, 56)).astype(kind)
    rp[:20, :24] = 255  # the largest differences against zero blocks
    blocks = rng.integers(0, 256, (6, 16, 16)).astype(kind)
    blocks[:2] = 0
    ys, xs = np.array([0, 2, 20, 4, 18, 1]), np.array([0, 3, 30, 9, 1, 34])
    sads = scope["window_sads"](blocks, rp, ys, xs, 2)
    for dy in range(5):
        for dx in range(5):
            near = np.stack(
                [
                    rp[y + dy : y + dy + 16, x + dx : x + dx + 16]
                    for y, x in zip(ys, xs, strict=True)
                ]
            )
            want = np.abs(blocks.astype(np.float64) - near).sum(axis=(1, 2))
            assert np.array_equal(sads[dy, dx], want)


@pytest.mark.parametrize("rng_", [1, 3, 8])
def test_window_costs_equal_gathering_every_block(rng_):
    """Hierarchical search: costs written into the penalty, gathered only for the blocks
    whose candidates the range clipped, equal the gather of every block's candidates."""
    scope = ns(("motion", "hierarchical"))
    rng = np.random.default_rng(rng_)
    win, n = 2, 50
    start = rng.integers(-rng_ - 3, rng_ + 4, n)  # some near or past the range's edges
    centre = np.clip(start, -rng_, rng_)
    d = np.arange(-win, win + 1)[:, None]
    k = np.clip(start + d, -rng_, rng_) - centre + win
    ky, kx = k, np.roll(k, 7, axis=1)
    sads = rng.integers(0, 5000, (2 * win + 1, 2 * win + 1, n)).astype(np.float64)
    bits = rng.integers(1, 30, sads.shape).astype(np.float64)
    want = sads[ky[:, None], kx[None, :], np.arange(n)] + 0.37 * bits
    got = scope["window_costs"](sads, ky, kx, np.multiply(bits, 0.37, out=bits))
    assert np.array_equal(got, want)


def _plain_refine(scope: dict, cur, ref, mv, mb, lam, s):
    """subpel_refine as first written: every block costed for every candidate."""
    nby, nbx = cur.shape[0] // mb, cur.shape[1] // mb
    ys, xs = np.repeat(np.arange(nby) * mb, nbx), np.tile(np.arange(nbx) * mb, nby)
    m, pad = mv.reshape(-1, 2) * s, int(np.abs(mv).max()) + 3
    up = scope["upsampled"](ref, s, pad)
    kind = np.int16 if up.dtype == np.uint8 else np.float64
    blocks = scope["to_blocks"](cur, mb).reshape(-1, mb, mb).astype(kind)
    bits = scope["mv_bits"]

    def cost(v, med):
        pred = scope["mc_up"](up, s, pad, ys, xs, v, mb)
        return np.abs(blocks - pred).sum(axis=(1, 2)) + lam * (
            bits(v[:, 0] - med[:, 0]) + bits(v[:, 1] - med[:, 1])
        )

    def improve(candidates, med):
        best = cost(m, med)
        for cand in candidates:
            c = cost(cand, med)
            better = c < best
            best[better], m[better] = c[better], cand[better]

    for step in (s // 2, s // 4)[: 2 if s == 4 else 1]:
        med = scope["median_pred"](m.reshape(nby, nbx, 2)).reshape(-1, 2)
        offsets = [(dy, dx) for dy in (-step, 0, step) for dx in (-step, 0, step) if dy or dx]
        improve([m.copy() + np.array(d) for d in offsets], med)
    med = scope["median_pred"](m.reshape(nby, nbx, 2)).reshape(-1, 2)
    improve(scope["neighbour_vectors"](m.reshape(nby, nbx, 2)) + [m * 0, med], med)
    return m.reshape(nby, nbx, 2)


@pytest.mark.parametrize("subpel", ["sixtap", "bilinear"])
def test_subpel_refine_costing_only_changed_candidates_equals_costing_all(subpel):
    """Candidates equal to a block's vector are not costed (they cannot beat it): the same
    vectors as costing every block, on a smooth field (many equal neighbours)."""
    scope = ns(("subpel", subpel))
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 256, (64, 96)).astype(np.float64)
    cur = np.roll(ref, (1, -2), axis=(0, 1)) + rng.integers(-6, 7, ref.shape)
    mv = np.ones((4, 6, 2), np.int64)
    mv[2:, 3:] = rng.integers(-3, 4, (2, 3, 2))
    cfg = {"MV_SCALE": 4}
    assert scope["NEIGHBOUR_ROUNDS"] == 1
    got = scope["subpel_refine"](cur, ref, mv, 16, 30.0, cfg)
    assert np.array_equal(got, _plain_refine(scope, cur, ref, mv, 16, 30.0, 4))


def test_least_satd_equals_indexing_the_chosen_modes_coefficients():
    """The chosen rows taken whole then permuted, the magnitudes written over the residuals:
    the coefficients the plain per-element indexing of the least-SATD mode gives."""
    scope = composed()
    b = 8
    m, zz = scope["transform_matrix"](b), scope["zigzag"](b)
    res = np.random.default_rng(7).normal(0.0, 20.0, (40, 4, b, b))
    coef = scope["estimate_transform"](res, m)
    best = np.argmin(np.abs(coef).sum(axis=(2, 3)), axis=1)
    want = coef[np.arange(len(best)), best].reshape(-1, b * b)[:, zz]
    assert np.array_equal(scope["least_satd"](res.copy(), m, zz), want)


def test_rdoq_threshold_keeps_exactly_what_rounding_keeps():
    """The compare against the double below 0.5 selects the coefficients whose rounding
    gives a level, at the edge too: that double rounds up (ties to even), the next one down
    does not."""
    scope = ns(("quant", "rdoq"))
    below = np.nextafter(0.5, 0.0)
    edge = np.array([below, np.nextafter(below, 0.0), 0.5, 0.25, 1.0, 0.0, np.nan])
    assert np.array_equal(np.floor(edge + 0.5) != 0, ~(edge < scope["ROUNDS_UP"]))
    coef = np.tile(np.array([3.0, -below, np.nextafter(below, 0.0), -0.5, 0.1, 2.6]), (3, 1))
    steps = np.ones(6)
    want = _dense_rdoq(scope, coef, steps, 0.1 * 1.0)
    assert np.array_equal(scope["quantise"](coef, steps, False, {}), want)


@pytest.mark.parametrize("b", [4, 8])
def test_angular_candidates_written_in_place_equal_the_joined_ones(b):
    """The angles taken into the candidates' own array: DC, V, H, planar, then the angles
    of the smoothed neighbours, as joining the two arrays gives them."""
    scope = ns(("intra", "angular"))
    rng = np.random.default_rng(b + 1)
    top, left = rng.random((2, 13, b)) * 255
    corner = rng.random(13) * 255
    for count in (4, 6, 8, 12):
        got = scope["intra_predictors"](top, left, corner, b, {"INTRA_MODES": count})
        t, lt, c, four = scope["four_predictors"](top, left, corner, b)
        angles = (
            _angular_angles_as_written(scope, *scope["angular_smooth"](t, lt, c), b, count - 4)
            if count > 4
            else four[:, :0]
        )
        assert np.array_equal(got, np.concatenate([four[:, :count], angles], axis=1))


def _neighbours_by_kind(scope: dict, rec, bys, bxs, b, cfg):
    """intra_neighbours as first written: each kind of block predicted apart, copied in."""
    grid = rec.reshape(rec.shape[0] // b, b, rec.shape[1] // b, b)
    kind = (bys > 0) * 2 + (bxs > 0)
    preds = None
    for k in np.unique(kind):
        sel = kind == k
        p = scope["kind_predictors"](grid, bys[sel], bxs[sel], k, b, cfg)
        preds = np.empty((len(bys),) + p.shape[1:]) if preds is None else preds
        preds[sel] = p
    return preds


@pytest.mark.parametrize("intra", ["dc", "directional", "angular"])
def test_intra_neighbours_of_the_common_kind_first_equal_each_kind_apart(intra):
    """Predicting every block as the most common kind, then the others as theirs, gives
    each kind's own predictions: a whole plane (kind 3 most common), a first row (kind 1)
    with the corner block, one block, and a tie of two kinds."""
    scope: dict = {}
    exec(compile(compose({"intra": intra}), "<composed>", "exec"), scope)  # noqa: S102
    cfg = {"INTRA_MODES": 8 if intra == "angular" else 4}
    b = 4
    rec = np.random.default_rng(2).integers(0, 256, (5 * b, 7 * b)).astype(np.float64)
    bys, bxs = np.divmod(np.arange(35), 7)
    for ys, xs in (
        (bys, bxs),
        (np.zeros(5, np.int64), np.arange(5)),
        (np.zeros(1, np.int64), np.zeros(1, np.int64)),
        (np.array([0, 2]), np.array([3, 0])),
    ):
        got = scope["intra_neighbours"](rec, ys, xs, b, cfg)
        assert np.array_equal(got, _neighbours_by_kind(scope, rec, ys, xs, b, cfg))


@pytest.mark.parametrize("axis", [0, 1])
def test_six_tap_of_paired_samples_equals_the_six_products(axis):
    """The symmetric 6-tap filter summed in pairs (two products) equals the six taps."""
    scope = ns(("subpel", "sixtap"))
    a = np.random.default_rng(axis).integers(0, 256, (23, 19)).astype(np.int32)
    n = a.shape[axis]
    taps = (1, -5, 20, 20, -5, 1)
    want = sum(t * np.take(a, np.arange(o, n - 5 + o), axis=axis) for o, t in enumerate(taps))
    got = scope["six_tap"](a, axis)
    assert got.dtype == np.int32 and np.array_equal(got, want)
