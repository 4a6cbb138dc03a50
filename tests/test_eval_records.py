"""New score fields survive the store, old databases gain their columns, and the bench
describes its machine (its timings are benchmarks, never asserted)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from codeclab.config import load_settings
from codeclab.evaluate import bench
from codeclab.evaluate.baselines import ENCODERS, BaselineUnavailable, baseline_curve, unavailable
from codeclab.media import load_clip
from codeclab.record import FrameMetrics
from codeclab.runner import Job, evaluate
from codeclab.sandbox import isolate
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore
from tests.test_store import make_record

NEW_COLUMNS = {
    "results": ("ms_ssim_y", "vmaf", "vmaf_reason"),
    "baseline_rungs": ("ms_ssim_y", "vmaf", "vmaf_reason"),
    "experiments": ("bd_rate_train", "bd_rate_holdout", "test_set", "holdout_is_train"),
}


def test_ms_ssim_vmaf_and_splits_round_trip(tmp_path):
    store = ExperimentStore(f"sqlite:///{tmp_path / 'lab.db'}")
    record = make_record()
    for rung in record.results:
        rung.ms_ssim_y, rung.vmaf, rung.vmaf_reason = 0.97, 88.5, None
        rung.per_frame = [
            FrameMetrics(**{**f.model_dump(), "ms_ssim_y": 0.97}) for f in rung.per_frame
        ]
    rung = record.baselines["x265"][0].rungs[0]
    rung.vmaf, rung.vmaf_reason = None, "no ffmpeg on PATH"
    record.test_set, record.holdout_is_train = "default", True
    record.clips[0].split = "train+holdout"
    record.bd_rate_train = record.bd_rate_holdout = record.bd_rate
    store.save(record, "src")
    again = store.get(record.experiment_id)
    assert again.model_dump(exclude={"created_at"}) == record.model_dump(exclude={"created_at"})


def test_an_old_database_gains_the_new_nullable_columns(tmp_path):
    path = tmp_path / "old.db"
    ExperimentStore(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:  # make it look like the first release's schema
        for table, columns in NEW_COLUMNS.items():
            for column in columns:
                connection.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        connection.execute("DROP TABLE alembic_version")  # before migrations existed
    store = ExperimentStore(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        for table, columns in NEW_COLUMNS.items():
            present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            assert set(columns) <= present
    record = make_record()
    store.save(record, "src")
    assert store.get(record.experiment_id).results[0].ms_ssim_y is None


def test_bench_states_the_machine_and_counts_every_sandboxed_run():
    machine = bench.machine()
    assert machine["cores"] >= 1 and machine["cpu"]
    assert {"numpy", "pyav", "libavcodec", "ffmpeg_cli"} <= set(machine["versions"])
    original = isolate.run_encode
    with bench._program_clock() as spent:
        assert isolate.run_encode is not original
        isolate.run_encode(
            bench.TRIVIAL_PROGRAM,
            [(bench.np.zeros((16, 16), "uint8"),) + (bench.np.zeros((8, 8), "uint8"),) * 2],
            30.0,
            50,
            isolate.Limits.for_clip(16, 16, 1),
        )
    assert isolate.run_encode is original and len(spent) == 1 and spent[0] > 0
    command = bench.ffmpeg_command("ffmpeg", "r.y4m", "d.y4m")
    assert command[-3:] == ["-f", "null", "-"] and "psnr" in command[-4]


@pytest.mark.skipif("aom" in ENCODERS, reason="this PyAV build has libaom")
def test_libaom_is_skipped_with_the_reason_on_the_record(home, small_clip_path):
    reason = unavailable("aom")
    assert "libaom-av1" in reason
    with pytest.raises(BaselineUnavailable, match="libaom-av1"):
        baseline_curve([], 30.0, "0" * 64, "aom", home)
    settings = load_settings(clips=[small_clip_path], qualities=[30, 70], baselines=["aom"])
    record = evaluate(
        Job(
            source=(Path(__file__).parent / "programs" / "quantise_zlib.py").read_text(),
            name="quantise_zlib",
            clips=[load_clip(small_clip_path)],
            settings=settings,
            store=ExperimentStore(settings.db_url),
            artifacts=LocalArtifactStore(settings.artifacts_dir),
        )
    )
    assert record.status == "ok", record.error
    assert "aom" not in record.baselines
    assert record.bd_rate["aom"]["psnr_y"].value is None
    assert reason in record.bd_rate["aom"]["psnr_y"].reason
