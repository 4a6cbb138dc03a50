"""JSON twins of the pages, for tools; FastAPI documents them at ``/docs``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from codeclab.web.context import PAGE_SIZE, Dashboard, page_of


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter(prefix="/api")

    @routes.get("/experiments", summary="experiments, newest first, paginated")
    def api_list(
        status: str | None = None,
        campaign: str | None = None,
        page: int = Query(1, ge=1),
    ) -> dict[str, Any]:
        records = dash.newest_first(status, campaign)
        items, pages = page_of(records, page)
        return {
            "page": page,
            "pages": pages,
            "page_size": PAGE_SIZE,
            "total": len(records),
            "experiments": [
                {
                    "experiment_id": r.experiment_id,
                    "campaign_id": r.campaign_id,
                    "iteration": r.iteration,
                    "status": r.status,
                    "program_name": r.program_name,
                    "created_at": r.created_at.isoformat(),
                    **r.headline(),
                }
                for r in items
            ],
        }

    @routes.get("/experiments/{experiment_id}", summary="the experiment record")
    def api_get(experiment_id: str) -> dict[str, Any]:
        return dash.get_record(experiment_id).model_dump(mode="json")

    return routes
