"""Pages for people: the overview and the blog (a post per experiment)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from codeclab.web.context import PAGE_SIZE, Dashboard, page_of


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter()

    @routes.get("/", response_class=HTMLResponse, summary="overview")
    def overview(request: Request) -> HTMLResponse:
        records = dash.newest_first()
        ok = [r for r in records if r.status == "ok"]
        best: dict[str, tuple[float, str] | None] = {}
        for encoder in ("x264", "x265"):
            values = [
                (bd.value, r.experiment_id)
                for r in ok
                if (bd := r.leaderboard_bd_rate(encoder)) is not None and bd.value is not None
            ]
            best[encoder] = min(values) if values else None
        context = {
            "count": len(records),
            "ok": len(ok),
            "success_rate": len(ok) / len(records) if records else None,
            "best": best,
            "latest": [dash.summary(r) for r in records[:PAGE_SIZE]],
        }
        return dash.templates.TemplateResponse(request, "overview.html", context)

    @routes.get("/blog", response_class=HTMLResponse, summary="a post per experiment")
    def blog(request: Request, page: int = Query(1, ge=1)) -> HTMLResponse:
        items, pages = page_of(dash.newest_first(), page)
        posts = [{**dash.summary(r), "links": dash.downloads(r)} for r in items]
        context = {"posts": posts, "page": page, "pages": pages}
        return dash.templates.TemplateResponse(request, "blog.html", context)

    return routes
