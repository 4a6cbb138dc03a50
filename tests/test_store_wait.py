"""A lab that waits out its stores instead of dying, and says so in one clear line.

Real servers: a PostgreSQL server of each test's own and a moto S3 server on a port of its
own, stopped in the middle of a campaign and started again; the command line in a fresh
interpreter; the dashboard over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from codeclab.campaign import Callbacks, directory_lock, run_campaign
from codeclab.config import Settings
from codeclab.media import load_clip
from codeclab.runner import Job, evaluate
from codeclab.store.artifacts import ArtifactUnavailable, LocalArtifactStore
from codeclab.store.db import ExperimentStore, StoreError, StoreUnavailable
from codeclab.store.factory import open_artifact_store, open_experiment_store
from codeclab.store.retry import StoreWait, current_wait
from tests.conftest import CODECLAB, cli
from tests.stores import PostgresServer, free_port
from tests.test_store import make_record
from tests.weblab import client_for

pytest_plugins = ("tests.stores",)
PROGRAMS = Path(__file__).parent / "programs"

LEAKS = (
    "[SQL",
    "INSERT INTO",
    "parameters",
    "sqlalche.me",
    "def encode",
    "def decode",
    "import numpy",
)
"""What a warning or an error must never print: a statement, its parameters, program text."""


def until(condition: Callable[[], object], seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def waiting_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("waiting for the store")]


def small_campaign(home: Path, clip: Path, **overrides) -> Settings:
    """Three iterations, one quality, no baselines, quick retries: seconds per run."""
    return Settings(
        home=home,
        clips=[clip],
        qualities=[30],
        baselines=[],
        iterations=3,
        store_retry_cap_s=0.5,
        **overrides,
    )


def restart_after_the_wait_begins(home: Path, start: Callable[[], None], seen: list) -> None:
    """Start the store again a little after the campaign says (on disk) that it waits."""

    def later() -> None:
        if until(lambda: current_wait(home) is not None):
            seen.append(current_wait(home))
            time.sleep(1.5)
        start()

    threading.Thread(target=later, daemon=True).start()


def test_a_campaign_waits_out_a_database_restart(own_pg, tmp_path, small_clip_path):
    url = own_pg.create_database()
    home = tmp_path / "lab"
    settings = small_campaign(home, small_clip_path, database_url=url)
    store = open_experiment_store(url, outbox_dir=settings.outbox_dir)
    said: list[str] = []
    seen: list = []

    def outage(iteration: int, name: str) -> None:
        if iteration == 2:  # the server goes away while experiment 2 runs
            own_pg.stop()
            restart_after_the_wait_begins(home, own_pg.start, seen)

    callbacks = Callbacks(on_experiment=outage, on_wait=said.append)
    result = run_campaign(
        settings,
        [load_clip(small_clip_path)],
        store,
        LocalArtifactStore(settings.artifacts_dir),
        callbacks=callbacks,
    )

    assert [(r.iteration, r.status) for r in result.experiments] == [
        (1, "ok"),
        (2, "ok"),
        (3, "ok"),
    ]
    (line,) = waiting_lines(said)
    assert "is kept in" in line and str(settings.outbox_dir) in line and "\n" not in line
    assert any(message.startswith("the store is back") for message in said)
    assert seen and "is kept in" in seen[0].reason  # what the dashboard read meanwhile
    stored = store.list()
    assert sorted(r.iteration for r in stored) == [1, 2, 3]  # each experiment once
    assert {r.experiment_id for r in stored} == {r.experiment_id for r in result.experiments}
    assert store.pending() == [] and current_wait(home) is None


class OwnS3:
    """moto's S3 server on a port of its own, which a test may stop and start again (moto
    keeps its buckets in this process, so they survive a restart)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.start()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        assert until(self.listening, 30)

    def stop(self) -> None:
        self.server.stop()

    def listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False


