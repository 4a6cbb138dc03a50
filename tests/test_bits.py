"""benchmarks/bench_bits.py: where each seed program's bits go, without changing a byte."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from codeclab.evaluate.rd import value_at_rate
from codeclab.media import Clip

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_bits.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_bits", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_bits"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clip() -> Clip:
    """64x48, 3 frames: smooth texture moving 2 pixels right a frame, so P pictures carry
    vectors, skip flags and residuals."""
    rng = np.random.default_rng(7)
    base = rng.normal(0, 1, (48, 96)).cumsum(axis=1).cumsum(axis=0)
    base = (base - base.min()) / np.ptp(base) * 200 + 20
    frames = []
    for t in range(3):
        y = base[:, 2 * t : 2 * t + 64].astype(np.uint8)
        u = np.full((24, 32), 120, np.uint8) + (y[::2, ::2] // 16).astype(np.uint8)
        v = np.full((24, 32), 130, np.uint8) - (y[::2, ::2] // 32).astype(np.uint8)
        frames.append((y, u, v))
    return Clip(Path("synthetic.y4m"), frames, 30.0)


@pytest.mark.parametrize("name", ["composed", "inter_mc", "intra_dct"])
def test_breakdown_sums_to_the_stream_and_leaves_it_unchanged(bench, clip, name):
    source = bench.seed_sources()[name]
    plain = bench.measure(name, source, clip, 50, account=False)
    counted = bench.measure(name, source, clip, 50)
    assert counted.sha256 == plain.sha256  # the accounting does not touch the bitstream
    assert sum(counted.bits.values()) == pytest.approx(counted.bytes * 8)
    header = counted.bits[("all", "header", "header, CRC, coder flush")]
    # what no symbol accounts for: the header, the CRC and the coder's last word or two
    assert 0 <= header <= 8 * 96


def test_composed_breakdown_has_every_kind_of_content(bench, clip):
    run = bench.measure("composed", bench.seed_sources()["composed"], clip, 50)
    seen = {(p, c) for p, c, _ in run.bits}
    assert {("I", "coef Y"), ("I", "coef U"), ("I", "coef V"), ("I", "modes")} <= seen
    assert {("P", "coef Y"), ("P", "vectors"), ("P", "modes")} <= seen
    parts = {part for _, c, part in run.bits if c == "coef Y"}
    assert {"ends", "levels", "signs"} <= parts
    assert ("P", "modes", "skip flags") in run.bits


def test_accounting_is_off_in_the_program_text(bench):
    """The switch exists for the lab's benches only: every program runs with it None."""
    ns = bench.run_source(bench.seed_sources()["composed"])
    assert ns["BIT_LOG"] is None


def test_x264_rate_inverts_the_curve(bench):
    curve = [(100.0, 30.0), (160.0, 33.0), (250.0, 36.0), (410.0, 39.0)]
    psnr = value_at_rate(curve, 200.0)
    assert bench.x264_rate_at(curve, psnr) == pytest.approx(200.0, rel=1e-3)
    assert bench.x264_rate_at(curve, 45.0) is None


def test_default_clips_are_the_train_clips_only(bench):
    """The natural set's holdout clips are never measured by the bench."""
    names = {p.name.split("_")[0] for p in bench.default_clips()}
    if bench.NATURAL.is_dir():
        assert names == {"cars", "carphone", "bikes"}
    else:
        assert len(names) == 1


def test_intra_macroblocks_of_inter_pictures_are_booked_by_plane(bench, clip):
    """A P picture with new content (a smooth ramp in luma, strong texture in U only) codes
    intra macroblocks: their flags are booked as modes, and their U levels under U: a
    chroma plane makes two ``levels`` calls then (inter blocks, intra macroblocks), so
    counting calls per picture booked U's intra levels under V."""
    rng = np.random.default_rng(3)
    frames = [tuple(p.copy() for p in f) for f in clip.frames[:1] * 3]
    y, u, _ = frames[2]
    y[16:48, 16:48] = (40 + 5 * np.add.outer(np.arange(32), np.arange(32))).astype(np.uint8)
    u[8:24, 8:24] = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    run = bench.measure(
        "composed", bench.seed_sources()["composed"], Clip(clip.path, frames, 30.0), 50
    )
    assert run.bits[("P", "modes", "intra flags")] > 0
    u_bits = sum(b for (p, c, _), b in run.bits.items() if (p, c) == ("P", "coef U"))
    v_bits = sum(b for (p, c, _), b in run.bits.items() if (p, c) == ("P", "coef V"))
    assert u_bits > 4 * v_bits
