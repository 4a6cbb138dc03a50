"""The dashboard application: ``create_app(settings)`` returns a FastAPI app.

Pages: ``/`` (overview), ``/blog`` (a post per experiment), ``/experiments/{id}``; JSON:
``/api/experiments`` and ``/api/experiments/{id}``; ``/artifacts/{key}`` serves local
artifacts behind HMAC-signed, expiring links (S3 stores get presigned URLs instead).
Everything that came from a program or a model is escaped (Jinja2 autoescape).

Data is read with ``store.list()`` per request: simple, but it loads every record; a store
query with filters, ordering and limits is needed before campaigns grow large.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from codeclab.config import Settings
from codeclab.record import ExperimentRecord
from codeclab.store import links
from codeclab.store.artifacts import ArtifactError, LocalArtifactStore, open_artifact_store
from codeclab.store.factory import open_experiment_store

HERE = Path(__file__).parent
PAGE_SIZE = 10
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".py": "text/x-python",
    ".zip": "application/zip",
}


def better_worse(value: float | None) -> str:
    """A BD-rate in words: negative means fewer bits than the baseline for the same quality."""
    if value is None:
        return ""
    if value < 0:
        return "better"
    if value > 0:
        return "worse"
    return "equal"


def fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:{spec}}{suffix}"


def create_app(settings: Settings) -> FastAPI:
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_experiment_store(settings.db_url, outbox_dir=settings.outbox_dir)
    artifacts = open_artifact_store(settings)
    secret: bytes | None = None
    if isinstance(artifacts, LocalArtifactStore):
        configured = settings.link_secret.get_secret_value() if settings.link_secret else None
        # the secret LocalArtifactStore.link signs with: configured, else home's link-secret
        secret = links.load_secret(artifacts.root.parent, configured)
        artifacts._secret = secret

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.globals.update(fmt=fmt, better_worse=better_worse)
    templates = Jinja2Templates(env=env)

    app = FastAPI(
        title="codeclab dashboard",
        description="Experiments of the codec lab: pages for people, JSON for tools.",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def newest_first(status: str | None = None, campaign: str | None = None) -> list:
        records = store.list(campaign_id=campaign or None)
        if status:
            records = [r for r in records if r.status == status]
        records.reverse()
        return records

    def get_record(experiment_id: str) -> ExperimentRecord:
        record = store.get(experiment_id)
        if record is None:
            raise HTTPException(404, f"no experiment {experiment_id!r}")
        return record

    def key_for(record: ExperimentRecord, kind: str) -> str | None:
        """The store key of an artifact of ``record`` (``None`` when it was not published)."""
        location = getattr(record.artifacts, kind)
        if location:
            try:
                return artifacts.key_of(location)
            except (ArtifactError, ValueError):
                return None
        if kind == "program":
            return f"programs/{record.program_sha256}.py"
        return None

    def link_for(key: str | None) -> str | None:
        if key is None:
            return None
        try:
            if not artifacts.exists(key):
                return None
            return artifacts.link(key)
        except (ArtifactError, links.LinkError):
            return None

    def downloads(record: ExperimentRecord) -> dict[str, Any]:
        found = {
            kind: link_for(key_for(record, kind))
            for kind in ("reconstructed", "decoder", "package", "program")
        }
        bitstreams = []
        for location in record.artifacts.bitstreams:
            try:
                key = artifacts.key_of(location)
            except (ArtifactError, ValueError):
                continue
            bitstreams.append((key.rsplit("/", 1)[-1], link_for(key)))
        found["bitstreams"] = bitstreams
        found["expires"] = datetime.fromtimestamp(time.time() + settings.link_ttl, UTC)
        return found

    def summary(record: ExperimentRecord) -> dict[str, Any]:
        return {"record": record, "head": record.headline()}

    def page_of(items: list, page: int) -> tuple[list, int]:
        pages = max(1, math.ceil(len(items) / PAGE_SIZE))
        return items[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], pages

    @app.get("/", response_class=HTMLResponse, summary="overview")
    def overview(request: Request) -> HTMLResponse:
        records = newest_first()
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
            "latest": [summary(r) for r in records[:PAGE_SIZE]],
        }
        return templates.TemplateResponse(request, "overview.html", context)

    @app.get("/blog", response_class=HTMLResponse, summary="a post per experiment")
    def blog(request: Request, page: int = Query(1, ge=1)) -> HTMLResponse:
        items, pages = page_of(newest_first(), page)
        posts = [{**summary(r), "links": downloads(r)} for r in items]
        context = {"posts": posts, "page": page, "pages": pages}
        return templates.TemplateResponse(request, "blog.html", context)

    @app.get("/experiments/{experiment_id}", response_class=HTMLResponse)
    def experiment(request: Request, experiment_id: str) -> HTMLResponse:
        record = get_record(experiment_id)
        context = {
            **summary(record),
            "links": downloads(record),
            "source": store.source(record.program_sha256),
        }
        return templates.TemplateResponse(request, "experiment.html", context)

    @app.get("/artifacts/{key:path}", summary="a local artifact behind a signed link")
    def artifact(key: str, expires: str = "", sig: str = "") -> FileResponse:
        if secret is None or not isinstance(artifacts, LocalArtifactStore):
            raise HTTPException(404, "artifacts are served by the S3 store's presigned URLs")
        try:
            links.verify(key, expires, sig, secret)
            path = artifacts.path(key)
        except (links.LinkError, ArtifactError) as exc:
            raise HTTPException(403, str(exc)) from None
        if not path.is_file():
            raise HTTPException(404, f"no artifact {key}")
        media_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        return FileResponse(path, media_type=media_type, filename=path.name)

    @app.get("/api/experiments", summary="experiments, newest first, paginated")
    def api_list(
        status: str | None = None,
        campaign: str | None = None,
        page: int = Query(1, ge=1),
    ) -> dict[str, Any]:
        records = newest_first(status, campaign)
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

    @app.get("/api/experiments/{experiment_id}", summary="the experiment record")
    def api_get(experiment_id: str) -> dict[str, Any]:
        return get_record(experiment_id).model_dump(mode="json")

    return app
