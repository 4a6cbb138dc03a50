"""A store that goes down: clear errors, experiments kept in the outbox, written once later.

Each test here has its own PostgreSQL server, which it stops and starts again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeclab.campaign import Callbacks, run_campaign
from codeclab.config import Settings
from codeclab.media import load_clip
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore, StoreError, StoreUnavailable
from codeclab.store.factory import open_experiment_store
from codeclab.store.outbox import Outbox
from codeclab.store.retry import GaveUp
from tests.test_store import make_record

pytest_plugins = ("tests.stores",)


def test_a_save_while_the_server_is_down_is_kept_and_written_once_later(own_pg, tmp_path):
    url = own_pg.create_database()
    outbox = tmp_path / "outbox"
    store = ExperimentStore(url, outbox_dir=outbox)
    store.save(make_record("ffff0001"), "first")

    own_pg.stop()
    with pytest.raises(StoreUnavailable) as down:
        store.save(make_record("ffff0002"), "second")
    message = str(down.value)
    assert f"127.0.0.1:{own_pg.port}" in message and "ffff0002" in message
    assert own_pg.password not in message and "***" in message
    kept = outbox / "ffff0002.json"
    assert json.loads(kept.read_text())["record"]["experiment_id"] == "ffff0002"
    assert store.pending() == [kept]
    with pytest.raises(StoreError, match=r"the experiment store postgresql\+psycopg://postgres:\*"):
        store.list()
    with pytest.raises(StoreError) as not_open:
        ExperimentStore(url, outbox_dir=outbox)
    assert "cannot open" in str(not_open.value) and own_pg.password not in str(not_open.value)

    own_pg.start()
    store.save(make_record("ffff0003"), "third")  # writes the kept experiment first
    assert store.pending() == [] and not kept.exists()
    assert [r.experiment_id for r in store.list()] == ["ffff0001", "ffff0002", "ffff0003"]
    assert store.flush_outbox() == 0
    store.save(make_record("ffff0002"), "second")  # offered again: still one
    assert [r.experiment_id for r in store.list()] == ["ffff0001", "ffff0002", "ffff0003"]


def test_an_entry_the_store_rejects_for_good_is_set_aside(sqlite_url, tmp_path):
    outbox = tmp_path / "outbox"
    store = ExperimentStore(sqlite_url, outbox_dir=outbox)
    store.add_campaign("c1", "evolve", 0, 2, {})
    first = make_record("aaaa0001").model_copy(update={"campaign_id": "c1", "iteration": 1})
    store.save(first, "src")
    clash = first.model_copy(update={"experiment_id": "aaaa0002"})
    outbox.mkdir()
    entry = {"record": clash.model_dump(mode="json"), "source": "src"}
    (outbox / "aaaa0002.json").write_text(json.dumps(entry))
    assert store.flush_outbox() == 0
    assert (outbox / "rejected" / "aaaa0002.json").exists() and store.pending() == []
    assert [r.experiment_id for r in store.list()] == ["aaaa0001"]


def test_a_campaign_whose_store_goes_down_loses_and_repeats_nothing(
    own_pg, tmp_path, small_clip_path
):
    url = own_pg.create_database()
    home = tmp_path / "lab"
    settings = Settings(
        home=home,
        database_url=url,
        clips=[small_clip_path],
        qualities=[30, 70],
        baselines=[],
        iterations=3,
        store_give_up_s=0,  # no wait: this test is about what is kept
    )
    clips = [load_clip(small_clip_path)]
    artifacts = LocalArtifactStore(settings.artifacts_dir)
    store = open_experiment_store(url, outbox_dir=home / "outbox")

    def stop_before_second(iteration: int, name: str) -> None:
        if iteration == 2:
            own_pg.stop()  # the server goes away while experiment 2 runs

    with pytest.raises(GaveUp, match="will be written when the store is back"):
        run_campaign(settings, clips, store, artifacts, callbacks=Callbacks(stop_before_second))
    assert [p.name for p in (home / "outbox").glob("*.json")]

    own_pg.start()
    store = open_experiment_store(url, outbox_dir=home / "outbox")
    campaign = store.latest_campaign()  # what --resume does first; writes what was kept
    assert campaign is not None
    assert [r.iteration for r in store.list(campaign_id=campaign.id)] == [1, 2]
    resumed = run_campaign(settings, clips, store, artifacts, resume_id=campaign.id)
    assert [r.iteration for r in resumed.experiments] == [1, 2, 3]
    assert [r.iteration for r in store.list(campaign_id=campaign.id)] == [1, 2, 3]
    assert not list(Path(home / "outbox").glob("*.json"))


class Down(Exception):
    pass


class Busy(Exception):
    pass


def test_the_outbox_knows_no_backend(tmp_path):
    """Written once each; a busy entry waits, a rejected one is set aside, down stops."""
    outbox = Outbox(tmp_path / "outbox", "somewhere")
    for n in range(1, 5):
        outbox.keep(make_record(f"0000000{n}"), f"src{n}", "down")
    (tmp_path / "outbox" / "broken.json").write_text("{")
    written, answers = [], {"00000002": Busy(), "00000003": StoreError("taken")}

    def write(record, source):
        if record.experiment_id in answers:
            raise answers[record.experiment_id]
        written.append((record.experiment_id, source))

    def flush():
        return outbox.flush(
            write, failures=(Busy, Down), is_down=lambda e: isinstance(e, Down), rejected=StoreError
        )

    assert flush() == 2 and written == [("00000001", "src1"), ("00000004", "src4")]
    assert (tmp_path / "outbox" / "rejected" / "00000003.json").exists()
    assert [p.name for p in outbox.pending()] == ["00000002.json", "broken.json"]
    answers["00000002"] = Down()
    assert flush() == 0
    del answers["00000002"]
    assert flush() == 1 and written[-1] == ("00000002", "src2")
    assert [p.name for p in outbox.pending()] == ["broken.json"]
