"""An unattended lab rides out what kills its parts: a lost pool worker, a kill -9 of the
campaign, Ctrl-C, a store that is down when the lab starts or for longer than it waits.

Real processes throughout: the command line in a fresh interpreter (``--workers 2``: a
spawned process pool), real PostgreSQL servers of the tests' own where the database matters,
the processes found and killed through /proc. Each campaign is a few experiments on four
96x64 frames, one quality, no baselines: seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.soak import FINISHED
from benchmarks.soak_faults import children, cmdline, kill9, pool_workers
from codeclab import scratch
from codeclab.campaign import Workers, _unfinished
from codeclab.config import Settings
from codeclab.design.evolve import Proposal
from codeclab.record import ExperimentRecord, Reasoning
from codeclab.store.db import ExperimentStore
from codeclab.store.outbox import Outbox
from tests.conftest import CODECLAB

pytest_plugins = ("tests.stores",)
TRACEBACK = ("Traceback", "KeyboardInterrupt", "BrokenProcessPool")


class Lab:
    """``codeclab run ...`` in a session of its own, its standard error read line by line."""

    def __init__(self, args: list[str], home: Path, clip: Path, **env: str) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "CODECLAB_HOME": str(home),
            "CODECLAB_CONFIG": os.devnull,
            "CODECLAB_STORE_RETRY_CAP_S": "0.5",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        command = [*CODECLAB, "run", "--clip", str(clip), "--qualities", "30"]
        self.proc = subprocess.Popen(
            [*command, "--baselines", "none", *args],
            cwd=home.parent,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def said(self, start: str) -> list[str]:
        return [line for line in self.lines if line.startswith(start)]

    def until(self, condition: Callable[[], object], seconds: float = 90.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if self.proc.poll() is not None and not condition():
                raise AssertionError(f"the lab ended ({self.proc.returncode}): {self.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the lab said: {self.text}")
            time.sleep(0.05)

    def wait(self, seconds: float = 120.0) -> int:
        code = self.proc.wait(seconds)
        self._reader.join(5)
        return code

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.wait(60)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture()
def labs() -> Iterator[list[Lab]]:
    started: list[Lab] = []
    yield started
    for lab in started:
        lab.close()


def finished(lab: Lab) -> list[str]:
    """The running log's finished experiments (``  N: program: status ...``)."""
    return [line for line in lab.lines if FINISHED.match(line)]


