"""The data of the experiment page's charts, as JSON twins, and the chart library itself.

``/api/experiments/{id}/rd``: per clip, this experiment's RD points and each baseline's;
``/api/experiments/{id}/frames``: per rung, the metrics of every frame. Plotly's JavaScript
is served from the installed ``plotly`` package, never from a CDN.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from codeclab.record import BaselineCurve, ExperimentRecord, FrameMetrics, Rung, RungResult
from codeclab.web.context import Dashboard

PLOTLY = files("plotly") / "package_data" / "plotly.min.js"


class RdPoint(BaseModel):
    """One encode: its rate and the scores of its decode (averages over the clip's frames)."""

    quality: int | None = Field(None, description="this program's quality setting")
    crf: int | None = Field(None, description="a baseline encoder's CRF")
    kbps: float
    psnr_y: float
    psnr_yuv: float
    ssim_y: float
    ms_ssim_y: float | None = None
    vmaf: float | None = None


class RdSeries(BaseModel):
    name: str
    kind: Literal["experiment", "baseline"]
    settings: dict[str, Any] = Field(default_factory=dict, description="a baseline's settings")
    points: list[RdPoint] = Field(description="sorted by rate")


class RdRange(BaseModel):
    """Where a BD-rate against a baseline was integrated on a clip (the plots shade it)."""

    encoder: str
    metric: str
    low: float
    high: float
    integrated_over: str | None = None


class RdClip(BaseModel):
    clip: str
    clip_sha256: str
    split: str
    series: list[RdSeries]
    ranges: list[RdRange] = Field(default_factory=list)


class RdCurves(BaseModel):
    experiment_id: str
    clips: list[RdClip]


class FrameRow(FrameMetrics):
    index: int = Field(description="frame index, counting from 0")


class FrameRung(BaseModel):
    clip: str
    clip_sha256: str
    quality: int
    count: int = Field(description="frames in the rung (``frames`` is empty in old records)")
    width: int
    height: int
    kbps: float
    decoded_sha256: str
    images: str = Field(
        description="URL template of the rung's frame pictures: fill in {index} (from 0) and "
        "{kind} (source, decoded or heatmap)"
    )
    frames: list[FrameRow]


class FrameSeries(BaseModel):
    experiment_id: str
    rungs: list[FrameRung]


MEASURED = tuple(name for name in RdPoint.model_fields if name not in ("quality", "crf"))


def _point(rung: Rung, **setting: int) -> RdPoint:
    return RdPoint(**{name: getattr(rung, name) for name in MEASURED}, **setting)


def experiment_series(rungs: list[RungResult], name: str) -> RdSeries:
    ordered = sorted(rungs, key=lambda r: r.kbps)
    return RdSeries(
        name=name, kind="experiment", points=[_point(r, quality=r.quality) for r in ordered]
    )


def baseline_series(curve: BaselineCurve) -> RdSeries:
    return RdSeries(
        name=f"{curve.encoder} ({curve.version})",
        kind="baseline",
        settings=curve.settings,
        points=[_point(r, crf=r.crf) for r in sorted(curve.rungs, key=lambda r: r.kbps)],
    )


def bd_ranges(record: ExperimentRecord, clip: str) -> list[RdRange]:
    """The range each BD-rate of ``record`` was integrated over on ``clip`` (train or holdout
    figure first, else the all-clips one), per baseline and metric."""
    found: dict[tuple[str, str], RdRange] = {}
    for table in (record.bd_rate_train, record.bd_rate_holdout, record.bd_rate):
        for encoder, by_metric in table.items():
            for metric, bd in by_metric.items():
                span = bd.spans.get(clip)
                if span is not None and (encoder, metric) not in found:
                    found[encoder, metric] = RdRange(
                        encoder=encoder,
                        metric=metric,
                        low=span[0],
                        high=span[1],
                        integrated_over=bd.integrated_over,
                    )
    return list(found.values())


def rd_curves(record: ExperimentRecord) -> RdCurves:
    clips = []
    for clip in record.clips:
        mine = [r for r in record.results if r.clip_sha256 == clip.sha256]
        series = [experiment_series(mine, "this experiment")]
        for curves in record.baselines.values():
            series += [baseline_series(c) for c in curves if c.clip_sha256 == clip.sha256]
        clips.append(
            RdClip(
                clip=clip.name,
                clip_sha256=clip.sha256,
                split=clip.split,
                series=series,
                ranges=bd_ranges(record, clip.name),
            )
        )
    return RdCurves(experiment_id=record.experiment_id, clips=clips)


def frame_order(results: list[RungResult]) -> list[RungResult]:
    """The rungs in the frames API's order: by clip, then quality."""
    return sorted(results, key=lambda r: (r.clip, r.quality))


def frame_rung(experiment_id: str, r: RungResult) -> FrameRung:
    """One rung's frames and the URL template of its pictures."""
    base = f"/experiments/{experiment_id}/frames"
    return FrameRung(
        clip=r.clip,
        clip_sha256=r.clip_sha256,
        quality=r.quality,
        count=r.frames,
        width=r.width,
        height=r.height,
        kbps=r.kbps,
        decoded_sha256=r.decoded_sha256,
        images=f"{base}/{quote(r.clip, safe='')}/{r.quality}/{{index}}/{{kind}}.png",
        frames=[FrameRow(index=n, **f.model_dump()) for n, f in enumerate(r.per_frame)],
    )


def frame_series(record: ExperimentRecord) -> FrameSeries:
    rungs = [frame_rung(record.experiment_id, r) for r in frame_order(record.results)]
    return FrameSeries(experiment_id=record.experiment_id, rungs=rungs)


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter()

    @routes.get("/api/experiments/{experiment_id}/rd", summary="RD curves against the baselines")
    def api_rd(experiment_id: str) -> RdCurves:
        return rd_curves(dash.get_record(experiment_id))

    @routes.get("/api/experiments/{experiment_id}/frames", summary="per-frame metrics per rung")
    def api_frames(experiment_id: str) -> FrameSeries:
        return frame_series(dash.get_record(experiment_id))

    @routes.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        headers = {"Cache-Control": "public, max-age=86400"}
        return FileResponse(str(PLOTLY), media_type="text/javascript", headers=headers)

    return routes
