"""Rate-distortion analysis: BD-rate, a curve's quality at a bitrate, and the target check.

Curves are sequences of ``(kbps, metric)`` points, one per rung. BD-rate follows Bjontegaard
on log-rate with Akima interpolation, the ``bjontegaard`` package's method (computed by
:mod:`codeclab.evaluate.akima`, which the tests hold to the package's figures); where two
curves do not share enough quality range to integrate over, the answer is ``None`` with the
reason rather than an extrapolated number (DESIGN.md section 4).

Two ranges are used. The headline figure integrates over the *standard range*: the span the
anchor covers at its standard CRFs (22, 27, 32 and 37 for x264 and x265), as codec papers and
the JVET/AOM common test conditions do, so that a wide ladder cannot move the figure. The
*wide* figure integrates over wherever the two curves overlap and is shown beside it,
labelled. Near-lossless rungs (:data:`LOSSLESS_PSNR_DB`) never sit on a lossy curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from codeclab.evaluate import akima

Point = tuple[float, float]

BD_METHOD = "akima"
"""Interpolation of log-rate over the metric used by :func:`bd_rate`."""

MIN_METRIC_OVERLAP = 0.2
"""Shared metric range two curves need, as a fraction of the narrower curve's range."""

MIN_STANDARD_COVER = 0.5
"""Part of the standard range both curves must cover for a standard-range BD-rate."""

LOSSLESS_PSNR_DB = 60.0
"""A rung at or above this PSNR-Y is lossless or near-lossless (a mean squared error under
0.065: fewer than one pixel in 15 off by one level) and stays off lossy RD curves, for
candidates and baselines alike: two such points draw a line up to the 100 dB of an identical
picture and hand out credit no codec earned."""


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
    anchor: Sequence[Point],
    test: Sequence[Point],
    *,
    min_points: int = 2,
    metric_range: tuple[float, float] | None = None,
) -> tuple[float | None, str | None]:
    """Bjontegaard delta rate of ``test`` against ``anchor`` in percent, or (None, reason).

    Negative means ``test`` needs fewer bits than ``anchor`` for the same quality. Log-rate
    is interpolated over the metric with Akima splines (:data:`BD_METHOD`; two-point curves
    are linear) and integrated over the metric range both curves cover. Each curve's metric
    must increase strictly with rate, and the shared range must be at least
    :data:`MIN_METRIC_OVERLAP` of the narrower curve's range.

    With ``metric_range=(lo, hi)`` (the standard range, :func:`standard_range`) the integral
    runs over that range clipped to where both curves exist, which must be at least
    :data:`MIN_STANDARD_COVER` of it.
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
    metric_a, metric_t = curves["anchor"][1], curves["test"][1]
    if metric_range is not None:
        return _bd_rate_over(curves, metric_range)
    shared = min(metric_a[-1], metric_t[-1]) - max(metric_a[0], metric_t[0])
    narrower = min(metric_a[-1] - metric_a[0], metric_t[-1] - metric_t[0])
    if shared < MIN_METRIC_OVERLAP * narrower:
        return None, (
            f"metric ranges overlap too little: anchor {metric_a[0]:.3f}..{metric_a[-1]:.3f}, "
            f"test {metric_t[0]:.3f}..{metric_t[-1]:.3f} (need {MIN_METRIC_OVERLAP:.0%} "
            "of the narrower range)"
        )
    return _integrated(curves, max(metric_a[0], metric_t[0]), min(metric_a[-1], metric_t[-1]))


def _bd_rate_over(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], metric_range: tuple[float, float]
) -> tuple[float | None, str | None]:
    """BD-rate integrated over ``metric_range`` clipped to both curves (the package's own
    interpolators, integrated over our interval instead of the whole overlap)."""
    metric_a, metric_t = curves["anchor"][1], curves["test"][1]
    low, high = metric_range
    if not high > low:
        return None, f"empty standard range {low:.3f}..{high:.3f}"
    start = max(low, metric_a[0], metric_t[0])
    end = min(high, metric_a[-1], metric_t[-1])
    if end - start < MIN_STANDARD_COVER * (high - low):
        return None, (
            f"the curves cover too little of the standard range {low:.3f}..{high:.3f}: "
            f"anchor {metric_a[0]:.3f}..{metric_a[-1]:.3f}, test {metric_t[0]:.3f}.."
            f"{metric_t[-1]:.3f} (need {MIN_STANDARD_COVER:.0%} of it)"
        )
    return _integrated(curves, start, end)


def _integrated(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], start: float, end: float
) -> tuple[float | None, str | None]:
    """The mean log-rate gap between the curves over ``start..end`` of the metric, in
    percent: the package's Akima splines on log10-rate, integrated over our interval (the
    package itself integrates over the whole overlap only) by :mod:`codeclab.evaluate.akima`,
    which builds them as scipy does in a tenth of the time."""
    (rate_a, metric_a), (rate_t, metric_t) = curves["anchor"], curves["test"]
    gap = akima.integral(metric_t.tolist(), np.log10(rate_t).tolist(), start, end) - (
        akima.integral(metric_a.tolist(), np.log10(rate_a).tolist(), start, end)
    )
    mean_log10 = gap / (end - start)
    value = (10.0 ** float(mean_log10) - 1.0) * 100.0
    if not math.isfinite(value):
        return None, f"BD-rate is not finite ({value})"
    return value, None


def standard_range(points: Sequence[Point]) -> tuple[float, float] | None:
    """The metric span of an anchor's standard rungs (lowest to highest), None without two."""
    metrics = [float(metric) for _, metric in points]
    if len(metrics) < 2 or not all(math.isfinite(m) for m in metrics):
        return None
    return min(metrics), max(metrics)


def around(points: Sequence[Point], metric_range: tuple[float, float]) -> list[Point]:
    """The points a standard-range BD-rate needs: those inside the range and the nearest one
    beyond each end, so rungs far outside (added to span another anchor's range, or a wide
    ladder) do not bend the spline inside it."""
    ordered = sorted(points, key=lambda p: p[1])
    low, high = metric_range
    below = [p for p in ordered if p[1] < low][-1:]
    above = [p for p in ordered if p[1] > high][:1]
    return below + [p for p in ordered if low <= p[1] <= high] + above


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