def busy(lab: Lab) -> tuple[int, dict[int, str]]:
    """A pool worker of the lab whose sandbox runs, and every process below the lab then."""
    found: list[tuple[int, dict[int, str]]] = []

    def sandboxing() -> bool:
        below = descendants(lab.proc.pid)
        for pid in pool_workers(lab.proc.pid):
            if any("bwrap" in below.get(child, "") for child in children(pid)):
                found[:] = [(pid, below)]
                return True
        return False

    lab.until(sandboxing)
    return found[0]


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` now, with its command line."""
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            todo.append(child)
            if line := cmdline(child):  # not a zombie: it ended already
                found[child] = line
    return found


def still_alive(processes: dict[int, str], seconds: float = 10.0) -> list[str]:
    """Those of ``processes`` alive after ``seconds`` (or as soon as none is): a process of
    that pid with another command line is another process."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [f"{pid}: {line[:100]}" for pid, line in processes.items() if cmdline(pid) == line]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def stored(url: str, home: Path) -> list[ExperimentRecord]:
    return ExperimentStore(url, outbox_dir=home / "outbox").list()


def test_a_resumed_forever_lab_goes_on_with_new_campaigns(tmp_path, small_clip_path, labs):
    home = tmp_path / "lab"
    first = Lab(["--iterations", "1"], home, small_clip_path)
    labs.append(first)
    assert first.wait() == 0, first.text
    lab = Lab(["--resume", "--forever", "--interval", "0s"], home, small_clip_path)
    labs.append(lab)
    lab.until(lambda: lab.said("next campaign in") and len(finished(lab)) >= 1)
    assert lab.interrupt() == 0, lab.text
    url = f"sqlite:///{home / 'codeclab.db'}"
    assert len({r.campaign_id for r in stored(url, home)}) >= 2, lab.text


def test_a_lost_worker_is_said_in_one_line_and_its_experiments_run_again(
    tmp_path, small_clip_path, labs
):
    home = tmp_path / "lab"
    lab = Lab(["--iterations", "2", "--workers", "2"], home, small_clip_path)
    labs.append(lab)
    kill9(busy(lab)[0])
    assert lab.wait() == 0, lab.text
    assert not [word for word in TRACEBACK if word in lab.text], lab.text
    (line,) = lab.said("a pool worker was lost")
    assert "not the program's" in line and "runs iteration" in line
    records = stored(f"sqlite:///{home / 'codeclab.db'}", home)
    assert sorted(r.iteration for r in records) == [1, 2], lab.text
    assert {r.status for r in records} == {"ok"}
    assert sorted(int(x.split(":")[0]) for x in finished(lab)) == [1, 2]


def test_no_process_of_a_killed_lab_lives_on(tmp_path, small_clip_path, labs):
    """kill -9 of the campaign: its pool workers, their sandboxes and multiprocessing's
    resource tracker end too (a worker left alive could save an experiment the resumed
    lab runs again)."""
    lab = Lab(["--iterations", "4", "--workers", "2"], tmp_path / "lab", small_clip_path)
    labs.append(lab)
    _, below = busy(lab)
    assert any("resource_tracker" in line for line in below.values()), below
    assert any("bwrap" in line for line in below.values()), below  # a sandbox at work
    kill9(lab.proc.pid)
    lab.wait()
    assert still_alive(below) == []


def test_ctrl_c_stops_the_pool_without_a_traceback(tmp_path, small_clip_path, labs):
    """Ctrl-C while one worker runs the last experiment and the other waits for work."""
    lab = Lab(["--iterations", "3", "--workers", "2"], tmp_path / "lab", small_clip_path)
    labs.append(lab)
    lab.until(lambda: len(finished(lab)) == 2)
    _, below = busy(lab)
    assert lab.interrupt() == 0, lab.text
    assert not [word for word in TRACEBACK if word in lab.text], lab.text
    assert lab.said("stopped: the lab is idle")
    assert still_alive(below) == []


def test_the_lab_waits_for_a_database_that_is_down_when_it_starts(
    own_pg, tmp_path, small_clip_path, labs
):
    url = own_pg.create_database()
    own_pg.stop()
    home = tmp_path / "lab"
    lab = Lab(["--iterations", "2"], home, small_clip_path, CODECLAB_DATABASE_URL=url)
    labs.append(lab)
    lab.until(lambda: lab.said("waiting for the store"))
    own_pg.start()
    assert lab.wait() == 0, lab.text
    (line,) = lab.said("waiting for the store")
    assert "cannot open the experiment store" in line and "Connection refused" in line
    assert sorted(r.iteration for r in stored(url, home)) == [1, 2]


def test_a_forever_lab_that_gives_up_goes_on_with_the_next_campaign(
    own_pg, tmp_path, small_clip_path, labs
):
    """The database stays down longer than the lab waits: the campaign stops, the lab does
    not; the experiment the outage kept is written when the next campaign starts."""
    url = own_pg.create_database()
    home = tmp_path / "lab"
    give_up = {"CODECLAB_DATABASE_URL": url, "CODECLAB_STORE_GIVE_UP_S": "2"}
    lab = Lab(["--iterations", "2", "--forever", "--interval", "1s"], home, small_clip_path,
              **give_up)  # fmt: skip
    labs.append(lab)
    lab.until(lambda: finished(lab))
    own_pg.stop()  # while experiment 2 runs
    lab.until(lambda: lab.said("the campaign stopped: gave up waiting for the store"))
    own_pg.start()
    lab.until(lambda: len(finished(lab)) >= 3)  # the next campaign's first experiment
    assert lab.interrupt() == 0, lab.text
    (line,) = lab.said("the campaign stopped")
    assert "is kept in" in line and "\n" not in line
    records = stored(url, home)
    first = records[0].campaign_id
    assert sorted(r.iteration for r in records if r.campaign_id == first) == [1, 2]
    assert len({r.campaign_id for r in records}) == 2
    assert not list((home / "outbox").glob("*.json"))


def test_an_outage_is_one_line_however_many_workers_wait(own_pg, tmp_path, small_clip_path, labs):
    url = own_pg.create_database()
    home = tmp_path / "lab"
    lab = Lab(["--iterations", "4", "--workers", "2"], home, small_clip_path,
              CODECLAB_DATABASE_URL=url)  # fmt: skip
    labs.append(lab)
    busy(lab)
    own_pg.stop()  # both workers meet it as they save (the campaign's process waits on them)
    lab.until(lambda: lab.said("waiting for the store"))
    time.sleep(3)  # every worker has met the outage by now
    own_pg.start()
    assert lab.wait() == 0, lab.text
    assert len(lab.said("waiting for the store")) == 1, lab.text
    assert sorted(r.iteration for r in stored(url, home)) == [1, 2, 3, 4]


# -- a worker lost after it saved its experiment ----------------------------------------


def save_then_die(designer, proposal, iteration, campaign_id, seconds, settings, clips, cascade):
    """A pool task: saves its experiment, then its worker dies before it can say so (once
    per iteration; a marker in the data directory remembers)."""
    store = ExperimentStore(settings.db_url, outbox_dir=settings.outbox_dir)
    marker = settings.home / f"died-{iteration}"
    if marker.exists():
        return store.list(campaign_id=campaign_id)[iteration - 1]
    record = _unfinished(proposal, designer, campaign_id, iteration, settings, "ok", "run", "")
    store.save(record, proposal.source)
    marker.touch()
    os.kill(os.getpid(), signal.SIGKILL)


def always_die(*job):
    os.kill(os.getpid(), signal.SIGKILL)


def jobs(settings: Settings, campaign_id: str, iterations: list[int]) -> dict[int, tuple]:
    proposal = Proposal("def encode(f, fps, q):\n    return b''\n", "p", None, Reasoning())
    return {i: ("evolve", proposal, i, campaign_id, 0.0, settings, [], None) for i in iterations}


def run_one(tmp_path, task) -> tuple[ExperimentStore, dict, list[str]]:
    """Iteration 1 of campaign c1 on a pool of one worker running ``task``: the store, the
    records and what the lab said."""
    settings = Settings(home=tmp_path / "lab")
    settings.home.mkdir()
    store = ExperimentStore(settings.db_url, outbox_dir=settings.outbox_dir)
    store.add_campaign("c1", "evolve", 0, 1, {})
    said: list[str] = []
    workers = Workers(1, task=task)
    try:
        records = workers.run(jobs(settings, "c1", [1]), store, said.append, lambda: None)
    finally:
        workers.close(abort=False)
    return store, records, said


def held_back(designer, proposal, iteration, campaign_id, _, settings, *rest):
    """Iteration 1 ends once the test lets it (a file), the others at once."""
    deadline = time.monotonic() + 60
    while iteration == 1 and not (settings.home / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return _unfinished(proposal, designer, campaign_id, iteration, settings, "ok", "run", "")


def test_a_worker_that_finishes_takes_the_next_job_while_another_still_runs(tmp_path):
    """The pool hands each record back as its experiment ends: a campaign proposes the next
    candidate then, instead of waiting for the slowest of a batch."""
    settings = Settings(home=tmp_path / "lab")
    settings.home.mkdir()
    store = ExperimentStore(settings.db_url)
    workers = Workers(2, task=held_back)
    try:
        for iteration, job in jobs(settings, "c1", [1, 2]).items():
            workers.submit(iteration, job)
        assert list(workers.next_done(store, print, lambda: None)) == [2]
        workers.submit(3, jobs(settings, "c1", [3])[3])
        assert list(workers.next_done(store, print, lambda: None)) == [3]
        assert list(workers.running) == [1]  # still held back, all along
        (settings.home / "go").touch()
        assert list(workers.next_done(store, print, lambda: None)) == [1]
    finally:
        workers.close(abort=True)


def test_an_experiment_saved_before_its_worker_died_is_not_run_or_saved_again(tmp_path):
    store, records, said = run_one(tmp_path, save_then_die)
    assert [r.iteration for r in store.list(campaign_id="c1")] == [1]
    assert records[1].experiment_id == store.list(campaign_id="c1")[0].experiment_id
    assert said == []  # nothing ran again


def test_an_experiment_that_loses_its_worker_every_time_fails_with_the_reason(tmp_path):
    store, records, said = run_one(tmp_path, always_die)
    assert len(said) == 2 and "runs iteration 1 again" in said[0]  # after tries 1 and 2
    assert records[1].status == "failed" and records[1].phase == "execution"
    assert "pool worker was lost 3 times" in records[1].error
    assert [r.experiment_id for r in store.list(campaign_id="c1")] == [records[1].experiment_id]


# -- the outbox after a kill mid-write ----------------------------------------------------


def test_the_outbox_removes_what_a_kill_left_mid_write_and_never_lists_it(tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    write = (
        "import sys; from pathlib import Path; from codeclab import scratch; "
        "handle, path = scratch.make_file(Path(sys.argv[1])); print(path)"
    )  # a process that dies with its temporary file still there, as a kill leaves it
    done = subprocess.run([sys.executable, "-c", write, str(outbox)], capture_output=True)
    dead = Path(done.stdout.decode().strip())
    _, live = scratch.make_file(outbox)  # this process's: being written now
    (outbox / ".tmp-k2j4x1.json").write_text('{"record": ')  # as older labs named them
    assert dead.exists() and dead.name.startswith(".tmp-")
    opened = Outbox(outbox)
    assert not dead.exists() and live.exists()
    assert opened.pending() == []


def test_ctrl_c_stops_a_lab_that_waits_for_the_store(own_pg, tmp_path, small_clip_path, labs):
    url = own_pg.create_database()
    home = tmp_path / "lab"
    args = ["--iterations", "4", "--workers", "2", "--forever", "--interval", "1s"]
    lab = Lab(args, home, small_clip_path, CODECLAB_DATABASE_URL=url)
    labs.append(lab)
    lab.until(lambda: finished(lab))
    own_pg.stop()
    lab.until(lambda: lab.said("waiting for the store"))
    started = time.monotonic()
    assert lab.interrupt() == 0, lab.text
    assert time.monotonic() - started < 30, lab.text
    assert lab.said("stopped: the lab is idle"), lab.text