@pytest.fixture()
def own_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[OwnS3]:
    pytest.importorskip("moto.server")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = OwnS3()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()


@pytest.mark.parametrize("phase", ["deployment", "publish"])
def test_a_campaign_waits_out_an_s3_restart(phase, own_s3, tmp_path, small_clip_path):
    """S3 goes away as experiment 2 stores its program, or publishes its decoder."""
    import boto3

    home = tmp_path / "lab"
    bucket = f"wait-{time.time_ns()}"
    boto3.client("s3", endpoint_url=own_s3.endpoint).create_bucket(Bucket=bucket)
    settings = small_campaign(
        home, small_clip_path, artifacts_url=f"s3://{bucket}/lab", s3_endpoint_url=own_s3.endpoint
    )
    artifacts = open_artifact_store(settings)
    store = open_experiment_store(settings.db_url, outbox_dir=settings.outbox_dir)
    said: list[str] = []
    seen: list = []
    running: list[int] = []

    def outage(step: str) -> None:
        if running == [1, 2] and step == phase:
            own_s3.stop()
            restart_after_the_wait_begins(home, own_s3.start, seen)

    callbacks = Callbacks(
        on_experiment=lambda iteration, name: running.append(iteration),
        on_step=outage,
        on_wait=said.append,
    )
    result = run_campaign(
        settings, [load_clip(small_clip_path)], store, artifacts, callbacks=callbacks
    )

    # an outage is never the program's failure: every experiment ran and was published
    assert [(r.iteration, r.status) for r in result.experiments] == [
        (1, "ok"),
        (2, "ok"),
        (3, "ok"),
    ]
    for record in result.experiments:
        assert artifacts.exists(artifacts.key_of(record.artifacts.decoder))
        assert all(artifacts.exists(artifacts.key_of(b)) for b in record.artifacts.bitstreams)
    (line,) = waiting_lines(said)
    assert "artifact" in line and "finished experiments are kept" in line
    assert seen and current_wait(home) is None
    assert sorted(r.iteration for r in store.list()) == [1, 2, 3]


def test_an_outage_at_publish_is_never_recorded_as_the_program_failing(
    own_s3, tmp_path, small_clip_path
):
    """Outside a campaign nothing waits (``codeclab evaluate``): the evaluation stops with
    the outage, and no record says that the program failed."""
    import boto3

    bucket = f"eval-{time.time_ns()}"
    boto3.client("s3", endpoint_url=own_s3.endpoint).create_bucket(Bucket=bucket)
    settings = small_campaign(
        tmp_path / "lab",
        small_clip_path,
        artifacts_url=f"s3://{bucket}",
        s3_endpoint_url=own_s3.endpoint,
    )
    store = ExperimentStore(settings.db_url)
    job = Job(
        source=(PROGRAMS / "quantise_zlib.py").read_text(),
        name="quantise_zlib",
        clips=[load_clip(small_clip_path)],
        settings=settings,
        store=store,
        artifacts=open_artifact_store(settings),
        on_step=lambda step: own_s3.stop() if step == "publish" else None,
    )
    with pytest.raises(ArtifactUnavailable, match="cannot read artifact"):
        evaluate(job)
    assert store.list() == []


def lab_environment(home: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CODECLAB_HOME": str(home),
        "CODECLAB_DATABASE_URL": url,
        "CODECLAB_CONFIG": os.devnull,
        "CODECLAB_STORE_GIVE_UP_S": "2",
        "CODECLAB_STORE_RETRY_CAP_S": "0.5",
    }


