"""JSON twins of the pages, for tools; FastAPI documents them at ``/docs``.

Lists come from the store's summary queries (:mod:`codeclab.store.summary`): a page of ten,
counted by the database, never every record.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from codeclab.store.summary import CampaignProgress, ExperimentSummary, Overview
from codeclab.web.context import PAGE_SIZE, Dashboard, pages_for


class LeaderboardEntry(BaseModel):
    rank: int
    experiment_id: str
    program_name: str
    campaign_id: str | None
    iteration: int | None
    anchor: str
    bd_rate: float
    kbps: float | None
    psnr_y: float | None


def listed(summary: ExperimentSummary) -> dict[str, Any]:
    """An experiment as ``/api/experiments`` lists it."""
    return {
        "experiment_id": summary.experiment_id,
        "campaign_id": summary.campaign_id,
        "iteration": summary.iteration,
        "status": summary.status,
        "program_name": summary.program_name,
        "created_at": summary.created_at.isoformat(),
        **summary.headline(),
    }


def entries(summaries: list[ExperimentSummary]) -> list[LeaderboardEntry]:
    return [
        LeaderboardEntry(
            rank=n,
            experiment_id=s.experiment_id,
            program_name=s.program_name,
            campaign_id=s.campaign_id,
            iteration=s.iteration,
            anchor=s.leaderboard_anchor or "",
            bd_rate=s.leaderboard_bd_rate or 0.0,
            kbps=s.headline_kbps,
            psnr_y=s.headline_psnr_y,
        )
        for n, s in enumerate(summaries, start=1)
    ]


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter(prefix="/api")

    @routes.get("/experiments", summary="experiments, newest first, paginated")
    def api_list(
        status: str | None = None,
        campaign: str | None = None,
        page: int = Query(1, ge=1),
    ) -> dict[str, Any]:
        total, items = dash.newest(page, status, campaign)
        return {
            "page": page,
            "pages": pages_for(total),
            "page_size": PAGE_SIZE,
            "total": total,
            "experiments": [listed(s) for s in items],
        }

    @routes.get("/experiments/{experiment_id}", summary="the experiment record")
    def api_get(experiment_id: str) -> dict[str, Any]:
        return dash.get_record(experiment_id).model_dump(mode="json")

    @routes.get("/overview", summary="the overview's cards: counts, best BD-rates, LLM spend")
    def api_overview() -> Overview:
        return dash.store.overview()

    @routes.get(
        "/leaderboard",
        summary="successful experiments by leaderboard BD-rate (holdout clips, PSNR-Y), best first",
    )
    def api_leaderboard(limit: int = Query(10, ge=1, le=100)) -> list[LeaderboardEntry]:
        return entries(dash.store.leaderboard(limit))

    @routes.get(
        "/progress",
        summary="per campaign, each iteration's BD-rate vs x265, kbps and PSNR-Y (the charts)",
    )
    def api_progress(
        campaign: str | None = None, campaigns: int = Query(10, ge=1, le=100)
    ) -> list[CampaignProgress]:
        return dash.store.progress(campaign_id=campaign or None, campaigns=campaigns)

    return routes
