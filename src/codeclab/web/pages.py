"""Pages for people: the overview and the blog (a post per experiment).

Both read the store's summaries (counts, rankings and one page of ten), never every record,
and keep what they read, and the page they render, while the count of experiments stays the
same (:class:`Memo`, :class:`PageCache`); the overview's charts draw ``/api/progress`` in
the browser.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from codeclab.store.summary import BASELINE_ENCODERS
from codeclab.web.api import entries
from codeclab.web.context import Dashboard, pages_for

SHOWN_BASELINES = ("x264", "x265", "svtav1")  # always a card; others when they have a value
LEADERBOARD_SIZE = 10
POST_DOWNLOADS = ("reconstructed", "decoder", "package")  # what a blog post links to


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter()

    def figures() -> dict[str, Any]:
        cards = dash.store.overview()
        ok = cards.by_status.get("ok", 0)
        return {
            "cards": cards,
            "ok": ok,
            "success_rate": ok / cards.total if cards.total else None,
            "baselines": [
                e
                for e in BASELINE_ENCODERS
                if e in SHOWN_BASELINES or cards.best_bd_rate.get(e) is not None
            ],
            "leaders": entries(dash.store.leaderboard(LEADERBOARD_SIZE)),
            "latest": [dash.summary(s) for s in dash.newest()[1]],
        }

    def posts(page: int) -> dict[str, Any]:
        total, items = dash.newest(page)
        return {
            "posts": [
                {**dash.summary(s), "links": dash.downloads(s, POST_DOWNLOADS, bitstreams=False)}
                for s in items
            ],
            "page": page,
            "pages": pages_for(total),
        }

    @routes.get("/", response_class=HTMLResponse, summary="overview")
    def overview(request: Request) -> Response:
        campaign = dash.campaigns.state()  # not in the store: part of the page's key

        def render(revision: int) -> Response:
            context = {
                **dash.memo.get("overview", revision, figures),
                "campaign": campaign,
                "actions": dash.settings.admin_token is not None,
            }
            return dash.templates.TemplateResponse(request, "overview.html", context)

        return dash.page(request, ("overview", campaign.model_dump_json()), render)

    @routes.get("/blog", response_class=HTMLResponse, summary="a post per experiment")
    def blog(request: Request, page: int = Query(1, ge=1)) -> Response:
        def render(revision: int) -> Response:
            context = dash.memo.get(("blog", page), revision, lambda: posts(page))
            return dash.templates.TemplateResponse(request, "blog.html", context)

        return dash.page(request, ("blog", page), render)

    return routes
