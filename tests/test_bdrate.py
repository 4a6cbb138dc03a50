"""BD-rate of rungs: the standard range, and no credit for lossless rungs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from codeclab.evaluate.bdrate import clip_figures, standard_span
from codeclab.evaluate.rd import LOSSLESS_PSNR_DB
from codeclab.runner import _next_qualities

# x264 on a CIF clip: CRF 22..37 are its standard rungs, 17 and 12 extend the ladder upwards.
X264 = [
    SimpleNamespace(crf=crf, kbps=kbps, psnr_y=psnr)
    for crf, kbps, psnr in [
        (37, 90.0, 30.1),
        (32, 160.0, 33.0),
        (27, 290.0, 36.1),
        (22, 520.0, 39.4),
        (17, 900.0, 42.6),
        (12, 1500.0, 45.9),
    ]
]


def rungs(points: list[tuple[float, float]]) -> list[SimpleNamespace]:
    return [SimpleNamespace(kbps=k, psnr_y=p, quality=i) for i, (k, p) in enumerate(points)]


def doubled() -> list[SimpleNamespace]:
    return rungs([(2 * r.kbps, r.psnr_y) for r in X264])


def test_standard_span_is_the_anchor_at_crf_22_to_37() -> None:
    assert standard_span("x264", X264) == (30.1, 39.4)
    assert standard_span("x264", X264[1:]) is None  # CRF 37 missing


def test_twice_the_bits_is_plus_100_percent_over_the_standard_range() -> None:
    standard, wide = clip_figures("x264", X264, doubled(), "psnr_y")
    assert standard.value == pytest.approx(100.0, abs=0.2)  # splines through 4 and 5 points
    assert standard.span == (30.1, 39.4)
    assert wide.value == pytest.approx(100.0, abs=1e-6)


@pytest.mark.parametrize("lossless", [[(6000.0, 100.0)], [(5000.0, 99.0), (6000.0, 100.0)]])
def test_lossless_rungs_earn_no_credit(lossless: list[tuple[float, float]]) -> None:
    """A codec made lossless at the top of its ladder: two 100 dB points would draw a line up
    to 100 dB; both figures must be what they are without them."""
    honest = clip_figures("x264", X264, doubled(), "psnr_y")
    padded = rungs([(r.kbps, r.psnr_y) for r in doubled()] + lossless)
    assert all(p.psnr_y >= LOSSLESS_PSNR_DB for p in padded[len(X264) :])
    assert clip_figures("x264", X264, padded, "psnr_y") == honest


def test_a_lossless_baseline_rung_stays_off_its_curve() -> None:
    honest = clip_figures("x264", X264, doubled(), "psnr_y")
    anchor = [*X264, SimpleNamespace(crf=0, kbps=9000.0, psnr_y=100.0)]
    assert clip_figures("x264", anchor, doubled(), "psnr_y") == honest


def test_next_qualities_bisect_towards_both_ends_of_the_range() -> None:
    mine = rungs([(100.0, 31.0), (200.0, 35.0)])
    mine[0].quality, mine[1].quality = 40, 60
    assert _next_qualities(mine, (29.0, 38.0)) == [80, 20]
    assert _next_qualities(mine, (31.0, 35.0)) == []  # already spans it
    # the rung above is lossless: the next try is between the last lossy one and it
    top = SimpleNamespace(kbps=900.0, psnr_y=100.0, quality=80)
    assert _next_qualities([*mine, top], (31.0, 38.0)) == [70]
    # nothing left to try below quality 1
    bottom = rungs([(50.0, 33.0)])
    bottom[0].quality = 1
    assert _next_qualities([bottom[0], *mine], (29.0, 35.0)) == []
