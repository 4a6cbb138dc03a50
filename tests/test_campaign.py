"""Campaigns: one per data directory, resumable after kill -9, parallel workers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from codeclab import campaign
from codeclab.campaign import directory_lock
from codeclab.config import load_settings
from codeclab.design.evolve import EvolveDesigner
from codeclab.media import load_clip
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore
from tests.conftest import CODECLAB, cli


def iterations_in(db: Path) -> list[int]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        try:
            rows = connection.execute("select iteration from experiments order by iteration")
        except sqlite3.OperationalError:  # tables not created yet
            return []
        return [row[0] for row in rows]


def test_a_killed_campaign_resumes_without_losing_or_repeating(home, small_clip_path, tmp_path):
    args = [
        "run",
        "--iterations",
        "4",
        "--clip",
        str(small_clip_path),
        "--qualities",
        "30,70",
        "--baselines",
        "none",
    ]
    victim = subprocess.Popen(
        [*CODECLAB, *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    db = home / "codeclab.db"
    deadline = time.monotonic() + 120
    while not iterations_in(db) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    before = iterations_in(db)
    assert before and len(before) < 4, "the kill should land mid-campaign"
    resumed = cli("run", "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert [e["iteration"] for e in summary["experiments"]] == [1, 2, 3, 4]
    assert iterations_in(db) == [1, 2, 3, 4]
    again = cli("run", "--resume", "--json", cwd=tmp_path)
    assert iterations_in(db) == [1, 2, 3, 4] and again.returncode == 0


def test_one_campaign_per_data_directory(home, small_clip_path, tmp_path):
    with directory_lock(home):
        busy = cli("run", "--iterations", "1", "--clip", str(small_clip_path), cwd=tmp_path)
    assert busy.returncode == 2
    assert "already running" in busy.stderr and f"pid {os.getpid()}" in busy.stderr
    nothing = cli("run", "--resume", cwd=tmp_path)
    assert nothing.returncode == 2 and "no campaign to resume" in nothing.stderr


def test_parallel_workers_keep_the_store_consistent(home, small_clip_path, tmp_path):
    done = cli(
        "run",
        "--iterations",
        "4",
        "--workers",
        "2",
        "--clip",
        str(small_clip_path),
        "--qualities",
        "30,70",
        "--baselines",
        "x264",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [e["iteration"] for e in summary["experiments"]] == [1, 2, 3, 4]
    assert len({e["program_sha256"] for e in summary["experiments"]}) == 4
    assert iterations_in(home / "codeclab.db") == [1, 2, 3, 4]


def experiments_in(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute("select count(*) from experiments").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def ignore_sigint() -> None:
    """How a shell starts a background job (``codeclab run --forever &``): SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("start", [None, ignore_sigint], ids=["foreground", "background-job"])
def test_forever_runs_a_campaign_per_interval_until_interrupted(
    home, small_clip_path, tmp_path, start
):
    lab = subprocess.Popen(
        [
            *CODECLAB,
            "run",
            "--forever",
            "--interval",
            "0.2s",
            "--iterations",
            "1",
            "--clip",
            str(small_clip_path),
            "--qualities",
            "50",
            "--baselines",
            "none",
            "--json",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=start,
    )
    deadline = time.monotonic() + 120
    # a third campaign's experiment means the second one finished and printed its summary
    # (its own experiment is recorded before its summary, so waiting for two raced SIGINT)
    while experiments_in(home / "codeclab.db") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    lab.send_signal(signal.SIGINT)
    stdout, stderr = lab.communicate(timeout=60)
    assert lab.returncode == 0, stderr
    assert "stopped" in stderr
    summaries = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert len(summaries) >= 2
    assert len({s["campaign_id"] for s in summaries}) == len(summaries)


def test_interval_must_be_a_duration(home, tmp_path):
    bad = cli("run", "--forever", "--interval", "soon", cwd=tmp_path)
    assert bad.returncode == 2 and "--interval" in bad.stderr


def test_a_program_that_fools_the_published_decoder_fails_and_the_campaign_goes_on(
    home, small_clip_path, monkeypatch
):
    """A program that decodes nothing as the published decoder fails (each rung's second
    decode runs the published file) and that is its record; the next proposal is still
    evaluated."""
    tests = Path(__file__).parent
    seeds = {
        "fools_the_decoder": (tests / "adversarial/stack_depth_detects_decoder.py").read_text(),
        "quantise_zlib": (tests / "programs/quantise_zlib.py").read_text(),
    }
    monkeypatch.setattr(campaign, "make_designer", lambda settings: EvolveDesigner(seeds=seeds))
    settings = load_settings(clips=[small_clip_path], iterations=2, qualities=[50], baselines=[])
    store = ExperimentStore(settings.db_url)
    result = campaign.run_campaign(
        settings, [load_clip(small_clip_path)], store, LocalArtifactStore(settings.artifacts_dir)
    )
    first, second = result.experiments
    assert (first.status, first.phase) == ("failed", "execution")
    assert "the published decoder returned no frames" in first.error
    assert (second.program_name, second.status) == ("quantise_zlib", "ok"), second.error
    assert [r.iteration for r in store.list(campaign_id=result.campaign_id)] == [1, 2]
