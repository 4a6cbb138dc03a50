"""A full disk: the lab says so, keeps no half-written artifact and no dangling reference,
its database stays whole, and ``--resume`` completes once space is freed. The disks are real
(small tmpfs mounts), which needs root."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeclab import scratch
from codeclab.executors import tasks
from codeclab.sandbox import isolate
from codeclab.store.artifacts import ArtifactUnavailable, LocalArtifactStore, bitstream_key
from tests.conftest import CODECLAB, cli
from tests.test_sweep import _journaled_ids, _stored
from tests.test_unattended import Lab, finished


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB disk of its own."""
    where = tmp_path / "disk"
    mount_tmpfs(where, "4m")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path, leave: int = 0) -> Path:
    """Fill the disk of ``where`` up to ``leave`` free bytes; the filler file, to free later."""
    filler = where / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while out.write(b"\0" * 4096):
                pass
        except OSError as exc:
            assert scratch.is_full(exc)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_a_put_on_a_full_disk_says_so_and_leaves_nothing(disk):
    artifacts = LocalArtifactStore(disk / "artifacts")
    key = bitstream_key(str(uuid.uuid4()), "clip", 30)
    artifacts.put_bytes("programs/" + "b" * 64 + ".py", b"p")
    filler = fill(disk)
    with pytest.raises(ArtifactUnavailable, match="no space left on device: .*artifacts"):
        artifacts.put_bytes(key, b"x" * 200_000)
    assert not artifacts.exists(key)
    assert not list(disk.rglob(".tmp-*"))
    filler.unlink()
    artifacts.put_bytes(key, b"x" * 200_000)
    assert artifacts.get_bytes(key) == b"x" * 200_000


def test_a_sandbox_on_a_full_disk_is_not_the_programs_failure(disk, monkeypatch, sample):
    monkeypatch.setattr("tempfile.tempdir", str(disk))
    frames = sample.frames[:2]
    source = (Path(__file__).parents[1] / "src/codeclab/programs/intra_dct.py").read_text()
    limits = isolate.Limits.for_clip(sample.width, sample.height, len(frames))
    fill(disk, leave=200_000)  # the frames fit, little else
    with pytest.raises(scratch.DiskFull, match="no space left on device: .*disk"):
        tasks.encode_rung(source, frames, sample.fps, 30, limits, None)


def test_a_campaign_on_a_disk_that_fills_fails_clearly_and_resumes(
    tmp_path, small_clip_path, monkeypatch
):
    home = tmp_path / "lab"
    mount_tmpfs(home, "8m")
    try:
        _fill_mid_campaign(home, small_clip_path, tmp_path)
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def _fill_mid_campaign(home: Path, clip: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CODECLAB_HOME": str(home),
        "CODECLAB_STORE_GIVE_UP_S": "2",
        "CODECLAB_STORE_RETRY_CAP_S": "0.5",
    }
    args = ["run", "--iterations", "3", "--clip", str(clip), "--qualities", "30,70"]
    lab = subprocess.Popen(
        [*CODECLAB, *args, "--baselines", "x264"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and lab.poll() is None:
        stored = {i for i, _, _ in _stored(home / "codeclab.db")}
        if stored and _journaled_ids(home) - stored:  # the second experiment is writing
            break
        time.sleep(0.01)
    filler = fill(home)
    _, stderr = lab.communicate(timeout=300)
    assert lab.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert "no space left on device" in last or "disk is full" in last, stderr

    db = home / "codeclab.db"
    with sqlite3.connect(db) as connection:
        assert connection.execute("pragma integrity_check").fetchone() == ("ok",)
    _assert_references_exist(home)

    filler.unlink()
    resumed = cli("run", "--resume", "--json", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    rows = _stored(db)
    assert sorted(n for _, n, _ in rows) == [1, 2, 3]
    assert set(os.listdir(home / "artifacts" / "bitstreams")) <= {i for i, _, _ in rows}
    _assert_references_exist(home)


def _assert_references_exist(home: Path) -> None:
    """Every stored or outbox-kept record's artifacts are whole files: no dangling key."""
    kept = [json.loads(text) for _, _, text in _stored(home / "codeclab.db")]
    outbox = home / "outbox"
    for path in outbox.glob("[!.]*.json") if outbox.is_dir() else []:
        kept.append(json.loads(path.read_text())["record"]["artifacts"])
    for artifacts in kept:
        for location in [artifacts["program"], *artifacts["bitstreams"], artifacts["decoder"]]:
            assert location is None or Path(location).is_file(), location
    assert not list((home / "artifacts").rglob(".tmp-*"))


def test_a_forever_lab_whose_scratch_disk_fills_goes_on_once_there_is_room(
    disk, tmp_path, small_clip_path
):
    """The sandbox's scratch disk fills between two campaigns: the campaign stops with the
    reason in one line, the unattended lab does not, and goes on once space is freed."""
    home = tmp_path / "lab"
    home.mkdir()
    lab = Lab(["--iterations", "1", "--forever", "--interval", "2s"], home, small_clip_path,
              TMPDIR=str(disk))  # fmt: skip
    try:
        lab.until(lambda: finished(lab))
        filler = fill(disk)  # Python picked this TMPDIR when it had room; now it has none
        lab.until(lambda: lab.said("the campaign stopped"))
        (line,) = lab.said("the campaign stopped")
        assert "no space left on device" in line and str(disk) in line, lab.text
        filler.unlink()
        lab.until(lambda: len(finished(lab)) >= 2)
        assert lab.interrupt() == 0, lab.text
        assert "Traceback" not in lab.text
    finally:
        lab.close()
