from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
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
    HoldoutGate,
    PhaseRecord,
    Reasoning,
    RungResult,
    Screen,
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
        isolation="strong",
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
                "psnr_y": BdRate(
                    value=-12.5,
                    per_clip={"cars": -12.5},
                    integrated_over="standard range: x265's span at CRF 22..37",
                    spans={"cars": (30.5, 38.25)},
                ),
                "ssim_y": BdRate(value=None, reason="curves do not overlap"),
            }
        },
        bd_rate_wide={"x265": {"psnr_y": BdRate(value=-9.0, integrated_over="wide range")}},
        stage="full",
        screen=Screen(
            frames=4, bd_rate=-3.0, parent_bd_rate=-1.0, margin=5.0, passed=True, reason="within"
        ),
        gate=HoldoutGate(bd_rate=-2.0, best_bd_rate=-1.5, margin=1.0, passed=True, reason="within"),
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


# --- the dashboard's queries: summaries, counts and rankings, on every backend ---------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)
X265_CURVE = [(50.0, 33.0), (100.0, 37.0)]  # kbps, PSNR-Y


def scored(
    experiment_id: str,
    minute: int,
    *,
    status: str = "ok",
    campaign: str | None = None,
    iteration: int | None = None,
    bd: dict[str, float] | None = None,
    rungs: tuple[tuple[float, float], ...] = ((60.0, 35.5), (90.0, 36.0)),
    usage: dict | None = None,
) -> ExperimentRecord:
    """A record with chosen holdout BD-rates, rungs (kbps, PSNR-Y) and LLM usage."""
    record = make_record(experiment_id)
    results = [
        record.results[0].model_copy(update={"kbps": k, "psnr_y": p, "quality": 10 + n})
        for n, (k, p) in enumerate(rungs)
    ]
    curve = record.baselines["x265"][0]
    baseline = curve.model_copy(
        update={
            "rungs": [
                curve.rungs[0].model_copy(update={"kbps": k, "psnr_y": p, "crf": 30 - n})
                for n, (k, p) in enumerate(X265_CURVE)
            ]
        }
    )
    return record.model_copy(
        update={
            "status": status,
            "campaign_id": campaign,
            "iteration": iteration,
            "created_at": T0 + timedelta(minutes=minute),
            "results": results,
            "baselines": {"x265": [baseline]},
            "bd_rate": {e: {"psnr_y": BdRate(value=v)} for e, v in (bd or {}).items()},
            "reasoning": Reasoning(text=f"why {experiment_id}", llm_usage=usage),
        }
    )


def usage(cost: float, tokens: int, known: bool = True) -> dict:
    return {
        "calls": 1,
        "input_tokens": tokens,
        "output_tokens": tokens // 10,
        "cost_usd": cost,
        "cost_known": known,
    }


def lab_of_records(store) -> list[ExperimentRecord]:
    store.add_campaign("camp-a", "evolve", 0, 3, {})
    store.add_campaign("camp-b", "llm", 1, 2, {})
    records = [
        scored("e1", 1, campaign="camp-a", iteration=1, bd={"x264": -5.0, "x265": 3.0}),
        scored(
            "e2",
            2,
            campaign="camp-a",
            iteration=2,
            bd={"x264": -9.0, "x265": 1.0, "svtav1": 12.0},
            rungs=((55.0, 33.0), (80.0, 36.5)),  # only 80 kbps is at or above x265 (35.7 dB)
        ),
        scored("e3", 3, campaign="camp-a", iteration=3, status="failed", bd={"x264": -50.0}),
        scored("e4", 4, campaign="camp-b", iteration=1, bd={"x265": -2.0}, usage=usage(0.5, 1000)),
        scored(
            "e5",
            5,
            campaign="camp-b",
            iteration=2,
            status="rejected",
            usage=usage(0.25, 500, known=False),
        ),
        scored("e6", 6, bd={"x264": -7.0}, rungs=((40.0, 30.0), (45.0, 31.0))),  # no campaign
    ]
    for record in records:
        store.save(record, f"source of {record.experiment_id}")
    return records


