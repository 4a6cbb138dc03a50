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
