"""The composed programs' encoder work kept between calls (inter_costs' predictions and
costs, plane_levels) and done in bands of rows (prediction_costs, intra_mb_costs) gives what
computing everything afresh, in one piece, gives (issue 16: 720p at 1 frame/s)."""

from __future__ import annotations

import numpy as np
import pytest

from codeclab.design.compose import compose


def composed(parts: dict | None = None) -> dict:
    """A fresh namespace of the composed program (its memos empty)."""
    scope: dict = {}
    exec(compile(compose(parts), "<composed>", "exec"), scope)  # noqa: S102 - the lab's own code
    return scope


def picture(rng, h: int, w: int) -> list:
    """A 4:2:0 picture's planes as float64 8-bit samples."""
    return [rng.integers(0, 256, (h // d, w // d)).astype(np.float64) for d in (1, 2, 2)]


def setup(seed: int, h: int = 64, w: int = 96, mb: int = 16) -> tuple:
    """A program config with its shapes, a source picture, a uint8 reference near it and a
    vector field (1/MV_SCALE pel) per mb x mb block."""
    scope = composed()
    cfg = scope["program_config"](40)
    cfg["MB_SIZE"] = float(mb)
    rng = np.random.default_rng(seed)
    src = picture(rng, h, w)
    ref = [np.clip(p + rng.normal(0, 6, p.shape), 0, 255).astype(np.uint8) for p in src]
    field = rng.integers(-9, 10, (h // mb, w // mb, 2))
    return scope, cfg, src, ref, field


def test_inter_costs_again_or_of_another_field_equal_fresh_costs():
    """A repeated call (the skip then the split decision) returns the first one's costs and
    reconstructions; a field differing in some blocks (inherited vectors) its own costs; a
    caller writing to what it got changes nothing later."""
    scope, cfg, src, ref, field = setup(1)
    other = field.copy()
    other[1, 2:4] += 3
    first = scope["inter_costs"](src, ref, field, cfg)
    first[0][:] = -1.0  # the caller's own copy
    recs: list = []
    again = scope["inter_costs"](src, ref, field, cfg, recs=recs)
    fresh_recs: list = []
    fresh = composed()["inter_costs"](src, ref, field, cfg, recs=fresh_recs)
    assert all(np.array_equal(a, f) for a, f in zip(again, fresh, strict=True))
    assert all(np.array_equal(a, f) for a, f in zip(recs, fresh_recs, strict=True))
    for residual in (False, True):
        got = scope["inter_costs"](src, ref, other, cfg, residual)
        want = composed()["inter_costs"](src, ref, other, cfg, residual)
        assert all(np.array_equal(a, f) for a, f in zip(got, want, strict=True))


@pytest.mark.parametrize("subpel", ["sixtap", "bilinear"])
def test_inter_distortion_of_changed_blocks_equals_the_whole_planes(subpel):
    """Skip decisions' SSDs, kept per macroblock and computed again where the vectors
    changed (then for another source): those of whole prediction planes."""
    _, _, src, ref, field = setup(8)
    scope = composed({"subpel": subpel})
    cfg = {**scope["program_config"](40), "MB_SIZE": 16.0}
    mb, s = 16, int(cfg["MV_SCALE"])

    def planes(f):
        return [
            scope["motion_compensate"](ref[k], f, mb >> (k > 0), s << (k > 0), k == 0)
            for k in range(3)
        ]

    other = field.copy()
    other[2, 1:5] = -field[2, 1:5] + 1
    for pic, f in [
        (src, field),
        (src, other),
        (src, field),
        ([p[::-1].copy() for p in src], other),
    ]:
        want = scope["prediction_costs"](pic, planes(f), cfg, 1.0, False)[0]
        assert np.array_equal(scope["inter_costs"](pic, ref, f, cfg, False)[0], want)


def test_direct_distortion_of_changed_blocks_equals_the_averaged_planes():
    """DIRECT's SSDs (both vectors' predictions averaged), kept per macroblock and computed
    again where either vector changed: those of the averaged whole planes."""
    scope, cfg, src, past, field = setup(9)
    rng = np.random.default_rng(10)
    future = [np.clip(p + rng.normal(0, 8, p.shape), 0, 255).astype(np.uint8) for p in src]
    back = -field
    mode = np.full(field.shape[:2], 3)
    memo: list = []
    for fields in [(field, back), (field, back + (back > 2)), (field * 0, back)]:
        planes = scope["bipred_mix"](scope["bipred_refs"](past, future, fields, cfg), mode, cfg)
        want = scope["prediction_costs"](src, planes, cfg, 1.0, False)[0]
        sizes = (int(cfg["MB_SIZE"]), int(cfg["MV_SCALE"]))
        got = scope["motion_distortion"](src, (past, future), fields, sizes, memo)
        assert np.array_equal(got, want)


def test_inter_costs_of_another_source_or_block_size_are_not_the_kept_ones():
    """Same field, other source samples or half-size blocks: computed, not taken."""
    scope, cfg, src, ref, field = setup(2)
    scope["inter_costs"](src, ref, field, cfg)
    src2 = [p[::-1].copy() for p in src]
    want = composed()["inter_costs"](src2, ref, field, cfg)
    got = scope["inter_costs"](src2, ref, field, cfg)
    assert all(np.array_equal(a, f) for a, f in zip(got, want, strict=True))
    half = {**cfg, "MB_SIZE": 8.0}
    fine = np.repeat(np.repeat(field, 2, axis=0), 2, axis=1)
    got = scope["inter_costs"](src2, ref, fine, half)
    want = composed()["inter_costs"](src2, ref, fine, half)
    assert all(np.array_equal(a, f) for a, f in zip(got, want, strict=True))


def test_plane_levels_are_those_of_their_own_plane_and_step():
    """The kept levels serve the same plane at the same size and step only."""
    scope = composed()
    cfg = scope["program_config"](40)
    rng = np.random.default_rng(3)
    res = [rng.normal(0, 12, (32, 48)) for _ in range(2)]

    def plain(r, b, step):
        m, zz = scope["transform_matrix"](b), scope["zigzag"](b)
        coef = scope["transform_plane"](r, m, b, zz)[0]
        return scope["quantise"](coef, scope["quant_steps"](b, step, cfg), False, cfg)

    for r, b, step in [(res[0], 8, 6.0), (res[0], 4, 6.0), (res[0], 8, 9.0), (res[1], 8, 9.0)]:
        got = scope["plane_levels"](r, b, step, cfg)
        assert np.array_equal(got, plain(r, b, step))
        assert np.array_equal(scope["plane_levels"](r, b, step, cfg), got)


@pytest.mark.parametrize("mb", [16, 8])
def test_prediction_costs_in_bands_equal_one_band(mb):
    """Bands of a few block rows (macroblocks smaller than a transform block in chroma
    with mb 8) give the costs and reconstructions of the whole plane at once."""
    scope, cfg, src, ref, field = setup(4, h=192, w=256, mb=mb)
    preds = [np.clip(p + np.random.default_rng(5).normal(0, 9, p.shape), 0, 255) for p in src]
    scope["BAND_BLOCKS"] = 10**9
    whole: list = []
    want = scope["prediction_costs"](src, preds, cfg, 0.8, True, whole)
    scope["BAND_BLOCKS"] = 48  # 2 block rows of luma, 3 of chroma: several bands each
    banded: list = []
    got = scope["prediction_costs"](src, preds, cfg, 0.8, True, banded)
    assert all(
        np.array_equal(a, f) for a, f in zip(got + tuple(banded), want + tuple(whole), strict=True)
    )


@pytest.mark.parametrize("intra", ["directional", "angular", "dc"])
def test_intra_mb_costs_in_bands_equal_one_band(intra):
    """Bands of block rows give each macroblock's intra cost of the whole plane at once."""
    scope = composed({"intra": intra})
    cfg = scope["program_config"](40)
    rng = np.random.default_rng(6)
    src = picture(rng, 192, 256)
    near = [np.clip(p + rng.normal(0, 5, p.shape), 0, 255) for p in src]
    scope["INTRA_MB_BAND"] = 10**9
    want = scope["intra_mb_costs"](cfg, src, near, 1.0, 30.0)
    scope["INTRA_MB_BAND"] = 64  # 2 block rows of luma, 4 of chroma
    assert np.array_equal(scope["intra_mb_costs"](cfg, src, near, 1.0, 30.0), want)


def test_bands_cover_the_rows_in_runs_of_at_least_the_size():
    scope = composed()
    assert scope["bands"](5, 3) == [(0, 5)]
    assert scope["bands"](45, 4) == [(i * 45 // 11, (i + 1) * 45 // 11) for i in range(11)]
    for count, size in [(90, 7), (12, 1), (7, 0), (1, 50)]:
        runs = scope["bands"](count, size)
        assert runs[0][0] == 0 and runs[-1][1] == count
        assert all(a[1] == b[0] for a, b in zip(runs, runs[1:], strict=False))
        assert all(hi - lo >= min(size, count) for lo, hi in runs)


def test_rd_end_of_block_with_costs_in_place_equals_joining_them():
    """The end-of-block costs summed in place: the ends joining the cumulative sums to a
    column of zeros gives."""
    scope = composed({"quant": "rdo"})
    rng = np.random.default_rng(7)
    coef = rng.normal(0, 30, (200, 16)) * np.linspace(3, 0.2, 16)
    steps = np.full(16, 10.0)
    q = np.rint(coef / steps).astype(np.int64)
    lam = 6.0
    kept = (coef - q * steps) ** 2 + lam * scope["fast_level_bits"](q)
    zero = np.zeros((len(coef), 1))
    cost = np.concatenate([zero, np.cumsum(kept[:, 1:], axis=1)], axis=1) + np.concatenate(
        [np.cumsum((coef[:, 1:] ** 2)[:, ::-1], axis=1)[:, ::-1], zero], axis=1
    )
    cost[np.concatenate([np.ones((len(coef), 1), bool), q[:, 1:] != 0], axis=1) == 0] = np.inf
    end = np.argmin(cost, axis=1) + 1
    want = np.where(np.arange(16) >= end[:, None], 0, q)
    assert np.array_equal(scope["rd_end_of_block"](coef, q, steps, lam), want)
