"""Each codec component on its own, run from its source text (the lab's own code)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from codeclab.config import SAMPLE_CLIP
from codeclab.design import components as C
from codeclab.media import load_clip


@pytest.fixture(scope="module")
def luma() -> np.ndarray:
    return load_clip(SAMPLE_CLIP, max_frames=1).frames[0][0].astype(np.float64)


def ns(*parts: tuple[str, str]) -> dict:
    return C.namespace(*(C.get(slot, name) for slot, name in parts))


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


def test_intra_predictors():
    top, left = np.arange(8.0), np.arange(8.0) * 2 + 100
    p = ns(("intra", "directional"))["intra_predictors"](top, left, 5.0, 8, {"INTRA_MODES": 4})
    assert p.shape == (4, 8, 8)
    assert np.allclose(p[0], (top.mean() + left.mean()) / 2)  # DC
    assert np.allclose(p[1], np.tile(top, (8, 1)))  # vertical
    assert np.allclose(p[2], np.tile(left[:, None], (1, 8)))  # horizontal
    assert p[3].min() >= min(top.min(), left.min()) - 1e-9  # planar stays within range
    none = ns(("intra", "directional"))["intra_predictors"](None, None, None, 4, {})
    assert np.allclose(none, 128.0)
    dc = ns(("intra", "dc"))["intra_predictors"](top, None, None, 8, {})
    assert dc.shape == (1, 8, 8) and np.allclose(dc, top.mean())


@pytest.mark.parametrize("name", ["full_search", "diamond", "hierarchical"])
def test_motion_search_finds_a_known_shift_on_a_real_frame(luma, name):
    scope = ns(("motion", name))
    ref = luma[64:192, 64:224]
    dy, dx = 2, -3
    cur = luma[64 + dy : 192 + dy, 64 + dx : 224 + dx]  # cur(y, x) = ref(y + dy, x + dx)
    mv = scope["motion_search"](cur, ref, 16, 8, 0.5)
    inner = mv[1:-1, 1:-1].reshape(-1, 2)
    hits = np.mean((inner == (dy, dx)).all(axis=1))
    assert hits >= 0.8, f"{name}: {hits:.0%} of blocks found the shift"


def test_subpel_refinement_finds_a_half_pel_shift(luma):
    scope = ns(("subpel", "bilinear"))
    ref = luma[64:192, 64:224]
    cur = (luma[64:192, 64:224] + luma[64:192, 65:225]) / 2  # half a pixel to the right
    mv = scope["subpel_refine"](cur, ref, np.zeros((8, 10, 2), np.int64), 16, 0.1, {"MV_SCALE": 4})
    hits = np.mean((mv[:, :-1].reshape(-1, 2) == (0, 2)).all(axis=1))
    assert hits >= 0.9
    pred = scope["motion_compensate"](ref, mv, 16, 4)
    assert np.abs(pred - cur)[:, :-16].max() < 1e-9
    assert ns(("subpel", "none"))["subpel_config"]() == {"MV_SCALE": 1}


@pytest.mark.parametrize("name", ["deadzone", "rdo"])
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


def _laplacian_levels(count: int, n: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.round(rng.laplace(scale=scale, size=(count, n))).astype(np.int64)


def _entropy_bits(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


@pytest.mark.parametrize("name,factor", [("adaptive_range", 1.08), ("expgolomb", 1.5)])
def test_entropy_coders_round_trip_and_compress_a_laplacian_source(name, factor):
    scope = ns(("entropy", name))
    cfg = {k: float(v) for k, v in scope["entropy_config"]().items()}
    levels = _laplacian_levels(400, 16, 1.5)
    data = scope["entropy_encode_levels"](levels, 20, cfg)
    assert (scope["entropy_decode_levels"](data, 400, 16, 20, cfg) == levels).all()
    assert len(data) * 8 <= factor * _entropy_bits(levels) + 512
    ints = np.array([0, 1, -1, 17, -300, 2**20, 5, 0, 0, -2])
    assert (
        scope["entropy_decode_ints"](scope["entropy_encode_ints"](ints, cfg), 10, cfg) == ints
    ).all()
    zeros = np.zeros((64, 64), np.int64)
    assert len(scope["entropy_encode_levels"](zeros, 8, cfg)) < 40


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


def test_gop_structures():
    ippp = ns(("gop", "ippp"))["gop_is_intra"]
    assert [ippp(i, {"GOP_SIZE": 4}) for i in range(6)] == [1, 0, 0, 0, 1, 0]
    assert all(ns(("gop", "intra_only"))["gop_is_intra"](i, {}) for i in range(5))
    assert math.isfinite(C.get("gop", "ippp").params["GOP_SIZE"].high)
