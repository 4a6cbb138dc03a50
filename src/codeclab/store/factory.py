"""Open the stores the settings name.

The experiment store, by URL: SQLite or PostgreSQL (SQLAlchemy), or DynamoDB:

- ``sqlite:///path/codeclab.db`` (the default, in the data directory)
- ``postgresql+psycopg://user:password@host:5432/codeclab``
- ``dynamodb://TABLE_PREFIX?region=eu-west-1`` (needs boto3)

The artifact store: S3 with ``artifacts_url``, else the data directory's ``artifacts/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeclab.config import Settings
from codeclab.store import links
from codeclab.store.artifacts import ArtifactStore, Journal, LocalArtifactStore, journal_dir
from codeclab.store.db import ExperimentStore, StoreError


def open_experiment_store(url: str, *, outbox_dir: Path | str | None = None) -> Any:
    """The store for ``url``; every kind has the methods of :class:`ExperimentStore`.

    ``outbox_dir`` is where the store keeps experiments it could not write (by default
    ``outbox/`` beside a SQLite file, else ``$CODECLAB_HOME/outbox``).
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "dynamodb":
        try:
            from codeclab.store.dynamo import DynamoStore
        except ImportError as exc:
            raise StoreError(f"the DynamoDB store is not available: {exc}") from exc
        return DynamoStore.from_url(url, outbox_dir=outbox_dir)
    backend = scheme.partition("+")[0]
    if backend in ("sqlite", "postgresql", "postgres"):
        # plain postgres:// or postgresql:// (as hosting services print them): use psycopg 3,
        # the driver codeclab installs, not SQLAlchemy's default psycopg2
        if scheme in ("postgres", "postgresql"):
            url = "postgresql+psycopg" + url[len(scheme) :]
        return ExperimentStore(url, outbox_dir=outbox_dir)
    raise StoreError(
        f"unknown experiment store URL scheme {scheme!r}: use sqlite:///PATH, "
        "postgresql+psycopg://USER:PASSWORD@HOST/DB or dynamodb://TABLE_PREFIX?region=REGION"
    )


def open_artifact_store(settings: Settings) -> ArtifactStore:
    """The store ``settings`` name: S3 with ``artifacts_url = s3://...``, else the home's dir."""
    secret = settings.link_secret.get_secret_value() if settings.link_secret else None
    journal = Journal(journal_dir(settings.home))  # what a sweep after a kill reads
    if settings.artifacts_url:
        from codeclab.store.s3 import S3ArtifactStore  # boto3: only for an S3 store

        store = S3ArtifactStore(
            settings.artifacts_url,
            endpoint_url=settings.s3_endpoint_url,
            link_ttl=settings.link_ttl,
        )
        store.journal = journal
        return store
    return LocalArtifactStore(
        settings.artifacts_dir,
        secret=links.load_secret(settings.home, secret) if secret else None,
        link_ttl=settings.link_ttl,
        journal=journal,
    )
