"""The dashboard application: ``create_app(settings)`` returns a FastAPI app.

One :class:`Dashboard` holds what every route needs (stores, templates, link signing); each
module of this package adds its routes to the app from it: ``pages`` (overview, blog),
``experiment`` (the experiment page), ``api`` (JSON twins), ``files`` (signed artifacts).
Everything that came from a program or a model is escaped (Jinja2 autoescape).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from codeclab.config import Settings, load_settings
from codeclab.web import actions, api, charts, experiment, files, pages, visuals
from codeclab.web.context import Dashboard

HERE = Path(__file__).parent
ROUTES = (pages, experiment, visuals, charts, api, actions, files)


def create_app(settings: Settings) -> FastAPI:
    dash = Dashboard.open(settings)
    app = FastAPI(
        title="codeclab dashboard",
        description="Experiments of the codec lab: pages for people, JSON for tools.",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in ROUTES:
        app.include_router(module.router(dash))
    return app


def from_configuration() -> FastAPI:
    """The app from codeclab.toml and CODECLAB_* variables: the factory of each process of
    ``codeclab serve --workers N``."""
    return create_app(load_settings())
