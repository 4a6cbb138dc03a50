"""Each codec component on its own, run from its source text (the lab's own code)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from codeclab.config import SAMPLE_CLIP
from codeclab.design import components as C
from codeclab.design.compose import namespace
from codeclab.media import load_clip


@pytest.fixture(scope="module")
def luma() -> np.ndarray:
    return load_clip(SAMPLE_CLIP, max_frames=1).frames[0][0].astype(np.float64)


def ns(*parts: tuple[str, str]) -> dict:
    return namespace(*(C.get(slot, name) for slot, name in parts))


def test_registry_has_every_slot_and_declared_params():
    for slot in C.SLOTS:
        assert C.choices(slot), slot
        for name in C.choices(slot):
            comp = C.get(slot, name)
            assert comp.slot == slot and f"def {slot}_config" in comp.source
    assert C.get("quant", "rdo").params["RDO_LAMBDA"].kind == "float"
    with pytest.raises(KeyError):
        C.get("transform", "nope")


@pytest.mark.parametrize("name,sizes", [("dct", (4, 8, 16)), ("wht", (4, 8, 16)), ("int4", (4,))])
def test_transforms_are_orthonormal_and_round_trip(name, sizes):
    scope = ns(("transform", name))
    rng = np.random.default_rng(0)
    for n in sizes:
        m = scope["transform_matrix"](n)
        assert np.allclose(m @ m.T, np.eye(n))
        x = rng.normal(size=(n, n))
        assert np.allclose(m.T @ (m @ x @ m.T) @ m, x)
        flat = np.ones((n, n))  # a flat block has only a DC coefficient
        coef = m @ flat @ m.T
        assert abs(coef[0, 0]) == pytest.approx(n) and np.allclose(coef.ravel()[1:], 0)


def test_int4_is_h264_core_transform_scaled():
    m = ns(("transform", "int4"))["transform_matrix"](4)
    core = np.array([[1, 1, 1, 1], [2, 1, -1, -2], [1, -1, -1, 1], [1, -2, 2, -1]])
    assert np.allclose(m / m[:, :1] * core[:, :1], core)


def one_block(predict, top, left, corner, b, cfg) -> np.ndarray:
    """``intra_predictors`` (a batched interface) for one block's neighbours."""

    def batch(x):
        return None if x is None else np.atleast_1d(np.asarray(x, np.float64))[None]

    out = predict(batch(top), batch(left), None if corner is None else np.array([corner]), b, cfg)
    assert out.shape[0] == 1
    return out[0]


def test_intra_predictors():
    top, left = np.arange(8.0), np.arange(8.0) * 2 + 100
    directional = ns(("intra", "directional"))["intra_predictors"]
    p = one_block(directional, top, left, 5.0, 8, {"INTRA_MODES": 4})
    assert p.shape == (4, 8, 8)
    assert np.allclose(p[0], (top.mean() + left.mean()) / 2)  # DC
    assert np.allclose(p[1], np.tile(top, (8, 1)))  # vertical
    assert np.allclose(p[2], np.tile(left[:, None], (1, 8)))  # horizontal
    assert p[3].min() >= min(top.min(), left.min()) - 1e-9  # planar stays within range
    none = directional(None, None, None, 4, {})
    assert none.shape == (1, 4, 4, 4) and np.allclose(none, 128.0)
    dc = one_block(ns(("intra", "dc"))["intra_predictors"], top, None, None, 8, {})
    assert dc.shape == (1, 8, 8) and np.allclose(dc, top.mean())


@pytest.mark.parametrize("b", [4, 8, 16])
def test_angular_modes_exist_everywhere_and_start_as_directional(b):
    angular = ns(("intra", "angular"))["intra_predictors"]
    directional = ns(("intra", "directional"))["intra_predictors"]
    rng = np.random.default_rng(b)
    top, left = rng.uniform(0, 255, b), rng.uniform(0, 255, b)
    for t, left_, corner in [(top, left, 9.0), (None, left, None), (top, None, None)]:
        for count in (4, 8, 12):
            p = one_block(angular, t, left_, corner, b, {"INTRA_MODES": count})
            assert p.shape == (count, b, b) and np.isfinite(p).all()
        first = one_block(directional, t, left_, corner, b, {"INTRA_MODES": 4})
        twelve = one_block(angular, t, left_, corner, b, {"INTRA_MODES": 12})
        assert np.array_equal(twelve[:4], first)
    assert np.allclose(angular(None, None, None, b, {"INTRA_MODES": 12}), 128.0)


