"""The plain-Python Akima integral gives scipy's figures, and BD-rates the package's."""

from __future__ import annotations

import random
import warnings

import bjontegaard
import numpy as np
import pytest
from scipy.interpolate import Akima1DInterpolator, make_interp_spline

from codeclab.evaluate import akima
from codeclab.evaluate.rd import bd_rate


def rd_curve(rng: random.Random, points: int) -> list[tuple[float, float]]:
    """A plausible RD curve: rates doubling or so, PSNR-Y rising 2 to 5 dB a step."""
    rate, psnr, curve = rng.uniform(20, 400), rng.uniform(25, 33), []
    for _ in range(points):
        curve.append((rate, psnr))
        rate *= rng.uniform(1.3, 2.6)
        psnr += rng.uniform(0.5, 5.0)
    return curve


def scipy_integral(x: list[float], y: list[float], start: float, end: float) -> float:
    spline = Akima1DInterpolator(x, y) if len(x) > 2 else make_interp_spline(x, y, k=1)
    return float(spline.integrate(start, end))


@pytest.mark.parametrize("points", [2, 3, 4, 5, 8])
def test_integral_equals_scipys_akima_spline(points: int) -> None:
    rng = random.Random(points)
    for _ in range(200):
        x = sorted(rng.sample(range(1000), points))
        x = [v / 10 for v in x]
        y = [rng.uniform(-3, 3) for _ in x]
        start, end = sorted(rng.uniform(x[0], x[-1]) for _ in range(2))
        expected = scipy_integral(x, y, start, end)
        assert akima.integral(x, y, start, end) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert akima.integral(x, y, x[0], x[-1]) == pytest.approx(
            scipy_integral(x, y, x[0], x[-1]), rel=1e-12, abs=1e-12
        )


@pytest.mark.parametrize(
    "y",
    [
        [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],  # a straight line
        [0.5, 1.0, 1.5, 2.0, 3.0, 4.0],  # two straight stretches meeting at x = 4
    ],
)
def test_points_on_straight_stretches_take_scipys_undefined_slope(y: list[float]) -> None:
    """Two equal slopes on each side leave Akima's weights at zero: scipy's fallback slope."""
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    for start, end in [(1.0, 6.0), (1.5, 3.5), (3.2, 5.9)]:
        assert akima.integral(x, y, start, end) == pytest.approx(
            scipy_integral(x, y, start, end), rel=1e-12
        )


def package_bd(
    anchor: list[tuple[float, float]], test: list[tuple[float, float]], start: float, end: float
) -> float:
    """BD-rate over ``start..end`` with the ``bjontegaard`` package's own interpolators."""
    (ra, ma), (rt, mt) = (np.array(sorted(c)).T for c in (anchor, test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, f_anchor, f_test = bjontegaard.bd_rate(
            ra, ma, rt, mt, method="akima", require_matching_points=False,
            interpolators=True, min_overlap=0,
        )  # fmt: skip
    mean = (f_test.integrate(start, end) - f_anchor.integrate(start, end)) / (end - start)
    return (10.0 ** float(mean) - 1.0) * 100.0


@pytest.mark.parametrize("points", [(4, 4), (4, 6), (2, 5), (3, 8)])
def test_bd_rate_equals_the_packages_figure(points: tuple[int, int]) -> None:
    rng = random.Random(sum(points))
    compared = 0
    for _ in range(200):
        anchor, test = rd_curve(rng, points[0]), rd_curve(rng, points[1])
        low = max(anchor[0][1], test[0][1])
        high = min(anchor[-1][1], test[-1][1])
        wide, _ = bd_rate(anchor, test)
        if wide is not None:
            assert wide == pytest.approx(package_bd(anchor, test, low, high), abs=1e-9)
            compared += 1
        span = (anchor[0][1] + 0.5, anchor[-1][1] - 0.5)
        standard, _ = bd_rate(anchor, test, metric_range=span)
        if standard is not None:
            start, end = max(span[0], low), min(span[1], high)
            assert standard == pytest.approx(package_bd(anchor, test, start, end), abs=1e-9)
            compared += 1
    assert compared > 100  # most random pairs overlap enough to have a figure
