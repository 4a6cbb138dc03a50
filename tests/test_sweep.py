"""Clean up after a kill: the sweep removes what dead runs left, never what is referenced or
what a live process still uses."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from codeclab import scratch
from codeclab.config import load_settings
from codeclab.record import ExperimentRecord
from codeclab.store.artifacts import (
    ArtifactStore,
    Journal,
    LocalArtifactStore,
    bitstream_key,
    journal_dir,
    reconstructed_key,
)
from codeclab.store.db import ExperimentStore
from codeclab.store.sweep import sweep
from tests.conftest import CODECLAB, cli

PROGRAM_KEY = "programs/" + "a" * 64 + ".py"
WRITER = """
import os, sys, time
from pathlib import Path
from codeclab import scratch
from codeclab.store.artifacts import Journal, LocalArtifactStore, journal_dir

home, mode, experiments = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
store = LocalArtifactStore(home / "artifacts", journal=Journal(journal_dir(home)))
for experiment in experiments:
    store.put_bytes(f"bitstreams/{experiment}/clip_q30.bin", b"b" * 1000)
    store.put_bytes(f"reconstructed/{experiment}.mp4", b"v" * 500)
store.put_bytes("programs/" + "a" * 64 + ".py", b"program")
os.close(scratch.make_file(store.root / "bitstreams" / experiments[0])[0])  # cut short
scratch.make_dir("sandbox")
cache = home / "cache" / "baselines"
cache.mkdir(parents=True, exist_ok=True)
scratch.make_dir(".x265-crf30-0123", cache)
print("ready", flush=True)
if mode == "live":
    time.sleep(120)
os.kill(os.getpid(), 9)
"""


def writer(home: Path, mode: str, experiments: list[str]) -> subprocess.Popen[str]:
    """A process that writes artifacts and scratch directories, then dies by -9 or lives."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home), mode, *experiments],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    if mode == "dead":
        process.wait()
    return process


def record(experiment_id: str, artifacts: ArtifactStore) -> ExperimentRecord:
    return ExperimentRecord(
        experiment_id=experiment_id,
        status="ok",
        program_sha256="a" * 64,
        program_name="p",
        designer="manual",
        isolation="strong",
        source_bytes=7,
        qualities=[30],
        artifacts={
            "program": artifacts.location(PROGRAM_KEY),
            "bitstreams": [artifacts.location(bitstream_key(experiment_id, "clip", 30))],
            "reconstructed": artifacts.location(reconstructed_key(experiment_id)),
        },
    )


def owned_by(folder: Path, pid: int) -> list[str]:
    return [
        p.name for p in folder.iterdir() if (scratch.owner_of(p.name) or "").startswith(f"{pid}.")
    ]


