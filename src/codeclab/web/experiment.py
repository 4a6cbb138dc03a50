"""The experiment page: everything the lab knows about one experiment."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from codeclab.web.context import Dashboard


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter()

    @routes.get("/experiments/{experiment_id}", response_class=HTMLResponse)
    def experiment(request: Request, experiment_id: str) -> HTMLResponse:
        record = dash.get_record(experiment_id)
        context = {
            **dash.summary(record),
            "links": dash.downloads(record),
            "source": dash.store.source(record.program_sha256),
        }
        return dash.templates.TemplateResponse(request, "experiment.html", context)

    return routes
