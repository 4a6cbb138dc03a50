"""Rate-distortion analysis: BD-rate, a curve's quality at a bitrate, and the target check.

Curves are sequences of ``(kbps, metric)`` points, one per rung. BD-rate follows Bjontegaard
on log-rate with Akima interpolation (the ``bjontegaard`` package); where two curves do not
share enough quality range to integrate over, the answer is ``None`` with the reason rather
than an extrapolated number (DESIGN.md section 4).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import bjontegaard
import numpy as np
from scipy.interpolate import PchipInterpolator

Point = tuple[float, float]

BD_METHOD = "akima"
"""Interpolation of log-rate over the metric used by :func:`bd_rate`."""

MIN_METRIC_OVERLAP = 0.2
"""Shared metric range two curves need, as a fraction of the narrower curve's range."""


def _curve(points: Sequence[Point]) -> tuple[np.ndarray, np.ndarray]:
    """Rates and metrics sorted by rate, keeping the first point of each repeated rate."""
    ordered = sorted((float(rate), float(metric)) for rate, metric in points)
    kept = [p for i, p in enumerate(ordered) if i == 0 or p[0] != ordered[i - 1][0]]
    rates = np.array([rate for rate, _ in kept])
    metrics = np.array([metric for _, metric in kept])
    return rates, metrics


def _describe(name: str, rates: np.ndarray, metrics: np.ndarray) -> str | None:
    """Why a curve cannot enter BD-rate, or None when it can."""
    if np.any(rates <= 0) or not np.all(np.isfinite(metrics)):
        return f"{name} curve has a non-positive rate or a non-finite metric"
    if np.any(np.diff(metrics) <= 0):
        shown = ", ".join(f"{r:.1f} kbps: {m:.3f}" for r, m in zip(rates, metrics, strict=True))
        return f"{name} metric does not increase with rate ({shown})"
    return None