@pytest.fixture()
def lab(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A data directory with a real SQLite store and a journaled local artifact store, and a
    private temporary root (so other tests' scratch directories stay out of the counts)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    settings = load_settings()
    store = ExperimentStore(settings.db_url, outbox_dir=settings.outbox_dir)
    artifacts = LocalArtifactStore(settings.artifacts_dir, journal=Journal(journal_dir(home)))
    return settings, store, artifacts


def test_sweep_removes_what_dead_runs_left_and_nothing_referenced_or_live(lab):
    settings, store, artifacts = lab
    stored, pending, orphan, live = (str(uuid.uuid4()) for _ in range(4))
    dead = writer(settings.home, "dead", [stored, pending, orphan])
    alive = writer(settings.home, "live", [live])
    try:
        store.save(record(stored, artifacts), "program")
        store.outbox.keep(record(pending, artifacts), "program", "the store was down")

        swept = sweep(settings, store, artifacts)

        for kept in (stored, pending, live):
            assert artifacts.exists(bitstream_key(kept, "clip", 30)), kept
            assert artifacts.exists(reconstructed_key(kept)), kept
        assert artifacts.exists(PROGRAM_KEY)  # shared by content: never swept
        assert not (artifacts.root / "bitstreams" / orphan).exists()
        assert not artifacts.exists(reconstructed_key(orphan))
        assert os.listdir(artifacts.root / "bitstreams" / stored) == ["clip_q30.bin"]  # no .tmp
        cache = settings.cache_dir / "baselines"
        assert owned_by(scratch.root(), dead.pid) == [] and owned_by(cache, dead.pid) == []
        assert (
            len(owned_by(scratch.root(), alive.pid)) == 1 and len(owned_by(cache, alive.pid)) == 1
        )
        # the orphan's two keys, the half-written file, the sandbox and the cache directories
        assert (swept.count, swept.bytes) == (5, 1500)
        assert "swept 5 files" in swept.line()
        again = sweep(settings, store, artifacts)
        assert again.count == 0
    finally:
        alive.kill()
        alive.wait()
    after = sweep(settings, store, artifacts)
    assert not artifacts.exists(bitstream_key(live, "clip", 30))
    assert after.count == 5  # its two keys, its half-written file, sandbox, cache directory
    assert artifacts.exists(bitstream_key(stored, "clip", 30))


def test_sweep_removes_nothing_when_the_store_cannot_answer(lab):
    settings, store, artifacts = lab
    orphan = str(uuid.uuid4())
    writer(settings.home, "dead", [orphan])
    database = settings.home / "codeclab.db"
    store.engine.dispose()
    database.unlink()
    database.mkdir()  # SQLite cannot open it: whether the experiment exists is unknown
    sweep(settings, store, artifacts)
    assert artifacts.exists(bitstream_key(orphan, "clip", 30))
    assert os.listdir(journal_dir(settings.home))  # kept for the next sweep


def test_a_reused_pid_is_not_its_dead_owner():
    pid = os.getpid()
    assert not scratch.is_dead(scratch.owner())
    assert scratch.is_dead(f"{pid}.1")  # this pid, another start time: an earlier process
    assert not scratch.is_dead("not-a-tag")


def test_put_leaves_no_partial_file_and_notes_the_key_first(lab):
    settings, _, artifacts = lab
    experiment = str(uuid.uuid4())
    key = bitstream_key(experiment, "clip", 30)
    artifacts.put_bytes(key, b"x" * 10)
    assert os.listdir(artifacts.path(key).parent) == ["clip_q30.bin"]
    (journal,) = journal_dir(settings.home).iterdir()
    assert journal.read_text().split() == [key]


def _journaled_ids(home: Path) -> set[str]:
    folder = journal_dir(home)
    keys = [k for p in folder.glob("*") for k in p.read_text().split()] if folder.is_dir() else []
    return {k.split("/")[1] for k in keys if k.startswith("bitstreams/")}


def _stored(db: Path) -> list[tuple[str, int, str]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as connection:
            rows = connection.execute("select id, iteration, artifacts from experiments")
            return [(i, n, r) for i, n, r in rows]
    except sqlite3.OperationalError:  # tables not made yet, or being written
        return []


def test_kill_9_mid_campaign_then_resume_leaves_no_orphans(home, small_clip_path, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    args = ["run", "--iterations", "4", "--clip", str(small_clip_path), "--qualities", "30,70"]
    victim = subprocess.Popen(
        [*CODECLAB, *args, "--baselines", "none"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    db = home / "codeclab.db"
    root = temp / f"codeclab-{os.getuid()}"
    deadline = time.monotonic() + 180
    in_flight: set[str] = set()
    while time.monotonic() < deadline and victim.poll() is None:
        stored = {i for i, _, _ in _stored(db)}
        in_flight = _journaled_ids(home) - stored
        sandboxes = owned_by(root, victim.pid) if root.is_dir() else []
        if stored and in_flight and sandboxes:
            break
        time.sleep(0.01)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert in_flight, "the kill should land while an experiment writes its artifacts"
    left = [i for i in in_flight if (home / "artifacts" / "bitstreams" / i).exists()]
    assert left, "the killed experiment left its bitstreams"

    resumed = cli("run", "--resume", "--json", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "swept" in resumed.stderr
    rows = _stored(db)
    assert sorted(n for _, n, _ in rows) == [1, 2, 3, 4]  # none lost, none doubled
    ids = {i for i, _, _ in rows}
    assert set(os.listdir(home / "artifacts" / "bitstreams")) <= ids  # no orphan folder
    for _, _, text in rows:  # every record's artifacts are still there
        kept = json.loads(text)
        for location in [kept["program"], *kept["bitstreams"], kept["decoder"]]:
            assert location is None or Path(location).is_file(), location
    dead = [p.name for p in root.iterdir() if scratch.is_dead(scratch.owner_of(p.name) or "")]
    assert dead == [], "a dead run's sandbox directory stayed"
    assert not list((home / "artifacts").rglob(".tmp-*"))