def read_only(server: PostgresServer, url: str, on: bool) -> None:
    """Make the database read-only (or writable) for every session, the open ones ended."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(
        f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres", autocommit=True
    ) as connection:
        connection.execute(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}'
        )
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )


@pytest.mark.parametrize("fault", ["stopped", "read-only"])
def test_giving_up_says_so_in_one_line_and_resume_writes_what_was_kept(
    fault, own_pg, tmp_path, small_clip_path
):
    url = own_pg.create_database()
    home = tmp_path / "lab"
    env = lab_environment(home, url)
    args = ["run", "--iterations", "2", "--clip", str(small_clip_path), "--qualities", "30"]
    lab = subprocess.Popen(
        [*CODECLAB, *args, "--baselines", "none"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    assert lab.stderr is not None
    for line in lab.stderr:  # the running log, line by line
        lines.append(line.rstrip("\n"))
        if line.startswith("  1:"):  # the first experiment is stored: now the fault
            own_pg.stop() if fault == "stopped" else read_only(own_pg, url, on=True)
    assert lab.wait(timeout=120) == 2
    text = "\n".join(lines)
    assert not [leak for leak in LEAKS if leak in text], text
    (waiting,) = waiting_lines(lines)
    (error,) = [line for line in lines if line.startswith("error:")]
    assert "gave up waiting for the store" in error and "is kept in" in error, error
    assert error.endswith("`codeclab run --resume` continues when the store is back")
    if fault == "stopped":  # psycopg's two-line reason, joined, the outbox's part after it
        assert "Connection refused — Is the server running" in error
    else:
        assert "read-only transaction" in waiting and "read-only transaction" in error
    (kept,) = (home / "outbox").glob("*.json")
    assert json.loads(kept.read_text())["record"]["iteration"] == 2

    own_pg.start() if fault == "stopped" else read_only(own_pg, url, on=False)
    resumed = cli("run", "--resume", "--json", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert [e["iteration"] for e in json.loads(resumed.stdout)["experiments"]] == [1, 2]
    stored = ExperimentStore(url, outbox_dir=home / "outbox").list()
    assert sorted(r.iteration for r in stored) == [1, 2] and not kept.exists()


def test_an_unreachable_store_is_one_line_with_its_end(tmp_path):
    """Every line of the driver's reason is printed, joined: nothing is cut."""
    url = f"postgresql+psycopg://postgres:pw@127.0.0.1:{free_port()}/lab"
    done = cli("list", cwd=tmp_path, env={**os.environ, "CODECLAB_DATABASE_URL": url})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "Connection refused — Is the server running on that host" in line
    assert line.endswith("accepting TCP/IP connections?") and "pw" not in line


def test_a_refused_outbox_entry_is_logged_without_its_statement(pg_url, tmp_path, caplog):
    """A write the database refuses for its content (a name too long for its column) is
    kept, not waited for, and its warning is one line without the statement or source."""
    store = ExperimentStore(pg_url, outbox_dir=tmp_path / "outbox")
    record = make_record("eeee0001").model_copy(update={"program_name": "n" * 300})
    source = "import numpy\n\ndef encode(frames, fps, quality):\n    return b''\n"
    with pytest.raises(StoreError, match="is kept in") as refused:
        store.save(record, source)
    assert not isinstance(refused.value, StoreUnavailable)  # waiting cannot help
    with caplog.at_level(logging.WARNING):
        assert store.flush_outbox() == 0
    (warning,) = [r.getMessage() for r in caplog.records if "not written yet" in r.getMessage()]
    assert "value too long" in warning and "\n" not in warning
    assert not [leak for leak in LEAKS if leak in warning], warning


def test_the_pause_doubles_up_to_the_cap(tmp_path):
    said: list[str] = []
    pauses: list[float] = []
    wait = StoreWait(tmp_path, cap_s=4, give_up_s=600, say=said.append, sleep=pauses.append)
    failures = iter([StoreUnavailable("cannot reach the store")] * 5)

    def flaky() -> str:
        failure = next(failures, None)
        if failure:
            raise failure
        return "stored"

    assert wait.call(flaky) == "stored"
    assert pauses == [1, 2, 4, 4, 4]
    assert len(said) == 2 and said[0].startswith("waiting for the store since")
    assert said[1].startswith("the store is back")
    with pytest.raises(StoreError, match="refused"):  # an answer, not an outage: no wait
        wait.call(lambda: (_ for _ in ()).throw(StoreError("refused")))
    assert len(pauses) == 5