def bd_rate(
    anchor: Sequence[Point], test: Sequence[Point], *, min_points: int = 2
) -> tuple[float | None, str | None]:
    """Bjontegaard delta rate of ``test`` against ``anchor`` in percent, or (None, reason).

    Negative means ``test`` needs fewer bits than ``anchor`` for the same quality. Log-rate
    is interpolated over the metric with Akima splines (:data:`BD_METHOD`; two-point curves
    are linear) and integrated over the metric range both curves cover. Each curve's metric
    must increase strictly with rate, and the shared range must be at least
    :data:`MIN_METRIC_OVERLAP` of the narrower curve's range.
    """
    needed = max(min_points, 2)  # a curve needs two points to have a shape at all
    curves = {"anchor": _curve(anchor), "test": _curve(test)}
    counts = {name: len(rates) for name, (rates, _) in curves.items()}
    if min(counts.values()) < needed:
        return None, (
            f"need at least {needed} points of distinct rate per curve "
            f"(anchor has {counts['anchor']}, test has {counts['test']})"
        )
    for name, (rates, metrics) in curves.items():
        reason = _describe(name, rates, metrics)
        if reason is not None:
            return None, reason
    (rate_a, metric_a), (rate_t, metric_t) = curves["anchor"], curves["test"]
    shared = min(metric_a[-1], metric_t[-1]) - max(metric_a[0], metric_t[0])
    narrower = min(metric_a[-1] - metric_a[0], metric_t[-1] - metric_t[0])
    if shared < MIN_METRIC_OVERLAP * narrower:
        return None, (
            f"metric ranges overlap too little: anchor {metric_a[0]:.3f}..{metric_a[-1]:.3f}, "
            f"test {metric_t[0]:.3f}..{metric_t[-1]:.3f} (need {MIN_METRIC_OVERLAP:.0%} "
            "of the narrower range)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package's own overlap warning; checked above
        value = bjontegaard.bd_rate(
            rate_a,
            metric_a,
            rate_t,
            metric_t,
            method=BD_METHOD,
            require_matching_points=False,
            min_overlap=0,
        )
    if not math.isfinite(value):
        return None, f"BD-rate is not finite ({value})"
    return float(value), None


def value_at_rate(points: Sequence[Point], kbps: float) -> float | None:
    """The curve's metric at ``kbps`` (PCHIP on log-rate), None outside its rate range."""
    rates, metrics = _curve(points)
    if len(rates) == 0 or not rates[0] <= kbps <= rates[-1]:
        return None
    if len(rates) == 1:
        return float(metrics[0])
    return float(PchipInterpolator(np.log(rates), metrics)(math.log(kbps)))


def _span(points: Sequence[Point]) -> str:
    rates = [rate for rate, _ in points]
    return f"{min(rates):.1f}..{max(rates):.1f} kbps" if rates else "no rungs"


def target_check(
    candidate: Sequence[Point], x265: Sequence[Point], target_kbps: float = 1000.0
) -> dict:
    """The honest "under 1 Mbps" target of DESIGN.md section 4, with both of its halves.

    Achieved when some candidate rung (kbps, PSNR-Y) is at or below ``target_kbps`` and its
    PSNR-Y is at or above x265's PSNR-Y at that same bitrate on x265's RD curve. Reports the
    best qualifying rung (highest PSNR-Y); otherwise the rung that came closest, with why.
    """

    def result(rung: Point | None, reference: float | None, reason: str | None) -> dict:
        return {
            "achieved": reason is None,
            "target_kbps": target_kbps,
            "kbps": None if rung is None else rung[0],
            "psnr_y": None if rung is None else rung[1],
            "x265_psnr_y_at_kbps": reference,
            "reason": reason,
        }

    rungs = sorted((float(k), float(p)) for k, p in candidate)
    under = [rung for rung in rungs if rung[0] <= target_kbps]
    if not under:
        lowest = rungs[0] if rungs else None
        reference = None if lowest is None else value_at_rate(x265, lowest[0])
        return result(lowest, reference, f"no rung at or below {target_kbps:g} kbps")
    compared = [(rung, value_at_rate(x265, rung[0])) for rung in under]
    compared = [(rung, ref) for rung, ref in compared if ref is not None]
    if not compared:
        nearest = under[-1]
        return result(
            nearest,
            None,
            f"x265 curve ({_span(x265)}) does not reach {nearest[0]:.1f} kbps",
        )
    qualifying = [(rung, ref) for rung, ref in compared if rung[1] >= ref]
    if qualifying:
        rung, ref = max(qualifying, key=lambda pair: pair[0][1])
        return result(rung, ref, None)
    rung, ref = max(compared, key=lambda pair: pair[0][1] - pair[1])
    return result(
        rung,
        ref,
        f"PSNR-Y {rung[1]:.2f} dB below x265's {ref:.2f} dB at {rung[0]:.1f} kbps",
    )


def hull_indices(points: Sequence[Point], *, log_rate: bool = False) -> list[int]:
    """Indices of the points on the upper-left convex hull, in increasing rate.

    See :func:`convex_hull`; indices let a caller say which configuration made each point.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    if log_rate:
        order = [i for i in order if points[i][0] > 0]
    pareto: list[int] = []
    for i in order:
        # upper-left: a point must beat every cheaper point's quality (ties go to the cheaper)
        if not pareto or points[i][1] > points[pareto[-1]][1]:
            pareto.append(i)

    def x(i: int) -> float:
        return math.log(points[i][0]) if log_rate else float(points[i][0])

    hull: list[int] = []
    for i in pareto:
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            rise_ab, rise_ai = points[b][1] - points[a][1], points[i][1] - points[a][1]
            cross = (x(b) - x(a)) * rise_ai - rise_ab * (x(i) - x(a))
            if cross < 0:  # b lies strictly above the chord from a to i: keep it
                break
            hull.pop()
        hull.append(i)
    return hull


def convex_hull(points: Sequence[Point], *, log_rate: bool = False) -> list[Point]:
    """The upper-left convex hull of (kbps, metric) points, in increasing rate.

    Where one program runs with several configurations, each gives an RD curve; the hull is
    the best trade-off any mix of them reaches: the points that no other point beats on both
    rate and quality (Pareto) and that lie on the upper concave envelope (mixing two
    configurations over time reaches every point of the chord between them). Rate is linear
    by default, as in operational rate-distortion theory; ``log_rate=True`` takes the
    envelope on log-rate, the axis BD-rate integrates over.
    """
    kept = hull_indices(points, log_rate=log_rate)
    return [(float(points[i][0]), float(points[i][1])) for i in kept]
