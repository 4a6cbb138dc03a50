"""Campaigns on a Ray cluster: local results, every iteration once, dead workers survived.

One small local cluster (2 CPUs, no dashboard) serves the module; campaigns join it in this
process, and the command line joins it by address. Without Ray the cluster tests are
skipped, except under CI (``CI`` set), where a missing Ray fails them instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codeclab.campaign import CampaignResult, run_campaign
from codeclab.cli import app
from codeclab.config import load_settings
from codeclab.executors import INSTALL_RAY, Executor, ExecutorError, resources_for
from codeclab.executors.factory import open_executor, shared_state_problem
from codeclab.media import load_clip
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore
from tests.conftest import CODECLAB
from tests.test_campaign import iterations_in

RUNG_TASK = b"ray::encode_rung"  # the process title Ray gives a worker encoding a rung


def ray_or_skip():
    try:
        import ray
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Ray is not installed ({exc}); CI runs the Ray tests: {INSTALL_RAY}")
        pytest.skip(f"Ray is not installed: {INSTALL_RAY}")
    return ray


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster for the module; yields its address, for the command line."""
    ray = ray_or_skip()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()


def campaign(
    home: Path, clip_path: Path, where: Executor | None = None, **overrides
) -> CampaignResult:
    """A campaign in this process, on ``where`` or on the executor the settings name."""
    settings = load_settings(
        **{"home": home, "clips": [clip_path], "qualities": [30, 70], "baselines": []} | overrides
    )
    return run_campaign(
        settings,
        [load_clip(clip_path)],
        ExperimentStore(settings.db_url),
        LocalArtifactStore(settings.artifacts_dir),
        executor=where,
    )


def fingerprint(result: CampaignResult) -> list:
    """What a deterministic program must reproduce wherever it ran: bits, pictures, scores."""
    return [
        (
            r.iteration,
            r.status,
            r.program_sha256,
            [
                (x.clip_sha256, x.quality, x.bytes, x.bitstream_sha256, x.decoded_sha256, x.psnr_y)
                for x in r.results
            ],
            {
                e: [(c.clip_sha256, [(g.crf, g.bytes, g.psnr_y) for g in c.rungs]) for c in curves]
                for e, curves in r.baselines.items()
            },
            {e: {m: b.value for m, b in by.items()} for e, by in r.bd_rate.items()},
        )
        for r in result.experiments
    ]


def test_a_ray_campaign_gives_the_local_results(cluster, home, small_clip_path, monkeypatch):
    import ray

    real_put, puts = ray.put, []
    monkeypatch.setattr(ray, "put", lambda value: puts.append(1) or real_put(value))
    on_ray = campaign(
        home, small_clip_path, iterations=2, workers=2, executor="ray", baselines=["x264"]
    )
    monkeypatch.setattr(ray, "put", real_put)
    assert [r.iteration for r in on_ray.experiments] == [1, 2]
    assert all(r.status == "ok" for r in on_ray.experiments), [r.error for r in on_ray.experiments]
    assert len(puts) == 1, "the clip goes to the object store once, for every task of the campaign"
    cached = sorted((home / "cache" / "baselines").glob("x264-*/rung.json"))
    assert cached, "the workers' baselines are in the data directory's cache"

    here = campaign(home, small_clip_path, iterations=2, workers=1, baselines=["x264"])
    assert fingerprint(on_ray) == fingerprint(here)
    assert sorted((home / "cache" / "baselines").glob("x264-*/rung.json")) == cached


class WorkerKiller(threading.Thread):
    """Kills (SIGKILL) the first Ray worker of this test process seen running a rung task."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.killed is None:
            for pid in _rung_workers():
                os.kill(pid, signal.SIGKILL)
                self.killed = pid
                break
            time.sleep(0.01)

    def __enter__(self) -> WorkerKiller:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.join()


def _rung_workers() -> list[int]:
    """Ray workers (descendants of this process, through its raylet) running a rung task."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(RUNG_TASK) and _descends_from(int(entry.name), os.getpid()):
            found.append(int(entry.name))
    return found


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return False
        pid = int(stat.rsplit(b")", 1)[1].split()[1])
        if pid == ancestor:
            return True
    return False


