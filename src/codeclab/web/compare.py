"""Two runs side by side: ``/compare?a=ID&b=ID`` and its JSON twin ``/api/compare``.

What codec people do all day: B against A on every clip and metric. Per clip shared by both,
the two RD curves and the baselines, the BD-rate of B against A with the range it was
integrated over, the rungs side by side and the per-frame PSNR-Y of both; the page adds the
two reconstructions, played in sync or in a wipe. A baseline encoder (``a=x265``) can stand
in for A: then the BD-rate is the lab's standard-range figure against that encoder.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from jinja2.utils import htmlsafe_json_dumps
from pydantic import BaseModel, Field

from codeclab.evaluate import rd
from codeclab.evaluate.baselines import KNOWN_ENCODERS
from codeclab.evaluate.bdrate import clip_figures, describe_range, lossy
from codeclab.record import ClipInfo, ExperimentRecord
from codeclab.web.charts import RdPoint, RdSeries, baseline_series, experiment_series
from codeclab.web.context import Dashboard

METRICS = ("psnr_y", "psnr_yuv", "ssim_y", "ms_ssim_y", "vmaf")
UNITS = {"psnr_y": " dB", "psnr_yuv": " dB", "vmaf": ""}


class Side(BaseModel):
    """A or B: an experiment, or (A only) a baseline encoder."""

    role: Literal["a", "b"]
    kind: Literal["experiment", "baseline"]
    name: str = Field(description="the program's name, or the encoder's")
    experiment_id: str | None = None
    status: str | None = None
    video: str | None = Field(None, description="link to its published reconstruction")
    video_reason: str | None = Field(None, description="why there is no video")


class CompareBd(BaseModel):
    """BD-rate of B against A on one clip and metric, or None with the reason."""

    metric: str
    value: float | None
    reason: str | None = None
    integrated_over: str = Field(description="which range, in words")
    span: tuple[float, float] | None = Field(None, description="the range before clipping")
    clipped: tuple[float, float] | None = Field(
        None, description="the range integrated over: the span clipped to both curves"
    )


class RungPair(BaseModel):
    """The n-th rung of each side by rate (either may be missing: ladders differ)."""

    a: RdPoint | None
    b: RdPoint | None


class FrameLine(BaseModel):
    role: Literal["a", "b"]
    quality: int
    kbps: float
    psnr_y: list[float] = Field(description="per frame, from the first")


class CompareClip(BaseModel):
    clip: str
    clip_sha256: str
    split: str
    series: list[RdSeries] = Field(description="A, then B, then the baselines")
    bd_rate: list[CompareBd]
    rungs: list[RungPair]
    frames: list[FrameLine]


class Comparison(BaseModel):
    a: Side
    b: Side
    clips: list[CompareClip]
    note: str | None = Field(None, description="why some or all clips are not compared")


def _metric_points(rungs: list[Any], metric: str) -> list[rd.Point] | None:
    """(kbps, metric) of the lossy rungs; None when a rung lacks the metric."""
    kept = lossy(rungs)
    if any(getattr(r, metric) is None for r in kept):
        return None
    return [(r.kbps, getattr(r, metric)) for r in kept]


def _clipped(span: tuple[float, float], *curves: list[rd.Point]) -> tuple[float, float]:
    low = max([span[0], *(min(m for _, m in c) for c in curves if c)])
    high = min([span[1], *(max(m for _, m in c) for c in curves if c)])
    return low, high


def experiment_bd(a: list[Any], b: list[Any], metric: str) -> CompareBd:
    """B against A over A's span of ``metric`` (its lossy rungs), clipped to both curves."""
    over = f"A's {metric} span, clipped to where both curves exist"
    anchor, test = _metric_points(a, metric), _metric_points(b, metric)
    if anchor is None or test is None:
        return CompareBd(metric=metric, value=None, reason=f"no {metric}", integrated_over=over)
    span = rd.standard_range(anchor)
    if span is None:
        reason = "A has fewer than two lossy rungs"
        return CompareBd(metric=metric, value=None, reason=reason, integrated_over=over)
    value, reason = rd.bd_rate(anchor, test, metric_range=span)
    return CompareBd(
        metric=metric,
        value=value,
        reason=reason,
        integrated_over=over,
        span=span,
        clipped=_clipped(span, anchor, test) if value is not None else None,
    )


def baseline_bd(encoder: str, anchor: list[Any], b: list[Any], metric: str) -> CompareBd:
    """B against a baseline: the lab's standard-range figure (the encoder's standard CRFs)."""
    over = describe_range(encoder) + ", clipped to where both curves exist"
    if _metric_points(anchor, metric) is None or (test := _metric_points(b, metric)) is None:
        return CompareBd(metric=metric, value=None, reason=f"no {metric}", integrated_over=over)
    figure, _ = clip_figures(encoder, anchor, b, metric)
    return CompareBd(
        metric=metric,
        value=figure.value,
        reason=figure.reason,
        integrated_over=over,
        span=figure.span,
        clipped=_clipped(figure.span, test) if figure.value is not None and figure.span else None,
    )


