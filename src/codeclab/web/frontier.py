"""The overview's RD frontier: per clip, the best rung at each rate over all experiments.

``/api/frontier``: for each clip, the upper-left convex hull (on log-rate, the axis BD-rate
integrates over) of every rung of the experiments on the leaderboard, each point naming the
experiment and quality that made it, against the baselines of the newest of them. One
store query, kept while the count of experiments stays the same.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeclab.evaluate.rd import LOSSLESS_PSNR_DB, hull_indices
from codeclab.web.charts import RdSeries, baseline_series
from codeclab.web.context import Dashboard


class FrontierPoint(BaseModel):
    kbps: float
    psnr_y: float
    quality: int
    experiment_id: str
    program_name: str


class FrontierClip(BaseModel):
    clip: str
    clip_sha256: str
    experiments: int = Field(description="how many experiments have rungs on this clip")
    frontier: list[FrontierPoint] = Field(description="by rate")
    baselines: list[RdSeries]


def frontier(dash: Dashboard) -> list[FrontierClip]:
    """Per clip (by content), the hull of every ranked rung, newest experiments' clips first."""
    by_clip: dict[str, list[dict]] = {}
    for rung in dash.store.ranked_rungs():
        if rung["psnr_y"] < LOSSLESS_PSNR_DB:  # near-lossless rungs sit on no lossy curve
            by_clip.setdefault(rung["clip_sha256"], []).append(rung)
    clips = []
    for sha256, rungs in by_clip.items():
        kept = hull_indices([(r["kbps"], r["psnr_y"]) for r in rungs], log_rate=True)
        newest = dash.store.get(rungs[0]["experiment_id"])  # rungs come newest first
        curves = [c for cs in newest.baselines.values() for c in cs] if newest else []
        clips.append(
            FrontierClip(
                clip=rungs[0]["clip"],
                clip_sha256=sha256,
                experiments=len({r["experiment_id"] for r in rungs}),
                frontier=[FrontierPoint.model_validate(rungs[i]) for i in kept],
                baselines=[baseline_series(c) for c in curves if c.clip_sha256 == sha256],
            )
        )
    return clips


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter()

    @routes.get(
        "/api/frontier",
        summary="per clip, the best rung at each rate over all ranked experiments (the hull)",
    )
    def api_frontier() -> list[FrontierClip]:
        return dash.memo.get("frontier", dash.count(), lambda: frontier(dash))

    return routes