def test_pages_are_counted_filtered_and_newest_first(store_url):
    store = open_experiment_store(store_url)
    assert store.page() == (0, [])
    lab_of_records(store)
    total, first = store.page(limit=4)
    assert total == 6 and [s.experiment_id for s in first] == ["e6", "e5", "e4", "e3"]
    total, rest = store.page(offset=4, limit=4)
    assert total == 6 and [s.experiment_id for s in rest] == ["e2", "e1"]
    assert store.page(status="ok") == (4, store.page(status="ok")[1])
    assert [s.experiment_id for s in store.page(status="ok")[1]] == ["e6", "e4", "e2", "e1"]
    total, camp = store.page(campaign_id="camp-a")
    assert total == 3 and [s.experiment_id for s in camp] == ["e3", "e2", "e1"]
    total, both = store.page(campaign_id="camp-a", status="ok", offset=1, limit=5)
    assert total == 2 and [s.experiment_id for s in both] == ["e1"]
    assert store.page(campaign_id="nothing") == (0, [])
    summary = first[2]  # e4: the fields a list or a blog post shows, no results
    assert (summary.campaign_id, summary.iteration, summary.status) == ("camp-b", 1, "ok")
    assert summary.program_name == "intra_dct~step" and summary.designer == "evolve"
    assert summary.reasoning.text == "why e4" and summary.created_at == T0 + timedelta(minutes=4)
    record = store.get("e4")
    assert summary.headline() == pytest.approx(record.headline())
    assert summary.headline()["bd_rate_x265"] == -2.0 and summary.leaderboard_bd_rate == -2.0
    assert summary.leaderboard_anchor == "x265" and summary.artifacts == record.artifacts


def test_lineage_queries_give_parents_and_the_newest_runs(store_url):
    store = open_experiment_store(store_url)
    seed = scored("s1", 1).model_copy(
        update={"program_sha256": "a" * 64, "program_name": "seed", "parent_sha256": None}
    )
    children = [
        scored(f"c{n}", 2 + n, campaign=None).model_copy(
            update={"program_sha256": "b" * 64, "parent_sha256": "a" * 64, "program_name": "kid"}
        )
        for n in range(3)
    ]
    for record in (seed, *children):
        store.save(record, f"source of {record.program_sha256[0]}")
    program = store.program("b" * 64)
    assert (program.name, program.parent_sha256) == ("kid", "a" * 64)
    assert store.program("a" * 64).parent_sha256 is None
    assert store.program("f" * 64) is None
    runs = store.runs("b" * 64, limit=2)
    assert [r.experiment_id for r in runs] == ["c2", "c1"]
    assert runs[0].status == "ok" and runs[0].created_at == T0 + timedelta(minutes=4)
    assert [r.experiment_id for r in store.runs("b" * 64)] == ["c2", "c1", "c0"]
    assert [r.experiment_id for r in store.runs("a" * 64)] == ["s1"]
    assert store.runs("f" * 64) == []


def test_the_overview_aggregates_without_loading_records(store_url):
    store = open_experiment_store(store_url)
    empty = store.overview()
    assert empty.total == 0 and empty.by_status == {} and empty.best_x265_quality_kbps is None
    assert all(best is None for best in empty.best_bd_rate.values()) and empty.llm.cost_usd == 0
    lab_of_records(store)
    overview = store.overview()
    assert overview.total == 6 and overview.by_status == {"ok": 4, "failed": 1, "rejected": 1}
    best = {e: (b.value, b.experiment_id) if b else None for e, b in overview.best_bd_rate.items()}
    # e3's -50% does not count: it failed
    assert best == {"x264": (-9.0, "e2"), "x265": (-2.0, "e4"), "svtav1": (12.0, "e2"), "aom": None}
    assert overview.best_bd_rate["x264"].program_name == "intra_dct~step"
    lowest = overview.best_x265_quality_kbps
    assert (lowest.value, lowest.experiment_id, lowest.clip) == (60.0, "e1", "cars")
    llm = overview.llm
    assert (llm.calls, llm.input_tokens, llm.output_tokens) == (2, 1500, 150)
    assert llm.cost_usd == pytest.approx(0.75) and llm.cost_known is False


