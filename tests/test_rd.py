"""BD-rate, interpolation along a curve, and both halves of the target check."""

from __future__ import annotations

import math

import pytest

from codeclab.evaluate.rd import around, bd_rate, target_check, value_at_rate

# A plausible x265 curve: PSNR-Y rising ~3.5 dB per doubling of the rate.
X265 = [(150.0, 31.0), (300.0, 34.4), (600.0, 37.6), (1200.0, 40.5)]


def scaled(points: list[tuple[float, float]], factor: float) -> list[tuple[float, float]]:
    return [(rate * factor, metric) for rate, metric in points]


def test_bd_rate_of_a_curve_against_itself_is_zero() -> None:
    value, reason = bd_rate(X265, X265)
    assert reason is None
    assert value == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("factor, expected", [(0.5, -50.0), (2.0, 100.0)])
def test_bd_rate_of_a_uniformly_scaled_curve(factor: float, expected: float) -> None:
    value, reason = bd_rate(X265, scaled(X265, factor))
    assert reason is None
    assert value == pytest.approx(expected, abs=1e-6)


def test_bd_rate_sorts_points_and_drops_repeated_rates() -> None:
    shuffled = [X265[2], X265[0], X265[3], X265[1], (X265[1][0], 99.0)]
    assert bd_rate(X265, scaled(shuffled, 0.5)) == bd_rate(X265, scaled(X265, 0.5))


def test_bd_rate_with_too_few_points_is_none() -> None:
    value, reason = bd_rate(X265, X265[:1])
    assert value is None
    assert "need at least 2 points" in reason
    value, reason = bd_rate(X265, X265[:3], min_points=4)
    assert value is None
    assert "need at least 4 points" in reason and "test has 3" in reason


def test_bd_rate_of_curves_that_do_not_overlap_is_none() -> None:
    higher = [(rate, metric + 12.0) for rate, metric in X265]
    value, reason = bd_rate(X265, higher)
    assert value is None
    assert "overlap too little" in reason
    assert "31.000..40.500" in reason and "43.000..52.500" in reason


def test_bd_rate_of_a_non_monotonic_curve_is_none() -> None:
    bumpy = [(150.0, 31.0), (300.0, 35.0), (600.0, 34.0), (1200.0, 40.0)]
    value, reason = bd_rate(X265, bumpy)
    assert value is None
    assert reason.startswith("test metric does not increase with rate")


def test_value_at_rate_interpolates_on_log_rate() -> None:
    assert value_at_rate(X265, 300.0) == pytest.approx(34.4)
    midway = value_at_rate([(100.0, 30.0), (400.0, 36.0)], 200.0)
    assert midway == pytest.approx(33.0)  # two points: linear in log-rate
    inside = value_at_rate(X265, 420.0)
    assert 34.4 < inside < 37.6


def test_value_at_rate_outside_the_curve_is_none() -> None:
    assert value_at_rate(X265, 149.9) is None
    assert value_at_rate(X265, 1200.1) is None
    assert value_at_rate([], 500.0) is None


def test_target_achieved_reports_both_halves() -> None:
    candidate = [(200.0, 33.0), (450.0, 37.0), (1500.0, 42.0)]
    result = target_check(candidate, X265)
    assert result["achieved"] is True
    assert result["reason"] is None
    assert (result["kbps"], result["psnr_y"]) == (450.0, 37.0)
    assert result["x265_psnr_y_at_kbps"] == pytest.approx(value_at_rate(X265, 450.0))
    assert result["target_kbps"] == 1000.0


def test_target_missed_when_psnr_is_below_x265() -> None:
    candidate = [(420.0, 31.2), (900.0, 33.0)]
    result = target_check(candidate, X265)
    assert result["achieved"] is False
    assert result["kbps"] == 420.0  # the rung that came closest to x265
    reference = value_at_rate(X265, 420.0)
    assert result["x265_psnr_y_at_kbps"] == pytest.approx(reference)
    assert result["reason"] == f"PSNR-Y 31.20 dB below x265's {reference:.2f} dB at 420.0 kbps"


def test_target_missed_with_no_rung_under_the_target() -> None:
    result = target_check([(1100.0, 45.0), (2000.0, 48.0)], X265)
    assert result["achieved"] is False
    assert result["reason"] == "no rung at or below 1000 kbps"
    assert result["kbps"] == 1100.0
    assert result["x265_psnr_y_at_kbps"] == pytest.approx(value_at_rate(X265, 1100.0))


def test_target_missed_when_x265_curve_does_not_reach_the_rate() -> None:
    result = target_check([(60.0, 30.0), (120.0, 33.0)], X265)
    assert result["achieved"] is False
    assert result["kbps"] == 120.0
    assert result["x265_psnr_y_at_kbps"] is None
    assert result["reason"] == "x265 curve (150.0..1200.0 kbps) does not reach 120.0 kbps"


def test_target_counts_a_rung_exactly_at_the_target() -> None:
    x265 = [(500.0, 35.0), (2000.0, 41.0)]
    result = target_check([(1000.0, 38.0)], x265, target_kbps=1000.0)
    assert result["achieved"] is True
    assert math.isclose(result["x265_psnr_y_at_kbps"], 38.0)


def test_standard_range_bd_rate_ignores_how_wide_the_ladders_are() -> None:
    """Half the bits inside the standard range, twice the bits above it: the standard figure
    is -50 % whatever the rungs outside say; the wide figure is moved by them."""
    anchor = [*X265, (2400.0, 43.0), (4800.0, 45.5)]
    test = [(r * 0.5, m) for r, m in X265[:3]] + [(2400.0 * 2, 43.0), (4800.0 * 2, 45.5)]
    standard, reason = bd_rate(X265, test, metric_range=(31.0, 37.6))
    assert reason is None
    assert standard == pytest.approx(-50.0, abs=2.0)
    wide, _ = bd_rate(anchor, test)
    assert wide > standard + 20.0


def test_standard_range_is_clipped_to_where_both_curves_exist() -> None:
    half = scaled(X265, 0.5)
    inside = [p for p in half if p[1] <= 37.6]  # the test curve stops at 37.6 dB
    value, reason = bd_rate(X265, inside, metric_range=(31.0, 40.5))
    assert reason is None and value == pytest.approx(-50.0, abs=0.1)


def test_standard_range_covered_too_little_is_none_with_the_reason() -> None:
    high = [(r, m + 7.0) for r, m in X265]  # 38..47.5 dB against a 31..40.5 dB range
    value, reason = bd_rate(X265, high, metric_range=(31.0, 40.5))
    assert value is None
    assert "cover too little of the standard range 31.000..40.500" in reason


def test_around_keeps_the_range_and_one_point_beyond_each_end() -> None:
    points = [(50.0, 25.0), (100.0, 28.0), (150.0, 31.5), (300.0, 35.0), (900.0, 42.0)]
    points += [(2000.0, 47.0)]
    assert around(points, (30.0, 40.0)) == points[1:5]
    assert around(points, (20.0, 50.0)) == points