def _frames(role: Literal["a", "b"], rungs: list[Any]) -> list[FrameLine]:
    return [
        FrameLine(role=role, quality=r.quality, kbps=r.kbps, psnr_y=[f.psnr_y for f in r.per_frame])
        for r in sorted(rungs, key=lambda r: r.quality)
    ]


def _anchor_curve(encoder: str, records: list[ExperimentRecord], clip: ClipInfo):
    for record in records:
        for curve in record.baselines.get(encoder, []):
            if curve.clip_sha256 == clip.sha256:
                return curve
    return None


def compare_clip(
    clip: ClipInfo, a: ExperimentRecord | str, b: ExperimentRecord
) -> CompareClip | None:
    """The figures of one clip B ran, against A there (None where A has no curve on it)."""
    mine = [r for r in b.results if r.clip_sha256 == clip.sha256]
    baselines = [c for curves in b.baselines.values() for c in curves]
    baselines = [c for c in baselines if c.clip_sha256 == clip.sha256]
    if isinstance(a, str):
        curve = _anchor_curve(a, [b], clip)
        if curve is None or not mine:
            return None
        theirs: list[Any] = list(curve.rungs)
        first = baseline_series(curve)
        bd = [baseline_bd(a, theirs, mine, m) for m in METRICS]
        baselines = [c for c in baselines if c.encoder != a]
        frames = _frames("b", mine)
    else:
        theirs = [r for r in a.results if r.clip_sha256 == clip.sha256]
        if not theirs or not mine:
            return None
        first = experiment_series(theirs, f"A: {a.program_name}")
        bd = [experiment_bd(theirs, mine, m) for m in METRICS]
        frames = _frames("a", theirs) + _frames("b", mine)
    series = [first, experiment_series(mine, f"B: {b.program_name}")]
    by_rate = zip_longest(
        sorted(series[0].points, key=lambda p: p.kbps),
        sorted(series[1].points, key=lambda p: p.kbps),
    )
    return CompareClip(
        clip=clip.name,
        clip_sha256=clip.sha256,
        split=clip.split,
        series=[*series, *(baseline_series(c) for c in baselines)],
        bd_rate=[x for x in bd if x.reason != f"no {x.metric}"],
        rungs=[RungPair(a=pa, b=pb) for pa, pb in by_rate],
        frames=frames,
    )


def compare(dash: Dashboard, a_id: str | None, b_id: str | None) -> Comparison:
    """The comparison of B against A; a 404 naming the id that is missing or unknown."""
    if not a_id or not b_id:
        raise HTTPException(404, "choose two experiments: /compare?a=ID&b=ID (A may be x264, ...)")
    b = dash.get_record(b_id)
    a: ExperimentRecord | str = a_id if a_id in KNOWN_ENCODERS else dash.get_record(a_id)
    compared = [x for clip in b.clips if (x := compare_clip(clip, a, b)) is not None]
    note = None
    if len(compared) < len(b.clips):
        what = f"{a}'s curve" if isinstance(a, str) else "A's rungs"
        missing = len(b.clips) - len(compared)
        note = f"{missing} of B's {len(b.clips)} clips lack {what} or B's rungs: not compared"
    return Comparison(a=_side(dash, "a", a), b=_side(dash, "b", b), clips=compared, note=note)


def _side(dash: Dashboard, role: Literal["a", "b"], run: ExperimentRecord | str) -> Side:
    if isinstance(run, str):
        reason = "the lab keeps no reconstruction of a baseline encode"
        return Side(role=role, kind="baseline", name=run, video_reason=reason)
    video = dash.downloads(run, ("reconstructed",), bitstreams=False)["reconstructed"]
    return Side(
        role=role,
        kind="experiment",
        name=run.program_name,
        experiment_id=run.experiment_id,
        status=run.status,
        video=video,
        video_reason=None if video else "no published reconstructed video",
    )


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter()

    @routes.get("/api/compare", summary="B against A: RD curves, BD-rate, rungs, frames")
    def api_compare(a: str | None = None, b: str | None = None) -> Comparison:
        return compare(dash, a, b)

    @routes.get("/compare", response_class=HTMLResponse, summary="B against A, for people")
    def compare_page(request: Request, a: str | None = None, b: str | None = None) -> Response:
        def render(revision: int) -> HTMLResponse:
            figures = compare(dash, a, b)
            # pydantic's own JSON, escaped for a <script> as Jinja's tojson does: a tenth of
            # the time of json.dumps over model_dump
            data = htmlsafe_json_dumps(figures, dumps=lambda f, **_: f.model_dump_json())
            context = {"c": figures, "data": data, "units": UNITS}
            return dash.templates.TemplateResponse(request, "compare.html", context)

        return dash.page(request, ("compare", a, b), render)

    return routes