def test_the_leaderboard_and_the_progress_of_campaigns(store_url):
    store = open_experiment_store(store_url)
    lab_of_records(store)
    # the leaderboard's anchor is x264 where there is one, else x265 (as campaigns rank)
    ranked = [(s.experiment_id, s.leaderboard_bd_rate) for s in store.leaderboard()]
    assert ranked == [("e2", -9.0), ("e6", -7.0), ("e1", -5.0), ("e4", -2.0)]
    assert [s.experiment_id for s in store.leaderboard(limit=2)] == ["e2", "e6"]
    # a record made under weak isolation proves nothing: it never ranks, however good
    weak = scored("e7", 7, bd={"x264": -99.0}).model_copy(update={"isolation": "weak"})
    store.save(weak, "source of e7")
    assert [s.experiment_id for s in store.leaderboard()] == ["e2", "e6", "e1", "e4"]
    assert store.overview().best_bd_rate["x264"].experiment_id == "e2"
    progress = store.progress()
    assert [c.campaign_id for c in progress] == ["camp-b", "camp-a"]
    camp_a = progress[1]
    assert [(p.iteration, p.status) for p in camp_a.points] == [(1, "ok"), (2, "ok"), (3, "failed")]
    assert [p.bd_rate_x265 for p in camp_a.points] == [3.0, 1.0, None]
    assert camp_a.points[1].kbps == pytest.approx((55.0 + 80.0) / 2)
    assert camp_a.started_at is not None
    (only,) = store.progress(campaign_id="camp-b")
    assert [p.experiment_id for p in only.points] == ["e4", "e5"]
    assert [c.campaign_id for c in store.progress(campaigns=1)] == ["camp-b"]


def forget_summaries(store_url: str, store) -> None:
    """Make the store look as one written before summaries existed."""
    if store_url.startswith("dynamodb"):
        for item in store._query_index("GSI1", "EXP"):
            pk = item["PK"]
            names = ["summary_version", "leaderboard_bd_rate", "llm_calls", "x265_quality_kbps"]
            store.client.update_item(
                TableName=store.table,
                Key=store._ser({"PK": pk, "SK": "HEADER"}),
                UpdateExpression="REMOVE " + ", ".join(f"#n{n}" for n in range(len(names))),
                ExpressionAttributeNames={f"#n{n}": name for n, name in enumerate(names)},
            )
            for rank in store._query(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :r)",
                ExpressionAttributeValues=store._ser({":pk": pk, ":r": "RANK#"}),
            ):
                store.client.delete_item(
                    TableName=store.table, Key=store._ser({"PK": pk, "SK": rank["SK"]})
                )
        for sk in ("TOTALS", "CAMPAIGN#camp-a", "CAMPAIGN#camp-b", "SUMMARIES"):
            store.client.delete_item(
                TableName=store.table, Key=store._ser({"PK": "STATS", "SK": sk})
            )
        return
    from alembic import command

    from codeclab.store.db import alembic_config

    with store.engine.begin() as connection:  # back to the revision before summaries
        command.downgrade(alembic_config(connection), "0001")


def stageless(progress: list) -> list:
    """Progress without the cascade stage: a store from before summaries (revision 0001) has
    no stage column, so its experiments have none."""
    return [
        c.model_copy(update={"points": [p.model_copy(update={"stage": None}) for p in c.points]})
        for c in progress
    ]


def test_experiments_written_before_summaries_get_them(store_url):
    store = open_experiment_store(store_url)
    lab_of_records(store)
    before = (store.page(), store.overview(), store.leaderboard(), stageless(store.progress()))
    forget_summaries(store_url, store)
    again = open_experiment_store(store_url)  # opening summarizes them, once
    after = (again.page(), again.overview(), again.leaderboard(), stageless(again.progress()))
    assert after == before
    assert open_experiment_store(store_url).overview() == before[1]  # not counted twice
