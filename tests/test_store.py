from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from codeclab.record import (
    BaselineCurve,
    BaselineRungRecord,
    BdRate,
    ClipInfo,
    ExperimentRecord,
    FrameMetrics,
    PhaseRecord,
    Reasoning,
    RungResult,
    Target,
)
from codeclab.store.artifacts import ArtifactError, LocalArtifactStore
from codeclab.store.db import ExperimentStore, StoreError
from codeclab.store.factory import open_experiment_store

pytest_plugins = ("tests.stores",)  # the store_url and sql_url fixtures

METRICS = dict(psnr_y=35.5, psnr_u=40.25, psnr_v=41.0, psnr_yuv=37.0, ssim_y=0.95)
RUNG = dict(
    clip="cars",
    bytes=1234,
    frames=4,
    width=96,
    height=64,
    fps=30.0,
    kbps=74.04,
    bpp=0.4,
    encode_s=0.5,
    decode_s=0.25,
    **METRICS,
)


def make_record(experiment_id: str = "0f1e2d3c-0000-4000-8000-000000000001") -> ExperimentRecord:
    return ExperimentRecord(
        experiment_id=experiment_id,
        campaign_id=None,
        iteration=3,
        status="ok",
        program_sha256="ab" * 32,
        program_name="intra_dct~step",
        parent_sha256="cd" * 32,
        designer="evolve",
        reasoning=Reasoning(text="<script>x</script>", mutations=["A: 1 -> 2"]),
        isolation="weak",
        source_bytes=999,
        qualities=[20, 80],
        clips=[
            ClipInfo(
                name="cars",
                path="/x/cars.y4m",
                sha256="ef" * 32,
                width=96,
                height=64,
                frames=4,
                fps=30.0,
                conversions=["note"],
            )
        ],
        results=[
            RungResult(
                **RUNG,
                quality=q,
                clip_sha256="ef" * 32,
                bitstream_sha256="1" * 64,
                decoded_sha256="2" * 64,
                per_frame=[FrameMetrics(**METRICS)] * 4,
            )
            for q in (20, 80)
        ],
        baselines={
            "x265": [
                BaselineCurve(
                    encoder="x265",
                    version="libx265 4.1",
                    settings={"preset": "medium"},
                    clip_sha256="ef" * 32,
                    rungs=[BaselineRungRecord(**RUNG, crf=c) for c in (22, 27)],
                )
            ]
        },
        bd_rate={
            "x265": {
                "psnr_y": BdRate(value=-12.5, per_clip={"cars": -12.5}),
                "ssim_y": BdRate(value=None, reason="curves do not overlap"),
            }
        },
        target=Target(
            achieved=False,
            target_kbps=1000,
            kbps=74.0,
            psnr_y=35.5,
            x265_psnr_y_at_kbps=36.0,
            reason="below x265",
        ),
        phases=[PhaseRecord(name="validation", status="ok", seconds=0.1)],
        versions={"numpy": "2"},
    )


def test_record_round_trips(store_url):
    store = open_experiment_store(store_url)
    record = make_record()
    store.save(record, "def encode(f, fps, q): ...")
    again = open_experiment_store(store_url).get(record.experiment_id)
    assert again is not None
    expected = record.model_dump(exclude={"created_at"})
    assert again.model_dump(exclude={"created_at"}) == expected
    assert again.created_at.timestamp() == pytest.approx(record.created_at.timestamp(), abs=1e-3)
    assert store.source(record.program_sha256) == "def encode(f, fps, q): ..."
    assert store.source("00" * 32) is None and store.get("nonexistent") is None


def test_lookup_by_prefix_and_listing_order(store_url):
    store = open_experiment_store(store_url)
    first, second = make_record("aaaa1111-x"), make_record("aaaa2222-y")
    store.save(first, "src")
    store.save(second, "src")
    assert (
        store.get("aaaa2") is not None and store.get("aaaa2").experiment_id == second.experiment_id
    )
    assert store.get("aaaa") is None  # ambiguous prefix
    assert [r.experiment_id for r in store.list()] == [first.experiment_id, second.experiment_id]
    assert [r.experiment_id for r in store.list(limit=1)] == [first.experiment_id]