def test_a_killed_worker_has_its_task_run_again(cluster, home, small_clip_path):
    with WorkerKiller() as killer:
        result = campaign(home, small_clip_path, iterations=1, executor="ray", qualities=[50])
    assert killer.killed, "no rung task was caught running"
    assert [(r.iteration, r.status) for r in result.experiments] == [(1, "ok")]
    assert iterations_in(home / "codeclab.db") == [1]


def test_a_worker_lost_too_often_fails_its_experiment_not_the_campaign(
    cluster, home, small_clip_path
):
    from codeclab.executors.ray_cluster import RayExecutor

    executor = RayExecutor(retries=0)
    with WorkerKiller() as killer:
        result = campaign(home, small_clip_path, executor, iterations=2, qualities=[50])
    assert killer.killed
    assert [r.iteration for r in result.experiments] == [1, 2]
    failed = [r for r in result.experiments if r.status != "ok"]
    assert len(failed) == 1, [r.error for r in result.experiments]
    assert failed[0].status == "failed" and "lost on the Ray cluster" in failed[0].error
    assert "WorkerCrashedError" in failed[0].error
    assert iterations_in(home / "codeclab.db") == [1, 2]


def test_the_command_line_joins_a_cluster_and_resumes_after_kill_9(
    cluster, home, small_clip_path, tmp_path
):
    on_ray = ["--executor", "ray", "--ray-address", cluster]
    args = ["run", "--iterations", "2", "--clip", str(small_clip_path), "--qualities", "50"]
    victim = subprocess.Popen(
        [*CODECLAB, *args, "--baselines", "none", *on_ray],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not iterations_in(home / "codeclab.db") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert iterations_in(home / "codeclab.db") == [1], "the kill should land mid-campaign"
    # resumed in this process, whose connection to the cluster the executor reuses
    resumed = CliRunner().invoke(app, ["run", "--resume", "--json", *on_ray])
    assert resumed.exit_code == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert [(e["iteration"], e["status"]) for e in summary["experiments"]] == [(1, "ok"), (2, "ok")]
    assert iterations_in(home / "codeclab.db") == [1, 2]


def test_a_multi_node_cluster_needs_shared_stores(cluster, home, monkeypatch):
    from codeclab.executors.ray_cluster import RayExecutor

    monkeypatch.setattr(RayExecutor, "nodes", lambda self: 2)
    with pytest.raises(ExecutorError, match="2 nodes.*SQLite.*local directory"):
        open_executor(load_settings(executor="ray"))


def test_shared_stores_are_postgresql_or_dynamodb_and_s3(home):
    local = load_settings()
    assert shared_state_problem(local, nodes=1) is None
    problem = shared_state_problem(local, nodes=3)
    assert problem and "SQLite" in problem and "local directory" in problem
    shared = load_settings(
        database_url="postgresql+psycopg://lab@db.internal/codeclab",
        artifacts_url="s3://lab-bucket/codeclab",
    )
    assert shared_state_problem(shared, nodes=100) is None
    half = load_settings(artifacts_url="s3://lab-bucket/codeclab")
    assert "local directory" not in (shared_state_problem(half, nodes=2) or "SQLite missing")


def test_gpu_programs_ask_for_a_gpu():
    assert resources_for(["numpy", "scipy.fft", "zlib"]).gpus == 0
    assert resources_for(["numpy", "torch.nn.functional"]).gpus == 1
    assert resources_for(["cupy"]).cpus == 1


def test_without_ray_the_executor_says_how_to_install_it(home, small_clip_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError, as if absent
    args = ["run", "--iterations", "1", "--clip", str(small_clip_path), "--executor", "ray"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 2
    assert INSTALL_RAY in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert iterations_in(home / "codeclab.db") == []
    mixed = CliRunner().invoke(app, ["run", "--ray-address", "10.0.0.1:6379"])
    assert mixed.exit_code == 2 and "--executor ray" in mixed.stderr


def test_an_address_where_nothing_listens_fails_at_once():
    from codeclab.executors.ray_cluster import _check_listening

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ExecutorError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        _check_listening(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 5
