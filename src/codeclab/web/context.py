"""What every dashboard route shares: the stores, the templates and artifact links."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from codeclab.config import Settings
from codeclab.record import ExperimentRecord
from codeclab.store import links
from codeclab.store.artifacts import (
    ArtifactError,
    ArtifactStore,
    LocalArtifactStore,
    open_artifact_store,
)
from codeclab.store.db import ExperimentStore
from codeclab.store.factory import open_experiment_store

HERE = Path(__file__).parent
PAGE_SIZE = 10


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


def page_of(items: list, page: int) -> tuple[list, int]:
    pages = max(1, math.ceil(len(items) / PAGE_SIZE))
    return items[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], pages


@dataclass
class Dashboard:
    settings: Settings
    store: ExperimentStore
    artifacts: ArtifactStore
    templates: Jinja2Templates
    secret: bytes | None  # the HMAC key of local links; None with S3 (presigned URLs)

    @classmethod
    def open(cls, settings: Settings) -> Dashboard:
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
        return cls(settings, store, artifacts, Jinja2Templates(env=env), secret)

    def newest_first(self, status: str | None = None, campaign: str | None = None) -> list:
        records = self.store.list(campaign_id=campaign or None)
        if status:
            records = [r for r in records if r.status == status]
        records.reverse()
        return records

    def get_record(self, experiment_id: str) -> ExperimentRecord:
        record = self.store.get(experiment_id)
        if record is None:
            raise HTTPException(404, f"no experiment {experiment_id!r}")
        return record

    def key_for(self, record: ExperimentRecord, kind: str) -> str | None:
        """The store key of an artifact of ``record`` (``None`` when it was not published)."""
        location = getattr(record.artifacts, kind)
        if location:
            try:
                return self.artifacts.key_of(location)
            except (ArtifactError, ValueError):
                return None
        if kind == "program":
            return f"programs/{record.program_sha256}.py"
        return None

    def link_for(self, key: str | None) -> str | None:
        if key is None:
            return None
        try:
            if not self.artifacts.exists(key):
                return None
            return self.artifacts.link(key)
        except (ArtifactError, links.LinkError):
            return None

    def downloads(self, record: ExperimentRecord) -> dict[str, Any]:
        found: dict[str, Any] = {
            kind: self.link_for(self.key_for(record, kind))
            for kind in ("reconstructed", "decoder", "package", "program")
        }
        bitstreams = []
        for location in record.artifacts.bitstreams:
            try:
                key = self.artifacts.key_of(location)
            except (ArtifactError, ValueError):
                continue
            bitstreams.append((key.rsplit("/", 1)[-1], self.link_for(key)))
        found["bitstreams"] = bitstreams
        found["expires"] = datetime.fromtimestamp(time.time() + self.settings.link_ttl, UTC)
        return found

    @staticmethod
    def summary(record: ExperimentRecord) -> dict[str, Any]:
        return {"record": record, "head": record.headline()}
