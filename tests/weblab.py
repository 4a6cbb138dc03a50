"""A dashboard over a store filled by a real campaign, served by uvicorn on 127.0.0.1.

Shared by the dashboard's HTTP, action and browser tests (see the ``lab`` fixture in
``conftest.py``): one real two-iteration campaign, a hostile record and filler records.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from codeclab.campaign import run_campaign
from codeclab.cli import load_clips, open_stores
from codeclab.config import Settings
from codeclab.record import Reasoning, utcnow
from codeclab.web.app import create_app

EVIL = "<script>alert(1)</script>"
FILLER = 9


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The dashboard for ``settings`` on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def fill_lab(home: Path, clip: Path, **overrides) -> dict:
    """A store with a real two-iteration campaign, one hostile record and older filler."""
    settings = Settings(
        clips=[clip],
        iterations=2,
        qualities=[30, 70],
        baselines=["x265"],
        home=home,
        **overrides,
    )
    store, artifacts = open_stores(settings)
    result = run_campaign(settings, load_clips(settings), store, artifacts)
    records = result.experiments
    assert len(records) == 2
    first = records[0]
    source = f"# {EVIL}\n" + (store.source(first.program_sha256) or "")
    evil = first.model_copy(
        update={
            "program_sha256": hashlib.sha256(source.encode()).hexdigest(),
            "experiment_id": "evil0000-0000-0000-0000-000000000000",
            "iteration": 99,
            "status": "failed",
            "program_name": f"evil {EVIL}",
            "reasoning": Reasoning(text=f"because {EVIL}", hypothesis=EVIL),
            "error": EVIL,
            "created_at": utcnow(),
        }
    )
    store.save(evil, source)
    # filler so that lists have a second page (copies of a real record, older than the rest)
    for n in range(FILLER):
        store.save(
            first.model_copy(
                update={
                    "experiment_id": f"fill{n:04d}-0000-0000-0000-000000000000",
                    "campaign_id": "filler",
                    "iteration": n + 1,
                    "created_at": first.created_at - timedelta(days=1, seconds=n),
                }
            ),
            store.source(first.program_sha256) or "",
        )
    return {"records": records, "evil": evil, "artifacts": artifacts, "settings": settings}


@contextmanager
def client_for(settings: Settings) -> Iterator[httpx.Client]:
    with serve(settings) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client