def test_saving_twice_keeps_one_experiment(store_url):
    store = open_experiment_store(store_url)
    store.save(make_record(), "src")
    store.save(make_record(), "src")
    assert len(store.list()) == 1


def test_campaigns_resume_the_latest_and_count_each_iteration_once(store_url):
    store = open_experiment_store(store_url)
    assert store.latest_campaign() is None
    store.add_campaign("c-old", "evolve", 1, 4, {"seed": 1})
    time.sleep(0.01)
    store.add_campaign("c-new", "evolve", 2, 3, {"seed": 2, "iterations": 3})
    latest = store.latest_campaign()
    assert latest is not None and latest.id == "c-new" and latest.iterations == 3
    assert latest.settings == {"seed": 2, "iterations": 3}
    one = make_record("bbbb0001").model_copy(update={"campaign_id": "c-new", "iteration": 1})
    store.save(one, "src")
    store.save(one, "src")  # the same experiment again: skipped
    other = one.model_copy(update={"experiment_id": "bbbb0002"})
    with pytest.raises(StoreError, match="already has iteration 1"):
        store.save(other, "src")
    assert [r.experiment_id for r in store.list(campaign_id="c-new")] == ["bbbb0001"]
    assert store.list(campaign_id="c-old") == []


KILL_MID_WRITE = """
import os, signal, sys
from sqlalchemy import event
from codeclab.store.db import ExperimentStore, Result
from tests.test_store import make_record

store = ExperimentStore(sys.argv[1], outbox_dir=sys.argv[2])

@event.listens_for(Result, "after_insert")
def die(mapper, connection, target):  # program, experiment and one result row are written
    os.kill(os.getpid(), signal.SIGKILL)

store.save(make_record("cccc0001"), "killed mid-write")
"""


def test_an_experiment_killed_mid_write_leaves_nothing(sql_url, tmp_path):
    store = ExperimentStore(sql_url, outbox_dir=tmp_path / "outbox")
    store.save(make_record("cccc0000"), "before")
    done = subprocess.run(
        [sys.executable, "-c", KILL_MID_WRITE, sql_url, str(tmp_path / "outbox")],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    again = ExperimentStore(sql_url, outbox_dir=tmp_path / "outbox")
    assert again.get("cccc0001") is None
    assert [r.experiment_id for r in again.list()] == ["cccc0000"]
    with again.engine.connect() as connection:
        for table in ("results", "baseline_rungs", "phases"):
            query = text(f"SELECT count(*) FROM {table} WHERE experiment_id = 'cccc0001'")
            assert connection.execute(query).scalar_one() == 0, table
    again.save(make_record("cccc0001"), "after")  # the experiment, run again, is written whole
    written = again.get("cccc0001")
    assert written is not None and len(written.results) == 2 and len(written.phases) == 1


def test_unusable_database_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open"):
        ExperimentStore(f"sqlite:///{blocker / 'lab.db'}")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a sqlite database at all" * 100)
    with pytest.raises(StoreError, match="cannot open the experiment store"):
        ExperimentStore(f"sqlite:///{garbage}")


def test_artifact_keys_cannot_escape_the_store(tmp_path):
    store = LocalArtifactStore(tmp_path / "artifacts")
    path = store.put_bytes("decoders/x_decoder.py", b"print()")
    assert store.get_bytes("decoders/x_decoder.py") == b"print()" and path.endswith("x_decoder.py")
    for key in ("../outside", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(ArtifactError, match="escapes"):
            store.put_bytes(key, b"x")
    assert not list((tmp_path / "artifacts" / "decoders").glob(".tmp-*"))
