"""Rendered pages are kept while the store does not change, and revalidated by ETag, over
real HTTP on a store a real campaign filled (tests/weblab.py)."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta
from pathlib import Path

import pytest

from codeclab.config import Settings
from codeclab.store.factory import open_experiment_store
from codeclab.web.app import create_app
from codeclab.web.context import Records
from tests.weblab import client_for, fill_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, small_clip_path: Path):
    filled = fill_lab(tmp_path_factory.mktemp("cache") / "lab", small_clip_path)
    with client_for(filled["settings"]) as client:
        yield {
            **filled,
            "client": client,
            "store": open_experiment_store(filled["settings"].db_url),
        }


def pages(lab) -> list[str]:
    a, b = lab["records"]
    return [
        "/",
        "/blog",
        f"/experiments/{b.experiment_id}",
        f"/compare?a={a.experiment_id}&b={b.experiment_id}",
    ]


def test_a_page_whose_etag_the_browser_has_is_not_sent_again(lab):
    client = lab["client"]
    for path in pages(lab):
        first = client.get(path)
        etag = first.headers["etag"]
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
        again = client.get(path, headers={"If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), path
        other = client.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200 and other.content == first.content, path


def test_a_kept_page_changes_when_an_experiment_is_saved(lab):
    client, store = lab["client"], lab["store"]
    b = lab["records"][1]
    before = {path: client.get(path) for path in ("/", "/blog")}
    newer = b.model_copy(
        update={
            "experiment_id": "new00000-0000-0000-0000-000000000000",
            "iteration": 70,
            "program_name": "the newest program",
            "created_at": b.created_at + timedelta(days=1),
        }
    )
    store.save(newer, store.source(b.program_sha256) or "")
    for path in before:
        after = client.get(path, headers={"If-None-Match": before[path].headers["etag"]})
        assert after.status_code == 200 and "the newest program" in after.text, path
        assert "the newest program" not in before[path].text


def test_a_record_is_read_once_and_kept_by_its_full_id(lab):
    """Stored experiments never change: kept records spare the store; a prefix is asked of
    the store each time (a newer experiment may share it), the record kept by its full id."""
    a, b = lab["records"]
    reads: list[str] = []

    def load(experiment_id: str):
        reads.append(experiment_id)
        return lab["store"].get(experiment_id)

    records = Records(size=1)
    for _ in range(2):
        assert records.get(a.experiment_id, load).experiment_id == a.experiment_id
    assert reads == [a.experiment_id]
    prefix = b.experiment_id[:8]
    for _ in range(2):
        assert records.get(prefix, load).experiment_id == b.experiment_id
    assert records.get(b.experiment_id, load).experiment_id == b.experiment_id
    assert reads == [a.experiment_id, prefix, prefix]
    assert records.get(a.experiment_id, load).experiment_id == a.experiment_id  # size 1
    assert records.get("no-such-experiment", load) is None
    assert reads == [a.experiment_id, prefix, prefix, a.experiment_id, "no-such-experiment"]


def test_a_serving_app_keeps_its_startup_objects_from_the_collector(tmp_path: Path):
    """A full garbage collection walked every object a server process held (some 165,000:
    150 to 190 ms in which it served nothing); they are frozen while the app serves, and
    collectable again once it stops (a test process starts many apps)."""
    app = create_app(Settings(home=tmp_path / "lab"))

    async def serving() -> tuple[int, int]:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count(), len(gc.get_objects())

    frozen, walked = asyncio.run(serving())
    assert frozen > 10 * walked
    assert gc.get_freeze_count() == 0