def test_the_dashboard_says_the_campaign_waits_for_the_store(tmp_path):
    settings = Settings(home=tmp_path / "lab")
    back = threading.Event()

    def unreachable() -> str:
        if not back.is_set():
            raise StoreUnavailable("cannot read experiments: the store failed: Connection refused")
        return "read"

    wait = StoreWait.for_settings(settings, say=lambda message: None)
    with (
        directory_lock(settings.home),  # a campaign holds the data directory: this process
        client_for(settings) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        assert "Waiting for the store" not in client.get("/").text
        waiting = pool.submit(wait.call, unreachable)

        def state() -> dict:
            return client.get("/api/campaigns/current").json()

        assert until(lambda: state()["waiting_since"] is not None, 30)
        assert "Connection refused" in state()["waiting_for"]
        page = client.get("/").text
        assert "Waiting for the store since" in page and "Connection refused" in page
        back.set()
        assert waiting.result(timeout=30) == "read"
        assert state()["waiting_since"] is None
        assert "Waiting for the store" not in client.get("/").text


def test_the_dashboard_of_a_store_that_is_down_says_why_and_that_the_campaign_waits(
    own_pg, tmp_path
):
    settings = Settings(home=tmp_path / "lab", database_url=own_pg.create_database())
    ExperimentStore(settings.db_url).save(make_record("dddd0001"), "src")
    wait = StoreWait.for_settings(settings, say=lambda message: None)
    down = threading.Event()

    def save_while_down() -> str:
        if down.is_set():
            raise StoreUnavailable("cannot save experiment dddd0002: Connection refused")
        return "saved"

    with (
        directory_lock(settings.home),
        client_for(settings) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        assert client.get("/").status_code == 200
        own_pg.stop()
        down.set()
        waiting = pool.submit(wait.call, save_while_down)
        assert until(lambda: current_wait(settings.home) is not None, 30)
        page = client.get("/")
        assert page.status_code == 503
        assert "The experiment store cannot be reached" in page.text
        assert "Waiting for the store since" in page.text and "dddd0002" in page.text
        assert own_pg.password not in page.text and "SELECT" not in page.text
        api = client.get("/api/experiments")
        assert api.status_code == 503 and "\n" not in api.json()["detail"]
        own_pg.start()
        down.clear()
        assert waiting.result(timeout=30) == "saved"
        assert client.get("/").status_code == 200


def test_a_killed_waiters_status_is_ignored_even_when_its_pid_is_reused(tmp_path):
    """A worker killed while it waited leaves its status file; a live process that got the
    same pid later is not taken for it, and the sweep removes the file."""
    from datetime import UTC, datetime

    from codeclab import scratch
    from codeclab.store.retry import WAIT_DIR, Wait, remove_dead_waits

    pid = os.getpid()  # alive: what a reused pid looks like
    stale = tmp_path / WAIT_DIR / f"{pid}.1.json"
    stale.parent.mkdir()
    old = Wait(since=datetime(2026, 1, 1, tzinfo=UTC), reason="old", pid=pid, owner=f"{pid}.1")
    stale.write_text(old.model_dump_json())
    assert current_wait(tmp_path) is None

    said: list[str] = []
    relay = StoreWait(tmp_path, cap_s=1, give_up_s=60, say=said.append)
    relay.relay()
    live = Wait(since=datetime.now(UTC), reason="now", pid=1, owner=scratch.owner())
    (tmp_path / WAIT_DIR / f"{scratch.owner()}.json").write_text(live.model_dump_json())
    relay.relay()
    assert len(said) == 1 and said[0].endswith(": now"), said  # the live wait, said once

    remove_dead_waits(tmp_path)
    assert not stale.exists() and (tmp_path / WAIT_DIR / f"{scratch.owner()}.json").exists()
