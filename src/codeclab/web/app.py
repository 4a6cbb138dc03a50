"""The dashboard application: ``create_app(settings)`` returns a FastAPI app.

One :class:`Dashboard` holds what every route needs (stores, templates, link signing); each
module of this package adds its routes to the app from it: ``pages`` (overview, blog),
``experiment`` (the experiment page), ``api`` (JSON twins), ``files`` (signed artifacts).
Everything that came from a program or a model is escaped (Jinja2 autoescape).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from codeclab.config import Settings, load_settings
from codeclab.errors import one_line
from codeclab.store.db import StoreError
from codeclab.web import (
    actions,
    api,
    charts,
    compare,
    experiment,
    files,
    frontier,
    pages,
    visuals,
)
from codeclab.web.context import Dashboard

HERE = Path(__file__).parent
ROUTES = (pages, experiment, compare, visuals, charts, frontier, api, actions, files)
JSON_PREFIXES = ("/api/", "/artifacts/", "/vendor/", "/static/")
THREADS = 4
"""Routes (plain ``def``) that run at once in a server process. Their work is Python, which
holds the GIL: with starlette's default of 40 threads each waited its turn and the switching
cost CPU (at 20 clients, the experiment page took 14 ms of CPU a request, and 5.5 to 6 ms
with 2 or 4 threads). A few threads still overlap what waits (a remote store, files)."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The thread limit; and the objects the process holds once started (modules, the app,
    SQLAlchemy's and Pydantic's machinery: some 165,000) frozen out of the garbage
    collector's sight: each full collection walked them all, 150 to 190 ms in which the
    process answered nothing, every few hundred comparisons (whose figures make many
    short-lived objects)."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # another app of this process (a test's) may be collected again


def create_app(settings: Settings) -> FastAPI:
    dash = Dashboard.open(settings)
    app = FastAPI(
        lifespan=lifespan,
        title="codeclab dashboard",
        description="Experiments of the codec lab: pages for people, JSON for tools.",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in ROUTES:
        app.include_router(module.router(dash))

    @app.exception_handler(HTTPException)
    async def not_found_page(request: Request, exc: HTTPException) -> Response:
        """A page a person can read for a missing page or experiment; JSON for tools."""
        if exc.status_code != 404 or request.url.path.startswith(JSON_PREFIXES):
            return await http_exception_handler(request, exc)
        context = {"detail": exc.detail, "path": request.url.path}
        return dash.templates.TemplateResponse(request, "notfound.html", context, status_code=404)

    @app.exception_handler(StoreError)
    async def store_down_page(request: Request, exc: StoreError) -> Response:
        """The experiment store cannot answer (a database restart, say): 503 with the reason
        in one line, and for people the campaign's state, which lives outside the store (a
        campaign waiting for it says since when)."""
        reason = one_line(exc)
        if request.url.path.startswith(JSON_PREFIXES):
            return JSONResponse({"detail": reason}, status_code=503)
        context = {"reason": reason, "campaign": dash.campaigns.state()}
        return dash.templates.TemplateResponse(
            request, "unavailable.html", context, status_code=503
        )

    return app


def from_configuration() -> FastAPI:
    """The app from codeclab.toml and CODECLAB_* variables: the factory of each process of
    ``codeclab serve --workers N``."""
    return create_app(load_settings())