def _edge_block(b: int, inside) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Neighbours and block of a picture that is 200 where ``inside(y, x)`` else 50."""
    y, x = np.mgrid[-1:b, -1:b]
    pic = np.where(inside(y, x), 200.0, 50.0)
    return pic[0, 1:], pic[1:, 0], float(pic[0, 0]), pic[1:, 1:]


@pytest.mark.parametrize(
    "mode,inside",
    [
        (4, lambda y, x: x >= y),  # 45 degree edge: diagonal down-right
        (5, lambda y, x: 2 * x >= y),  # steep edge: vertical-right
        (6, lambda y, x: x >= 2 * y),  # shallow edge: horizontal-down
    ],
)
def test_angular_mode_follows_a_slanted_edge(mode, inside):
    predict = ns(("intra", "angular"))["intra_predictors"]
    m = ns(("transform", "dct"))["transform_matrix"](16)
    top, left, corner, block = _edge_block(16, inside)
    p = one_block(predict, top, left, corner, 16, {"INTRA_MODES": 12})
    err = np.abs(p - block).mean(axis=(1, 2))
    satd = np.abs(m @ (block[None] - p) @ m.T).sum(axis=(1, 2))
    assert int(np.argmin(satd)) == mode  # the encoder's choice
    assert err[mode] < 0.25 * err[:4].min()  # far closer than DC, V, H or planar
    assert err[mode] < 10.0  # the smoothed edge, otherwise exact
    diagonal = np.subtract.outer(np.arange(-1.0, 16), np.arange(-1.0, 16)) * 3 + 100
    r = one_block(predict, diagonal[0, 1:], diagonal[1:, 0], diagonal[0, 0], 16, {"INTRA_MODES": 8})
    assert np.allclose(r[4, 1:, 1:], diagonal[2:, 2:])  # a ramp along the diagonal: exact


@pytest.mark.parametrize("name", ["full_search", "diamond", "hierarchical", "predictive"])
def test_motion_search_finds_a_known_shift_on_a_real_frame(luma, name):
    scope = ns(("motion", name))
    ref = luma[64:192, 64:224]
    dy, dx = 2, -3
    cur = luma[64 + dy : 192 + dy, 64 + dx : 224 + dx]  # cur(y, x) = ref(y + dy, x + dx)
    mv = scope["motion_search"](cur, ref, 16, 8, 0.5)
    inner = mv[1:-1, 1:-1].reshape(-1, 2)
    hits = np.mean((inner == (dy, dx)).all(axis=1))
    assert hits >= 0.8, f"{name}: {hits:.0%} of blocks found the shift"


@pytest.mark.parametrize("name", ["bilinear", "sixtap"])
def test_subpel_refinement_finds_a_half_pel_shift(luma, name):
    scope = ns(("subpel", name))
    ref = luma[64:192, 64:224]
    cur = (luma[64:192, 64:224] + luma[64:192, 65:225]) / 2  # half a pixel to the right
    mv = scope["subpel_refine"](cur, ref, np.zeros((8, 10, 2), np.int64), 16, 0.1, {"MV_SCALE": 4})
    hits = np.mean((mv[:, :-1].reshape(-1, 2) == (0, 2)).all(axis=1))
    assert hits >= 0.8
    pred = scope["motion_compensate"](ref, mv, 16, 4)
    assert np.abs(pred - cur)[:, :-16].mean() < (1e-9 if name == "bilinear" else 1.0)
    assert ns(("subpel", "none"))["subpel_config"]() == {"MV_SCALE": 1}


def test_sixtap_is_the_h264_half_sample_filter(luma):
    scope = ns(("subpel", "sixtap"))
    plane = np.pad(luma[:32, :40], 3, mode="edge")
    up = scope["interpolate"](plane, 4)
    g = plane[3:-3, 3:-3].astype(np.int64)
    assert up.shape == (128, 160) and np.array_equal(up[::4, ::4], g)
    row = plane[3:-3].astype(np.int64)
    taps = row[:, :-5] - 5 * row[:, 1:-4] + 20 * row[:, 2:-3] + 20 * row[:, 3:-2]
    half = np.clip((taps - 5 * row[:, 4:-1] + row[:, 5:] + 16) >> 5, 0, 255)
    assert np.array_equal(up[::4, 2::4], half[:, 1:41])
    ramp = np.add.outer(np.arange(20.0), 2 * np.arange(20.0)) + 50
    exact = scope["bilinear_up"](ramp, 2)  # a ramp's halves are its midpoints (rounded)
    assert np.abs(scope["interpolate"](ramp, 2) - exact).max() <= 0.5


def test_skip_mode_skips_what_the_reference_already_predicts(luma):
    scope = ns(("subpel", "bilinear"), ("mode", "skip"), ("transform", "dct"), ("quant", "rdo"))
    cfg = {"BLOCK_SIZE": 8, "MB_SIZE": 16, "MV_SCALE": 4, "STEP_Y": 8.0, "STEP_C": 8.0}
    cfg["FREQ_SLOPE"] = 0.0
    y = luma[:64, :96]
    ref = [y, y[::2, ::2], y[::2, ::2]]
    src = [p.copy() for p in ref]
    src[0][16:32, 32:48] = 255 - src[0][16:32, 32:48]  # one macroblock changed
    mv = np.zeros((4, 6, 2), np.int64)
    skip = scope["mode_decide"](src, ref, mv, cfg)
    assert not skip[1, 2] and skip.sum() == skip.size - 1
    assert ns(("mode", "coded"))["mode_decide"](src, ref, mv, cfg).sum() == 0


def test_vectors_walk_back_from_their_differences():
    scope = ns()
    rng = np.random.default_rng(5)
    mv = rng.integers(-9, 10, size=(6, 8, 2))
    skip = rng.random((6, 8)) < 0.4
    final, diffs = scope["mv_walk"](~skip * 1, mv=mv)  # role 1: coded, 0: predicted
    assert np.array_equal(final[~skip], mv[~skip]) and len(diffs) == (~skip).sum()
    assert np.array_equal(scope["mv_walk"](~skip * 1, diffs=diffs)[0], final)
    assert np.array_equal(scope["median_pred"](final)[skip], final[skip])
    assert np.array_equal(diffs, (mv - scope["median_pred"](final))[~skip])  # raster order
    # role 2: the rest of a 2 x 2 group copies its top-left block (one vector a macroblock)
    role = np.where(rng.random((6, 8)) < 0.5, 1, 0)
    role[1::2, :] = 2
    role[:, 1::2] = 2
    final, diffs = scope["mv_walk"](role, mv=mv)
    assert len(diffs) == (role == 1).sum()
    groups = final.reshape(3, 2, 4, 2, 2)
    assert (groups == groups[:, :1, :, :1]).all()
    assert np.array_equal(scope["mv_walk"](role, diffs=diffs)[0], final)


@pytest.mark.parametrize("name", ["deadzone", "rdo", "rdoq"])
def test_quantisers(name):
    scope = ns(("quant", name))
    cfg = {"FREQ_SLOPE": 0.0}
    steps = scope["quant_steps"](8, 10.0, cfg)
    assert steps.shape == (64,) and np.allclose(steps, 10.0)
    sloped = scope["quant_steps"](8, 10.0, {"FREQ_SLOPE": 1.0})
    assert sloped[0] == 10.0 and sloped[-1] == pytest.approx(20.0)
    coef = np.random.default_rng(1).laplace(scale=20.0, size=(200, 64))
    q = scope["quantise"](coef, steps, True, cfg)
    err = np.abs(scope["dequantise"](q, steps) - coef)
    assert err[:, 0].max() <= 10.0 * 0.6 + 1e-9  # DC: half a step plus the dead zone
    assert (np.abs(q) <= np.abs(coef) / 10.0 + 0.5).all()


def test_rdo_quantiser_trades_tail_coefficients_for_rate():
    scope = ns(("quant", "rdo"))
    coef = np.random.default_rng(2).laplace(scale=6.0, size=(500, 64))
    steps = np.full(64, 8.0)
    plain = ns(("quant", "deadzone"))["quantise"](coef, steps, False, {})
    rdo = scope["quantise"](coef, steps, False, {})
    assert np.count_nonzero(rdo) < np.count_nonzero(plain)
    kept = rdo != 0
    assert (rdo[kept] == plain[kept]).all()  # it only ever zeroes levels


def test_rdoq_lowers_levels_only_where_the_bits_saved_outweigh_the_error():
    scope = ns(("quant", "rdoq"))
    coef = np.random.default_rng(4).laplace(scale=12.0, size=(400, 64))
    steps = np.full(64, 8.0)
    q = scope["quantise"](coef, steps, False, {})
    nearest = np.round(coef / steps)
    assert (np.sign(q) * np.sign(nearest) >= 0).all() and (np.abs(q) <= np.abs(nearest)).all()
    assert np.count_nonzero(np.abs(q) < np.abs(nearest)) > 0

    def cost(levels: np.ndarray) -> float:
        lam = 0.1 * 8.0**2  # the component's default RDOQ_LAMBDA
        return float(((coef - levels * steps) ** 2).sum() + lam * scope["level_bits"](levels).sum())

    assert cost(q) < cost(nearest)
    assert cost(q) < cost(ns(("quant", "rdo"))["quantise"](coef, steps, False, {}))


def _laplacian_levels(count: int, n: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.round(rng.laplace(scale=scale, size=(count, n))).astype(np.int64)


def _entropy_bits(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


@pytest.mark.parametrize(
    "name,factor", [("adaptive_range", 1.08), ("lean_range", 1.08), ("expgolomb", 1.5)]
)
def test_entropy_coders_round_trip_and_compress_a_laplacian_source(name, factor):
    scope = ns(("entropy", name))
    cfg = {k: float(v) for k, v in scope["entropy_config"]().items()}
    levels = _laplacian_levels(400, 16, 1.5)
    mask = np.arange(400) % 5 != 0
    ints = np.array([0, 1, -1, 17, -300, 2**20, 5, 0, 0, -2])
    coder = scope["EntropyCoder"](cfg)
    coder.levels("a", levels, 400, 16, 20)
    coder.ints("b", ints, 10, np.arange(10) % 2, 2)
    coder.levels("a", levels * mask[:, None], 400, 16, 20, mask)
    flags = np.array([2, 0, 1, 1, 0, 2])
    coder.symbols("c", flags, 6, np.array([0, 1, 2, 0, 1, 2]), 3)
    data = coder.finish()
    back = scope["EntropyCoder"](cfg, data)
    assert (back.levels("a", None, 400, 16, 20) == levels).all()
    assert (back.ints("b", None, 10, np.arange(10) % 2, 2) == ints).all()
    assert (back.levels("a", None, 400, 16, 20, mask) == levels * mask[:, None]).all()
    assert (back.symbols("c", None, 6, np.array([0, 1, 2, 0, 1, 2]), 3) == flags).all()
    assert len(data) * 8 <= factor * _entropy_bits(levels) * 1.8 + 512
    zeros = scope["EntropyCoder"](cfg)
    zeros.levels("a", np.zeros((64, 64), np.int64), 64, 64, 8)
    assert len(zeros.finish()) < 40


def test_lean_range_codes_every_end_of_block_class_and_learns_faster(luma):
    """End-of-block positions at and around every class edge (0, 1, 2, 3-4, 5-8, ..., up to
    the block's size) round-trip for 4x4, 8x8 and 16x16 blocks; on the few blocks of one
    small picture the class-then-offset code and the fewer contexts spend fewer bits than
    adaptive_range's 65-symbol end-of-block and richer contexts."""
    scope = ns(("entropy", "lean_range"))
    cfg = {k: float(v) for k, v in scope["entropy_config"]().items()}
    for n in (16, 64, 256):
        ends = sorted({e for t in range(9) for e in (2**t - 1, 2**t, 2**t + 1) if e <= n} | {n})
        levels = np.zeros((len(ends), n), np.int64)
        for i, e in enumerate(ends):
            if e:
                levels[i, :e] = (np.arange(e) % 3) - 1
                levels[i, e - 1] = -2 if i % 2 else 40
        coder = scope["EntropyCoder"](cfg)
        coder.levels("a", levels, len(ends), n, 1)
        back = scope["EntropyCoder"](cfg, coder.finish()).levels("a", None, len(ends), n, 1)
        assert (back == levels).all(), n
    dct = ns(("transform", "dct"))  # one small picture's quantised 8x8 DCT levels
    coef = dct["transform_plane"](luma[:120, :160], dct["transform_matrix"](8), 8, dct["zigzag"](8))
    small = np.round(coef[0] / 24.0).astype(np.int64)
    sizes = {}
    for name in ("adaptive_range", "lean_range"):
        s = ns(("entropy", name))
        coder = s["EntropyCoder"]({k: float(v) for k, v in s["entropy_config"]().items()})
        coder.levels("a", small, 300, 64, 20)
        sizes[name] = len(coder.finish())
    assert sizes["lean_range"] < 0.97 * sizes["adaptive_range"], sizes


def test_deblocking_reduces_blockiness(luma):
    scope = ns(("loopfilter", "deblock"))
    plane = luma[:128, :160]
    b, step = 8, 12.0
    blocks = plane.reshape(16, b, 20, b)
    blocky = np.repeat(np.repeat(blocks.mean(axis=(1, 3)), b, 0), b, 1)
    blocky = np.clip(np.round(blocky + (plane - blocky) * 0.3), 0, 255).astype(np.uint8)

    def edge_steps(x: np.ndarray) -> float:
        x = x.astype(np.float64)
        return float(np.abs(x[:, b - 1 : -1 : b] - x[:, b::b]).mean())

    out = scope["loop_filter"](blocky, b, step, {"DEBLOCK": 1.5})
    assert edge_steps(out) < 0.9 * edge_steps(blocky)
    assert np.mean((out - plane) ** 2) < np.mean((blocky - plane) ** 2)
    off = ns(("loopfilter", "none"))["loop_filter"](blocky, b, step, {})
    assert off is blocky
    skipped = np.zeros((16, 20), bool)  # no block coded: no new edge to filter
    assert np.array_equal(scope["loop_filter"](blocky, b, step, {"DEBLOCK": 1.5}, skipped), blocky)
    skipped[5, 5] = True
    some = scope["loop_filter"](blocky, b, step, {"DEBLOCK": 1.5}, skipped)
    changed = np.argwhere(some != blocky)
    assert len(changed) and (changed.min(axis=0) >= (b * 5 - 2)).all()
    assert (changed.max(axis=0) <= (b * 6 + 1)).all()


def test_gop_structures():
    ippp = ns(("gop", "ippp"))["gop_plan"]
    assert ippp(6, {"GOP_SIZE": 4}) == [(0, 0), (1, 1), (2, 1), (3, 1), (4, 0), (5, 1)]
    assert ns(("gop", "intra_only"))["gop_plan"](3, {}) == [(0, 0), (1, 0), (2, 0)]
    assert math.isfinite(C.get("gop", "ippp").params["GOP_SIZE"].high)
    ibp = ns(("gop", "ibp"))["gop_plan"]
    # anchors 0, 2, 4 and the last picture; each anchor's B pictures follow it
    plan = ibp(6, {"GOP_SIZE": 60, "B_RUN": 1})
    assert plan == [(0, 0), (2, 1), (1, 2), (4, 1), (3, 2), (5, 1)]
    assert ibp(7, {"GOP_SIZE": 4, "B_RUN": 2})[:4] == [(0, 0), (3, 1), (1, 2), (2, 2)]
    assert (6, 0) in ibp(7, {"GOP_SIZE": 4, "B_RUN": 2})  # an intra anchor after GOP_SIZE
    pyramid = ns(("gop", "pyramid"))["gop_plan"]
    # anchors 0, 4, 8; the middle B (type 3) is a reference for the two on either side
    plan = pyramid(9, {"GOP_SIZE": 60, "B_RUN": 3})
    assert plan == [(0, 0), (4, 1), (2, 3), (1, 2), (3, 2), (8, 1), (6, 3), (5, 2), (7, 2)]
    # a short last run: anchors 0, 4, 6; one B between 4 and 6
    assert pyramid(7, {"GOP_SIZE": 60, "B_RUN": 3})[-2:] == [(6, 1), (5, 2)]


def test_flags_cost_no_sign_bits():
    """Flags and modes have an alphabet of their own: rows of ones code as cheaply as rows
    of zeros (as signed integers, each one would carry a raw sign bit)."""
    scope = ns(("entropy", "adaptive_range"))
    cfg = {k: float(v) for k, v in scope["entropy_config"]().items()}
    sizes = []
    for value in (0, 1):
        coder = scope["EntropyCoder"](cfg)
        for _ in range(400):  # statistics adapt between calls, as between rows of blocks
            coder.symbols("f", np.full(10, value), 10, np.full(10, value), 2)
        sizes.append(len(coder.finish()))
    assert sizes[1] == sizes[0] < 4000 / 8 / 4


def test_angular_intra_composition_round_trips():
    from codeclab.design import compose

    clip = load_clip(SAMPLE_CLIP, max_frames=2)
    frames = [
        tuple(
            np.ascontiguousarray(p[:h, :w])
            for p, h, w in zip(f, (48, 24, 24), (64, 32, 32), strict=True)
        )
        for f in clip.frames
    ]
    sizes = {}
    for parts in ({"intra": "angular"}, {**compose.INTRA_DEFAULT, "intra": "angular"}):
        scope: dict = {}
        exec(compile(compose.compose(parts), "<composed>", "exec"), scope)  # noqa: S102
        plane, used = scope["intra_plane"], set()

        def recording(*args, _plane=plane, _used=used, **kwargs):
            out = _plane(*args, **kwargs)
            _used.update(out[1].tolist())
            return out

        scope["intra_plane"] = recording
        bitstream = scope["encode"](frames, 30.0, 60)
        assert max(used) >= 4  # the angles are chosen and their indices coded
        decoded = scope["decode"](bitstream)
        assert len(decoded) == len(frames)
        for (y, _, _), (dy, _, _) in zip(frames, decoded, strict=True):
            mse = np.mean((y.astype(np.float64) - dy) ** 2)
            assert dy.dtype == np.uint8 and 10 * np.log10(255.0**2 / mse) > 30.0
        sizes[parts.get("gop", "ippp")] = len(bitstream)
    assert sizes["intra_only"] > sizes["ippp"]


def test_chroma_prediction_reads_the_bilinear_plane_without_building_it(luma):
    """bilinear_at gives exactly the samples mc_up reads from bilinear_up's s^2 larger
    plane (chroma vectors are in 1/8 pel), at every fraction of a pixel."""
    scope = ns(("subpel", "sixtap"))
    rng = np.random.default_rng(3)
    ref, s, pad, b = luma[:48, :64] / 2.0, 8, 4, 8
    p = np.pad(ref, pad + 3, mode="edge")
    ys, xs = np.repeat(np.arange(6) * b, 8), np.tile(np.arange(8) * b, 6)
    mv = rng.integers(-pad * s + 1, pad * s - 1, (48, 2))
    full = scope["mc_up"](scope["bilinear_up"](p, s), s, pad, ys, xs, mv, b)
    direct = scope["bilinear_at"](p, (ys + pad) * s + mv[:, 0], (xs + pad) * s + mv[:, 1], b, s)
    assert np.array_equal(direct, full)


def test_cached_interpolation_equals_a_fresh_one(luma):
    """upsampled() keeps the latest references by content: a narrower margin is a view of
    the wider plane, the same picture as uint8 or float hits the same entry, and another
    picture (one pixel changed) never gets the cached samples."""
    scope = ns(("subpel", "sixtap"))
    ref = luma[:32, :48].copy()

    def fresh(plane, pad):
        return scope["interpolate"](np.pad(plane, pad + 3, mode="edge"), 4)

    for pad in (3, 6, 2, 6):
        assert np.array_equal(scope["upsampled"](ref, 4, pad), fresh(ref, pad))
    assert scope["upsampled"](ref.astype(np.uint8), 4, 2) is not None
    assert len(scope["UP_CACHE"]) == 1
    assert any(r is ref for r in scope["UP_CACHE"][0][3])  # found again without a CRC
    other = ref.copy()
    other[10, 10] = 255 - other[10, 10]
    assert np.array_equal(scope["upsampled"](other, 4, 2), fresh(other, 2))
    assert np.array_equal(scope["upsampled"](ref, 4, 2), fresh(ref, 2))


def _raster_intra_plane(scope: dict, src, shape, b, steps, cfg):
    """The reference: intra blocks one at a time in raster order (the wavefront batches
    the blocks of each anti-diagonal; it must code exactly the same)."""
    m, zz = scope["transform_matrix"](b), scope["zigzag"](b)
    nby, nbx = shape[0] // b, shape[1] // b
    levels, modes = np.zeros((nby * nbx, b * b), np.int64), np.zeros(nby * nbx, np.int64)
    rec = np.zeros(shape)
    for by in range(nby):
        for bx in range(nbx):
            i, y0, x0 = by * nbx + bx, by * b, bx * b
            top = rec[y0 - 1, x0 : x0 + b] if by else None
            left = rec[y0 : y0 + b, x0 - 1] if bx else None
            corner = rec[y0 - 1, x0 - 1] if by and bx else None
            preds = one_block(scope["intra_predictors"], top, left, corner, b, cfg)
            blk = src[y0 : y0 + b, x0 : x0 + b]
            modes[i] = scope["intra_choice"](blk[None], preds[None], m, zz, steps, cfg)[0][0]
            coef = (m @ (blk - preds[modes[i]]) @ m.T).reshape(-1)[zz]
            levels[i] = scope["quantise"](coef[None], steps, True, cfg)[0]
            res = m.T @ scope["dequantise"](levels[i], steps)[np.argsort(zz)].reshape(b, b) @ m
            rec[y0 : y0 + b, x0 : x0 + b] = np.clip(np.floor(preds[modes[i]] + res + 0.5), 0, 255)
    return levels, modes, rec.astype(np.uint8)


@pytest.mark.parametrize("intra", ["directional", "angular"])
def test_intra_wavefront_codes_as_block_by_block_raster_order(luma, intra):
    from codeclab.design import compose

    scope: dict = {}
    exec(compile(compose.compose({"intra": intra}), "<composed>", "exec"), scope)  # noqa: S102
    cfg = scope["program_config"](40)
    src, b = luma[40:88, 24:104], 8
    steps = scope["quant_steps"](b, cfg["STEP_Y"], cfg)
    want = _raster_intra_plane(scope, src, src.shape, b, steps, cfg)
    got = scope["intra_plane"](src, None, None, src.shape, b, steps, cfg)
    assert want[1].max() > 0 and len(set(want[1].tolist())) > 2  # several modes in play
    for a, w in zip(got, want, strict=True):
        assert np.array_equal(a, w)
    decoded = scope["intra_plane"](None, want[0], want[1], src.shape, b, steps, cfg)[2]
    assert np.array_equal(decoded, want[2])


def test_intra_rd_choice_trades_a_larger_residual_for_fewer_bits(luma):
    """INTRA_LAMBDA > 0 picks each block's mode by SSD + lambda step^2 * estimated bits of
    its quantised residual: never a worse cost than the SATD choice, and cheaper overall on
    a real picture; INTRA_LAMBDA 0 is the SATD choice."""
    from codeclab.design import compose

    scope: dict = {}
    exec(compile(compose.compose(), "<composed>", "exec"), scope)  # noqa: S102
    b, cfg = 8, scope["program_config"](40)
    src = luma[32:96, 32:128]
    blocks = scope["to_blocks"](src, b)
    at = [(by, bx) for by in range(1, blocks.shape[0]) for bx in range(1, blocks.shape[1])]
    blk = np.stack([blocks[by, bx] for by, bx in at])
    # each block predicted from the source around it, as if that were the reconstruction
    preds = scope["intra_neighbours"](src, *np.array(at).T, b, cfg)
    m, zz = scope["transform_matrix"](b), scope["zigzag"](b)
    steps = scope["quant_steps"](b, cfg["STEP_Y"], cfg)
    choose = scope["intra_choice"]
    satd, satd_levels = choose(blk, preds, m, zz, steps, {**cfg, "INTRA_LAMBDA": 0.0})
    coef = m @ (blk[:, None] - preds) @ m.T
    assert np.array_equal(satd, np.argmin(np.abs(coef).sum(axis=(2, 3)), axis=1))
    rd, rd_levels = choose(blk, preds, m, zz, steps, {**cfg, "INTRA_LAMBDA": 0.1})
    lam = 0.1 * float(steps[0]) ** 2

    def levels(mode):
        c = coef[np.arange(len(at)), mode].reshape(len(at), -1)[:, zz]
        return c, scope["quantise"](c, steps, True, cfg)

    def cost(mode):
        c, lv = levels(mode)
        dist = ((c - scope["dequantise"](lv, steps)) ** 2).sum(axis=1)
        return dist + lam * scope["level_rate"](lv)

    # the levels come with the choice: those of each block's chosen mode, as coded
    assert np.array_equal(satd_levels, levels(satd)[1])
    assert np.array_equal(rd_levels, levels(rd)[1])
    assert np.all(cost(rd) <= cost(satd) + 1e-9)
    assert (rd != satd).mean() > 0.1 and cost(rd).sum() < 0.99 * cost(satd).sum()


def _cut_clip() -> list[tuple[np.ndarray, ...]]:
    """12 pictures of 64 x 48: six of a slow pan over one part of the sample clip, then a
    scene cut to six of a pan over another part."""
    frames = load_clip(SAMPLE_CLIP, max_frames=6).frames
    out = []
    for y0, x0 in ((0, 0), (64, 80)):
        for i, (y, u, v) in enumerate(frames):
            x = x0 + i
            out.append(
                (
                    np.ascontiguousarray(y[y0 : y0 + 48, x : x + 64]),
                    np.ascontiguousarray(u[y0 // 2 : y0 // 2 + 24, x // 2 : x // 2 + 32]),
                    np.ascontiguousarray(v[y0 // 2 : y0 // 2 + 24, x // 2 : x // 2 + 32]),
                )
            )
    return out


def test_scene_cut_starts_an_intra_gop_that_nothing_references_across():
    """The encoder finds the cut, flags it in the stream, and each scene is a GOP of its
    own: picture 6 is intra and every B picture's anchors lie in its scene. The decoder
    reads the plan from the flags and reproduces the encoder's reconstruction exactly; with
    SCENE_CUT 0 the plan is the GOP component's over the whole clip."""
    from codeclab.design import compose

    frames = _cut_clip()
    scope: dict = {}
    exec(compile(compose.compose({"gop": "pyramid"}), "<composed>", "exec"), scope)  # noqa: S102
    cfg = scope["program_config"](50)
    assert scope["scene_cuts"](frames, cfg).tolist() == [0] * 6 + [1] + [0] * 5
    first = [(0, 0), (4, 1), (2, 3), (1, 2), (3, 2), (5, 1)]
    want = first + [(i + 6, kind if i else 0) for i, kind in first]
    assert scope["picture_plan"](cfg, scope["EntropyCoder"](cfg), frames, 12) == want
    whole = scope["picture_plan"]({**cfg, "SCENE_CUT": 0.0}, None, frames, 12)
    assert whole == scope["gop_plan"](12, cfg) and (6, 0) not in whole
    # the encoder's reconstruction, then the decoder's from the bitstream alone
    b, mb, ph, pw = scope["geometry"](cfg, 48, 64)
    cfg["SHAPES"] = [(ph, pw), (ph // 2, pw // 2), (ph // 2, pw // 2)]
    coder = scope["EntropyCoder"](cfg)
    encoded = scope["code_sequence"](cfg, coder, frames, 12)
    decoded = scope["decode"](scope["encode"](frames, 30.0, 50))
    for rec, dec in zip(encoded, decoded, strict=True):
        assert all(
            np.array_equal(r[: d.shape[0], : d.shape[1]], d) for r, d in zip(rec, dec, strict=True)
        )


@pytest.mark.parametrize("name", ["adaptive_range", "lean_range"])
def test_large_integers_cost_adaptive_bins_not_raw_escape_bits(name):
    """Signed integers of every size round-trip; the class of a value and, with
    INT_TOP_BITS 6, all the bits of one up to 127 are adaptive: 20 rows of vector differences
    of +-100 (fast camera motion) cost little more than their signs, where an escape with raw
    bits would cost 7 bits each. Contexts keep their own statistics."""
    scope = ns(("entropy", name))
    cfg = {k: float(v) for k, v in scope["entropy_config"]().items()}
    values = np.array([0, 1, -1, 2, 3, -4, 7, 8, -15, 16, 100, -127, 128, 1000, -(2**30)])
    coder = scope["EntropyCoder"](cfg)
    coder.ints("v", values, len(values), np.arange(len(values)) % 3, 3)
    back = scope["EntropyCoder"](cfg, coder.finish())
    assert np.array_equal(back.ints("v", None, len(values), np.arange(len(values)) % 3, 3), values)
    big = np.where(np.arange(20) % 2, 100, -100)
    coder = scope["EntropyCoder"]({**cfg, "INT_TOP_BITS": 6.0})
    for _ in range(20):  # statistics adapt between calls, as between rows of blocks
        coder.ints("v", big, 20, np.zeros(20, np.int64), 1)
    assert len(coder.finish()) * 8 < 400 * 2.5  # raw escape bits: 400 * 7


# The vectorised paths (issue 16: 720p speed) against plain references on small inputs: each
# must give exactly the reference's numbers, so bitstreams do not change.


@pytest.mark.parametrize("name", ["dc", "directional", "angular"])
def test_intra_predictors_of_a_batch_equal_each_block_alone(name):
    predict = ns(("intra", name))["intra_predictors"]
    rng = np.random.default_rng(5)
    for b in (4, 8, 16):
        cfg = {"INTRA_MODES": 12 if name == "angular" else 4}
        top, left = rng.integers(0, 256, (2, 9, b)).astype(np.float64)
        corner = rng.integers(0, 256, 9).astype(np.float64)
        for have_top, have_left in ((True, True), (True, False), (False, True)):
            t, lf = (top if have_top else None), (left if have_left else None)
            c = corner if have_top and have_left else None
            batch = predict(t, lf, c, b, cfg)
            for k in range(9):
                alone = predict(
                    None if t is None else t[k : k + 1],
                    None if lf is None else lf[k : k + 1],
                    None if c is None else c[k : k + 1],
                    b,
                    cfg,
                )
                assert np.array_equal(batch[k], alone[0])


@pytest.mark.parametrize("b", [4, 8, 16])
def test_angular_angles_are_np_interp_projections(b):
    """All angles of a batch read from one joined line per block equal each angle projected
    on its own with np.interp (family 1: the transpose of family 0 with the sides swapped)."""
    scope = ns(("intra", "angular"))
    rng = np.random.default_rng(b)
    top, left = rng.uniform(0, 255, (2, 3, b))
    corner = rng.uniform(0, 255, 3)
    got = scope["angular_angles"](top, left, corner, b, 8)
    y, x = np.arange(b)[:, None], np.arange(b)[None, :]
    grid = np.arange(2 * b + 1)
    for k in range(3):
        for a, (family, slope) in enumerate(scope["ANGULAR_DIRECTIONS"]):
            t, lf = (top[k], left[k]) if family == 0 else (left[k], top[k])
            t_line = np.concatenate([[corner[k]], t, np.full(b, t[-1])])
            l_line = np.concatenate([[corner[k]], lf, np.full(b, lf[-1])])
            at_top = x + 1 + (y + 1) * slope
            at_left = y + 1 - (x + 1) / (-slope if slope < 0 else 1.0)
            want = np.where(
                at_top >= 0, np.interp(at_top, grid, t_line), np.interp(at_left, grid, l_line)
            )
            assert np.array_equal(got[k, a], want.T if family else want), (k, a)


def _full_search(cur, ref, mb, rng, lam, mv_bits):
    """The plain reference: float SADs of every offset, the first least cost wins."""
    h, w = cur.shape
    rp = np.pad(ref, rng, mode="edge")
    best = np.full((h // mb, w // mb), np.inf)
    mv = np.zeros((h // mb, w // mb, 2), np.int64)
    for dy in range(-rng, rng + 1):
        for dx in range(-rng, rng + 1):
            shifted = rp[rng + dy : rng + dy + h, rng + dx : rng + dx + w]
            sad = np.abs(cur - shifted).reshape(h // mb, mb, w // mb, mb).sum(axis=(1, 3))
            cost = sad + lam * (mv_bits(np.array(dy)) + mv_bits(np.array(dx)))
            better = cost < best
            best[better], mv[better] = cost[better], (dy, dx)
    return mv


def _hierarchical(cur, ref, mb, rng, lam, levels, scope):
    """The plain reference: a mean pyramid, float SADs of one candidate at a time."""
    while levels and (mb >> levels) < 2:
        levels -= 1
    pyr = [(cur, ref)]
    for _ in range(levels):
        hh, ww = pyr[-1][0].shape[0] // 2 * 2, pyr[-1][0].shape[1] // 2 * 2
        pyr.append(
            tuple(p[:hh, :ww].reshape(hh // 2, 2, ww // 2, 2).mean(axis=(1, 3)) for p in pyr[-1])
        )
    nby, nbx = cur.shape[0] // mb, cur.shape[1] // mb
    mv = np.zeros((nby, nbx, 2), np.int64)
    for level in range(levels, -1, -1):
        (c, r), b = pyr[level], mb >> level
        lr = max(1, rng >> level)
        rp = np.pad(r, lr + 2, mode="edge")
        blocks = scope["to_blocks"](c[: nby * b, : nbx * b], b).reshape(-1, b, b)
        ys, xs = np.repeat(np.arange(nby) * b, nbx), np.tile(np.arange(nbx) * b, nby)
        win = lr if level == levels else 2
        start, best = mv.reshape(-1, 2), np.full(len(blocks), np.inf)
        out = start.copy()
        for dy in range(-win, win + 1):
            for dx in range(-win, win + 1):
                cand = np.clip(start + (dy, dx), -lr, lr)
                bits = scope["mv_bits"](cand[:, 0] << level) + scope["mv_bits"](cand[:, 1] << level)
                sad = scope["sad_of"](blocks, rp, lr + 2, ys, xs, cand, b)
                cost = sad * (1 << (2 * level)) + lam * bits
                better = cost < best
                best[better], out[better] = cost[better], cand[better]
        mv = out.reshape(nby, nbx, 2)
        if level:
            mv = np.clip(mv * 2, -rng, rng)
    return mv


@pytest.mark.parametrize("name", ["full_search", "hierarchical"])
def test_integer_window_motion_searches_equal_plain_float_searches(luma, name):
    """8-bit SADs in uint8/int16 and every candidate of a window at once choose exactly the
    vectors of float SADs tried one candidate at a time (ties: the first offset)."""
    scope = ns(("motion", name))
    ref = luma[40:104, 60:156]
    cur = luma[43:107, 58:154]
    cur[:16, :16] = cur[0, 0]  # a flat block: many tied costs
    for mb, rng, lam in [(8, 3, 0.0), (16, 5, 2.0), (8, 2, 30.0), (4, 24, 4.0)]:
        if name == "full_search" and rng > 5:
            continue
        got = scope["motion_search"](cur, ref, mb, rng, lam)
        if name == "full_search":
            want = _full_search(cur, ref, mb, rng, lam, scope["mv_bits"])
        else:
            want = _hierarchical(cur, ref, mb, rng, lam, scope["PYRAMID_LEVELS"], scope)
        assert np.array_equal(got, want), (mb, rng, lam)


def test_window_sads_are_the_sads_of_each_offset(luma):
    scope = ns()
    rp = np.pad(luma[:40, :56], 4, mode="edge")
    blocks = scope["to_blocks"](luma[2:34, 5:53], 8).reshape(-1, 8, 8)
    ys, xs = np.repeat(np.arange(4) * 8, 6), np.tile(np.arange(6) * 8, 4)
    sads = scope["window_sads"](scope["pels"](blocks), scope["pels"](rp), ys + 2, xs + 3, 2)
    for dy in range(5):
        for dx in range(5):
            mv = np.tile([dy - 2, dx - 1], (24, 1))
            assert np.array_equal(sads[dy, dx], scope["sad_of"](blocks, rp, 4, ys, xs, mv, 8))


def test_rdoq_equals_its_plain_definition():
    """Only coefficients that round to a level and blocks with a nonzero AC level are
    worked on; the result is the plain per-coefficient argmin over (round, round - 1, 0),
    then each block's end chosen by trying every end."""
    scope = ns(("quant", "rdoq"))
    rng = np.random.default_rng(7)
    steps = scope["quant_steps"](4, 10.0, {"FREQ_SLOPE": 0.5})
    coef = rng.laplace(0, 6.0, (300, 16)) * (rng.random((300, 1)) < 0.5)
    coef[:3, :] = [[15.0] + [0.0] * 15, [-4.0] * 16, [5.0, 12.0] + [0.0] * 14]
    bits = scope["level_bits"]
    for intra in (True, False):
        lam = (0.05 if intra else 0.1) * float(steps[0]) ** 2
        a = np.abs(coef)
        top = np.floor(a / steps + 0.5)
        cands = np.stack([top, np.maximum(top - 1, 0), np.zeros_like(top)])
        pick = np.argmin((a - cands * steps) ** 2 + lam * bits(cands), axis=0)
        q = (np.sign(coef) * np.take_along_axis(cands, pick[None], 0)[0]).astype(np.int64)
        for row, c in zip(q, coef, strict=True):  # the end: least kept + dropped cost
            costs = [
                (((c - row * steps) ** 2 + lam * bits(row))[1:e]).sum() + (c[e:] ** 2).sum()
                if e == 1 or row[e - 1] != 0
                else np.inf
                for e in range(1, 17)
            ]
            row[int(np.argmin(costs)) + 1 :] = 0
        got = scope["quantise"](coef, steps, intra, {})
        assert np.array_equal(got, q)


def test_inverse_transform_and_rate_of_sparse_levels_equal_dense_ones():
    scope = ns(("transform", "dct"))
    rng = np.random.default_rng(8)
    levels = rng.integers(-3, 4, (48, 64)) * (rng.random((48, 1)) < 0.3)
    m, zz = scope["transform_matrix"](8), scope["zigzag"](8)
    blocks = (levels * 7.5)[:, np.argsort(zz)].reshape(6, 8, 8, 8)
    dense = scope["from_blocks"](m.T @ blocks @ m)
    assert np.array_equal(
        scope["inverse_plane"](levels * 7.5, m, 8, np.argsort(zz), (48, 64)), dense
    )
    a = np.abs(levels)
    nz = a > 0
    eob = np.where(nz.any(axis=1), 64 - np.argmax(nz[:, ::-1], axis=1), 0)
    rate = 1.0 + 2.0 * np.log2(1.0 + eob) + (nz * (3.0 + 2.0 * np.log2(np.maximum(a, 1)))).sum(1)
    assert np.array_equal(scope["level_rate"](levels), rate)
