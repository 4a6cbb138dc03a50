"""The soak bench's core: an unattended lab, faults on a seeded schedule, and the audit.

A ``codeclab run --forever --interval 1s`` lab (the real command line, in a process of its
own) runs a tiny workload (four 96x64 frames of the sample clip, two qualities, no
baselines, ``--workers 2``) on a PostgreSQL server and the local or S3 (moto) artifact store
of the bench's own, while the faults of :mod:`benchmarks.soak_faults` hit it one at a time.
The bench supervises the lab as a service manager would: after its own ``kill -9`` it starts
``run --forever --resume`` at once; when the lab ends by itself (a "lab exit": an unattended
lab must not), it starts it again after a short delay, with ``--resume`` unless that exit
finished a resumed campaign.

At the end the faults stop, the lab gets a Ctrl-C (SIGINT to its process group), then
``codeclab run --resume`` finishes the last campaign and writes what the outbox kept. Then:

- **lost**: iterations the lab printed as finished (``  N: program: status`` lines), per
  campaign, that the store lacks; plus outbox entries left pending whose experiment the
  store lacks.
- **doubled**: stored rows beyond the first per (campaign, iteration), plus iterations the
  lab printed as finished more than once.
- **orphaned**: artifact files no record references (``decoders/by-program/SHA.py`` counts
  as referenced while a record of that program references a decoder), plus whatever is
  left in the lab's own temporary directory (sandbox and other work directories).
- **missing**: artifacts a record references that are not there.
- **longest silence**: the longest time from the lab's last progress (a finished
  experiment printed, a new row in the store, or a (re)start) to its next progress or to a
  line saying why it waits (an error, "waiting", "retrying", "next campaign", ...).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.soak_faults import (
    BUCKET,
    CREDENTIALS,
    KINDS,
    Fault,
    S3Server,
    Tmpfs,
    cmdline,
    kill9,
    pool_workers,
    session_processes,
)

FINISHED = re.compile(r"^  (\d+): \S+: \w+")
RESUMING = re.compile(r"^resuming campaign ([0-9a-f-]{36})")
TITLE = re.compile(r"^\s*campaign ([0-9a-f-]{36})\s*$")
NEXT = re.compile(r"^next campaign in ")
REASON = re.compile(
    r"wait|retr(y|ies|ying)|unreachable|unavailable|cannot|error|refused|no space|disk|full"
    r"|stopped|resum|kept|next campaign|down|timed out",
    re.IGNORECASE,
)


@dataclass
class SoakConfig:
    """What to run: how long, which faults, how often and for how long each outage lasts."""

    seconds: float = 1800.0
    seed: int = 0
    faults: tuple[str, ...] = KINDS
    store: str = "local"  # or "s3"
    rounds: int | None = None  # stop after this many faults of each kind (None: the clock)
    gap_s: tuple[float, float] = (15.0, 30.0)  # between the end of a fault and the next
    outage_s: tuple[float, float] = (5.0, 30.0)  # how long a server is down, a disk full
    settle_s: float = 15.0  # after the last of ``rounds``: the lab must show progress
    iterations: int = 4  # per campaign
    workers: int = 2
    disk_mb: int = 64
    restart_delay_s: float = 2.0  # before starting a lab that ended by itself
    final_timeout_s: float = 300.0
    log: Path | None = None  # every line of the lab and of the bench, timestamped

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind {unknown[0]!r}: choose from {', '.join(KINDS)}")
        if self.store not in ("local", "s3"):
            raise ValueError(f"--store must be local or s3, got {self.store!r}")
        if "s3" in self.faults and self.store != "s3":
            raise ValueError("the s3 fault needs --store s3")


@dataclass
class SoakReport:
    """The soak's figures; ``lost``, ``doubled``, ``orphaned`` and ``missing`` must be 0."""

    store: str
    seed: int
    seconds: float
    experiments: int  # rows in the store at the end
    claimed: int  # iterations the lab printed as finished
    faults: dict[str, int]  # injected, per kind
    lost: int
    doubled: int
    orphaned: int
    missing: int
    longest_silence_s: float
    silence_at: str  # when, and the last line before it
    median_progress_gap_s: float  # the lab's usual pace, to read the silence against
    lab_exits: int  # times the lab ended by itself
    clean_shutdown: bool  # the lab stopped on Ctrl-C within a minute
    final_rc: int | None  # the exit status of the final ``run --resume``
    stray_processes: int  # processes of the lab still alive after it was done
    outbox_rejected: int  # entries the store refused for good (kept for a person)
    unattributed: int  # printed finishes the bench could not place in a campaign
    details: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Line:
    t: float  # seconds since the soak began
    wall: float  # time.time()
    pid: int  # the lab process that printed it (0: the bench itself)
    stream: str
    text: str


class Screen:
    """Every line the lab prints and every event the bench sees, timestamped, in order."""

    def __init__(self, log: Path | None) -> None:
        self.start = time.monotonic()
        self.lines: list[Line] = []
        self.events: list[tuple[float, str, str]] = []  # (t, progress|reason|start|end, what)
        self._lock = threading.Lock()
        self._log = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115

    def now(self) -> float:
        return time.monotonic() - self.start

    def add(self, pid: int, stream: str, text: str) -> None:
        line = Line(self.now(), time.time(), pid, stream, text.rstrip())
        with self._lock:
            self.lines.append(line)
            if pid and FINISHED.match(line.text):
                self.events.append((line.t, "progress", line.text))
            elif pid and REASON.search(line.text):
                self.events.append((line.t, "reason", line.text))
            if self._log:
                self._log.write(f"{line.t:9.2f} {pid or 'bench':>6} {stream}: {line.text}\n")
                self._log.flush()

    def event(self, kind: str, what: str) -> None:
        with self._lock:
            self.events.append((self.now(), kind, what))

    def note(self, text: str) -> None:
        """A line of the bench's own (faults, restarts), for the log."""
        self.add(0, "bench", text)

    def close(self) -> None:
        if self._log:
            self._log.close()


@dataclass
class Run:
    """One lab process: when it started and ended (wall clock), and how."""

    pid: int
    resumed: bool
    started: float
    ended: float | None = None
    rc: int | None = None


class Lab:
    """The lab under test, supervised: started again when it ends, as a service would be."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path, screen: Screen):
        self.command, self.env, self.cwd, self.screen = command, env, cwd, screen
        self.runs: list[Run] = []
        self.exits: list[str] = []  # the last line before each exit the bench did not cause
        self.restart_delay_s = 2.0
        self._proc: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._expected = False  # the next exit is the bench's own kill -9
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else 0

    @property
    def sessions(self) -> set[int]:
        return {run.pid for run in self.runs}

    def start(self, *, resume: bool, forever: bool = True) -> subprocess.Popen[str]:
        flags = (["--forever", "--interval", "1s"] if forever else []) + (
            ["--resume"] if resume else []
        )
        proc = subprocess.Popen(
            [*self.command, *flags],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a process group of its own, for Ctrl-C and the audit
        )
        self._readers = [self._read(proc, proc.stdout, "out"), self._read(proc, proc.stderr, "err")]
        self.runs.append(Run(proc.pid, resume, time.time()))
        self.screen.event("start", f"pid {proc.pid}{' --resume' if resume else ''}")
        self.screen.note(f"started the lab: pid {proc.pid}{' --resume' if resume else ''}")
        self._proc = proc
        return proc

    def _read(self, proc: subprocess.Popen[str], pipe, stream: str) -> threading.Thread:
        def pump() -> None:
            for text in pipe:
                self.screen.add(proc.pid, stream, text)

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        return thread

    def supervise(self) -> None:
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                rc = self._proc.poll() if self._proc else None
                if rc is not None:
                    self._ended(rc)
                    expected, self._expected = self._expected, False
            if rc is None:
                time.sleep(0.1)
                continue
            if not expected:
                time.sleep(self.restart_delay_s)
            with self._lock:
                if not self._stopping.is_set():
                    self.start(resume=expected or self._should_resume(rc))

    def _ended(self, rc: int) -> None:
        for reader in self._readers:  # a pool process the lab left may hold its pipes
            reader.join(timeout=0.2 if self._expected else 2)
        run = self.runs[-1]
        run.ended, run.rc = time.time(), rc
        if not self._expected:
            last = self._last_line(run.pid)
            self.exits.append(f"pid {run.pid} exit {rc}: {last}")
            self.screen.note(f"the lab ended by itself (exit {rc}): {last}")

    def _last_line(self, pid: int) -> str:
        mine = [line.text for line in self.screen.lines if line.pid == pid and line.text.strip()]
        return mine[-1].strip() if mine else "(nothing printed)"

    def _should_resume(self, rc: int) -> bool:
        """Resume, unless the exit finished a resumed campaign or found none to resume."""
        said = " ".join(line.text for line in self.screen.lines if line.pid == self.pid)
        return rc != 0 and "no campaign to resume" not in said

    def kill9(self) -> int | None:
        """``kill -9`` of the campaign process (the supervisor resumes it at once)."""
        with self._lock:
            if not self._proc or self._proc.poll() is not None:
                return None
            self._expected = True
            kill9(self._proc.pid)
            return self._proc.pid

    def stop(self, timeout: float = 60.0) -> bool:
        """Ctrl-C (SIGINT to the process group) and no restart; True if it ended in time."""
        self._stopping.set()
        self._supervisor.join(timeout=10)
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return proc is not None and proc.returncode == 0
            self._expected = True  # the bench's own Ctrl-C: not a lab exit
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout)
                clean = True
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                clean = False
            self._ended(proc.returncode)
        return clean

    def finish(self, timeout: float) -> int | None:
        """``codeclab run --resume``: the last campaign finished, the outbox written."""
        proc = self.start(resume=True, forever=False)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill9(proc.pid)
            proc.wait()
            return None
        finally:
            for reader in self._readers:
                reader.join(timeout=5)
            self.runs[-1].ended, self.runs[-1].rc = time.time(), proc.returncode
        return proc.returncode


@dataclass
class Rig:
    """What the faults act on."""

    lab: Lab
    pg: object  # tests.stores.PostgresServer
    s3: S3Server | None
    disk: Tmpfs | None  # only with the disk fault
    screen: Screen
    rng: random.Random
    outage_s: tuple[float, float]

    def outage(self) -> float:
        return self.rng.uniform(*self.outage_s)


def _down_and_up(rig: Rig, kind: str, stop: Callable[[], object], start: Callable[[], object]):
    began, hold = rig.screen.now(), rig.outage()
    stop()
    rig.screen.note(f"fault {kind}: down for {hold:.1f} s")
    time.sleep(hold)
    start()
    rig.screen.note(f"fault {kind}: back")
    return Fault(kind, began, rig.screen.now(), f"down {hold:.1f} s")


def fault_db(rig: Rig) -> Fault:
    return _down_and_up(rig, "db", rig.pg.stop, rig.pg.start)


def fault_s3(rig: Rig) -> Fault:
    assert rig.s3 is not None
    return _down_and_up(rig, "s3", rig.s3.stop, rig.s3.start)


def fault_disk(rig: Rig) -> Fault:
    began, hold = rig.screen.now(), rig.outage()
    assert rig.disk is not None  # SoakConfig mounts one for the disk fault
    written = rig.disk.fill()
    rig.screen.note(
        f"fault disk: data directory full ({written >> 20} MiB ballast) for {hold:.1f} s"
    )
    time.sleep(hold)
    rig.disk.empty()
    rig.screen.note("fault disk: ballast removed")
    return Fault("disk", began, rig.screen.now(), f"full {hold:.1f} s")


def fault_kill(rig: Rig) -> Fault:
    began = rig.screen.now()
    pid = rig.lab.kill9()
    rig.screen.note(f"fault kill: kill -9 {pid}" if pid else "fault kill: no lab running")
    return Fault("kill", began, rig.screen.now(), f"pid {pid}", injected=pid is not None)


def fault_worker(rig: Rig, wait_s: float = 30.0) -> Fault:
    """``kill -9`` of a pool process; waits for a batch to be running if none is."""
    began = rig.screen.now()
    while rig.screen.now() - began < wait_s:
        workers = pool_workers(rig.lab.pid)
        if workers and kill9(workers[0]):
            rig.screen.note(f"fault worker: kill -9 {workers[0]} (of {rig.lab.pid})")
            return Fault("worker", began, rig.screen.now(), f"pid {workers[0]}")
        time.sleep(0.2)
    rig.screen.note("fault worker: no worker process appeared")
    return Fault("worker", began, rig.screen.now(), "no worker", injected=False)


INJECT: dict[str, Callable[[Rig], Fault]] = {
    "db": fault_db,
    "s3": fault_s3,
    "kill": fault_kill,
    "worker": fault_worker,
    "disk": fault_disk,
}


def schedule(kinds: tuple[str, ...], rounds: int | None, rng: random.Random) -> Iterator[str]:
    """Every kind once per round, in a seeded random order: counts stay even."""
    done = 0
    while rounds is None or done < rounds:
        order = list(kinds)
        rng.shuffle(order)
        yield from order
        done += 1


def inject(config: SoakConfig, rig: Rig, deadline: float) -> list[Fault]:
    """Faults one at a time, a random gap apart, until the deadline (or ``rounds`` run out)."""
    faults: list[Fault] = []
    for kind in schedule(config.faults, config.rounds, rig.rng):
        gap = rig.rng.uniform(*config.gap_s)
        if rig.screen.now() + gap >= deadline:
            return faults
        time.sleep(gap)
        faults.append(INJECT[kind](rig))
    time.sleep(max(0.0, min(config.settle_s, deadline - rig.screen.now())))
    return faults


def wait_for_progress(screen: Screen, timeout: float) -> None:
    """Faults begin once the lab has finished an experiment (or after ``timeout``)."""
    began = screen.now()
    while screen.now() - began < timeout:
        if any(kind == "progress" for _, kind, _ in screen.events):
            return
        time.sleep(0.2)


class StorePoller:
    """Counts the store's experiments every second; a new row is progress."""

    def __init__(self, conninfo: str, screen: Screen) -> None:
        self.conninfo, self.screen = conninfo, screen
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psycopg

        while not self._stop.wait(1.0):
            with contextlib.suppress(psycopg.Error):
                with psycopg.connect(self.conninfo, connect_timeout=1) as connection:
                    count = connection.execute("SELECT count(*) FROM experiments").fetchone()[0]
                if count > self.count:
                    self.screen.event("progress", f"{count} experiments in the store")
                self.count = count

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- the audit --------------------------------------------------------------------------


def longest_silence(events: list[tuple[float, str, str]], end: float) -> tuple[float, str]:
    """The longest time from progress (or a start) to the next progress or reason line."""
    longest, where = 0.0, "none"
    since, explained, last = 0.0, False, "the soak began"
    for t, kind, what in sorted(events) + [(end, "progress", "the soak ended")]:
        if kind == "reason" and not explained:
            if t - since > longest:
                longest, where = t - since, f"{since:.1f}..{t:.1f} s after: {last}"
            explained = True
        elif kind in ("progress", "start"):
            if not explained and t - since > longest:
                longest, where = t - since, f"{since:.1f}..{t:.1f} s after: {last}"
            since, explained, last = t, False, what
    return round(longest, 1), where


def median_gap(events: list[tuple[float, str, str]]) -> float:
    times = sorted(t for t, kind, _ in events if kind == "progress")
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    return round(statistics.median(gaps), 1) if gaps else 0.0


@dataclass
class Claim:
    campaign: str | None
    iteration: int
    text: str


def claims(lines: list[Line], runs: list[Run], created: dict[str, datetime]) -> list[Claim]:
    """Every printed finish, placed in its campaign (see :func:`_claims_of_run`)."""
    found: list[Claim] = []
    for run in runs:
        mine = [line for line in lines if line.pid == run.pid]
        found += _claims_of_run(mine, run, created)
    return found


def _claims_of_run(lines: list[Line], run: Run, created: dict[str, datetime]) -> list[Claim]:
    """A campaign's finishes end with its table titled ``campaign ID``; a resumed one starts
    with ``resuming campaign ID``. A campaign killed before its table is the one this run
    resumed, or else the one created (in the store) while it ran."""
    found: list[Claim] = []
    pending: list[tuple[int, str]] = []
    campaign, since = None, run.started
    for line in lines:
        if match := RESUMING.match(line.text):
            campaign = match[1]
        elif match := FINISHED.match(line.text):
            pending.append((int(match[1]), line.text.strip()))
        elif match := TITLE.match(line.text):
            found += [Claim(match[1], i, text) for i, text in pending]
            pending, campaign = [], None
        elif NEXT.match(line.text):
            since = line.wall
    if pending:
        campaign = campaign or _created_between(created, since, run.ended or time.time())
        found += [Claim(campaign, i, text) for i, text in pending]
    return found


def _created_between(created: dict[str, datetime], start: float, end: float) -> str | None:
    inside = [
        (when, cid)
        for cid, when in created.items()
        if start - 1 <= when.replace(tzinfo=when.tzinfo or UTC).timestamp() <= end + 1
    ]
    return max(inside)[1] if inside else None


def stored_rows(conninfo: str) -> tuple[list[tuple[str, str, int]], dict[str, datetime]]:
    """(experiment id, campaign id, iteration) of every row, and each campaign's creation."""
    import psycopg

    with psycopg.connect(conninfo) as connection:
        rows = connection.execute("SELECT id, campaign_id, iteration FROM experiments").fetchall()
        created = dict(connection.execute("SELECT id, created_at FROM campaigns").fetchall())
    return [tuple(row) for row in rows], created


def lost_and_doubled(
    found: list[Claim], rows: list[tuple[str, str, int]], outbox: Path
) -> tuple[list[str], list[str]]:
    stored = {(campaign, iteration) for _, campaign, iteration in rows}
    ids = {eid for eid, _, _ in rows}
    lost = [
        f"{c.campaign} iteration {c.iteration}: printed '{c.text}', not stored"
        for c in found
        if c.campaign and (c.campaign, c.iteration) not in stored
    ]
    lost += [
        f"outbox entry {p.name} never written" for p in outbox.glob("*.json") if p.stem not in ids
    ]
    per_iteration = Counter((campaign, iteration) for _, campaign, iteration in rows)
    per_id = Counter(eid for eid, _, _ in rows)
    printed = Counter((c.campaign, c.iteration) for c in found if c.campaign)
    doubled = [f"{k[0]} iteration {k[1]}: {n} rows" for k, n in per_iteration.items() if n > 1]
    doubled += [f"experiment {k}: {n} rows" for k, n in per_id.items() if n > 1]
    doubled += [f"{k[0]} iteration {k[1]}: printed {n} times" for k, n in printed.items() if n > 1]
    return lost, doubled


def referenced_keys(records: list, base: str) -> set[str]:
    """The artifact keys the records reference, ``base`` (a directory or s3://bucket/prefix)
    cut off; a published program's ``decoders/by-program`` copy is referenced through it."""
    keys: set[str] = set()
    for record in records:
        a = record.artifacts
        for location in [a.reconstructed, a.decoder, a.program, a.package, *a.bitstreams]:
            if location:
                keys.add(location.removeprefix(base).lstrip("/"))
        if a.decoder:
            keys.add(f"decoders/by-program/{record.program_sha256}.py")
    return keys


def local_keys(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def s3_keys(s3: S3Server, prefix: str) -> set[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"].removeprefix(prefix) for page in pages for o in page.get("Contents", [])}


def leftovers(folder: Path) -> Iterator[Path]:
    """What is left in a temporary directory: files, and directories holding a file; a
    directory of directories (the lab's temporary root) is looked into, an empty one holds
    nothing."""
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            inside = list(entry.iterdir())
            if inside and all(p.is_dir() and not p.is_symlink() for p in inside):
                yield from leftovers(entry)
                continue
            if not inside:
                continue
        yield entry


def orphans_and_missing(
    records: list, stored: set[str], base: str, tmpdir: Path
) -> tuple[list[str], list[str]]:
    referenced = referenced_keys(records, base)
    orphans = [f"artifact {key}" for key in sorted(stored - referenced)]
    orphans += [f"temporary {p.relative_to(tmpdir)}" for p in leftovers(tmpdir)]
    missing = [f"artifact {key}" for key in sorted(referenced - stored)]
    return orphans, missing


# -- the soak ---------------------------------------------------------------------------


def write_clip(folder: Path) -> Path:
    """Four frames of a 96x64 window of the sample, where cars move: a quick experiment."""
    from codeclab.config import SAMPLE_CLIP
    from codeclab.media import load_clip, write_y4m
    from tests.conftest import crop

    sample = load_clip(SAMPLE_CLIP, max_frames=4)
    frames = [crop(frame, 96, 64, 112, 96) for frame in sample.frames]
    return write_y4m(folder / "cars_96x64.y4m", frames, sample.fps)


def lab_env(home: Path, tmpdir: Path, db_url: str, s3: S3Server | None) -> dict[str, str]:
    """The lab's environment: its own data directory, database, temporary directory and
    (with S3) bucket and dummy credentials; no CODECLAB_* setting of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODECLAB_", "AWS_"))}
    env |= {
        "CODECLAB_HOME": str(home),
        "CODECLAB_DATABASE_URL": db_url,
        "TMPDIR": str(tmpdir),
        "PYTHONUNBUFFERED": "1",
    }
    if s3:
        env |= {
            "CODECLAB_ARTIFACTS_URL": f"s3://{BUCKET}/lab",
            "CODECLAB_S3_ENDPOINT_URL": s3.endpoint,
            **CREDENTIALS,
        }
    return env


def lab_command(config: SoakConfig, clip: Path) -> list[str]:
    return [
        sys.executable, "-m", "codeclab", "run",
        "--clip", str(clip), "--qualities", "30,70", "--baselines", "none",
        "--iterations", str(config.iterations), "--workers", str(config.workers),
        "--seed", str(config.seed),
    ]  # fmt: skip


def conninfo(pg) -> tuple[str, str]:
    """A fresh database: its SQLAlchemy URL (for the lab) and libpq string (for the audit)."""
    url = pg.create_database()
    name = url.rsplit("/", 1)[1]
    return url, f"host=127.0.0.1 port={pg.port} user=postgres dbname={name}"


def run_soak(config: SoakConfig) -> SoakReport:
    """Run the lab under faults for ``config.seconds``, stop it, resume it, audit it."""
    from tests.stores import postgres_server

    screen = Screen(config.log)
    root = Path(tempfile.mkdtemp(prefix="codeclab-soak-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        stack.callback(screen.close)
        pg = stack.enter_context(postgres_server())
        db_url, libpq = conninfo(pg)
        s3 = S3Server() if config.store == "s3" else None
        if s3:
            stack.callback(s3.stop)
            s3.client().create_bucket(Bucket=BUCKET)
        disk = Tmpfs(root / "data", config.disk_mb) if "disk" in config.faults else None
        if disk:
            stack.callback(disk.unmount)
        data = disk.path if disk else root / "data"
        data.mkdir(exist_ok=True)
        tmpdir = root / "tmp"
        tmpdir.mkdir()
        env = lab_env(data, tmpdir, db_url, s3)
        lab = Lab(lab_command(config, write_clip(root)), env, root, screen)
        lab.restart_delay_s = config.restart_delay_s
        return _soak(config, lab, Rig(lab, pg, s3, disk, screen, random.Random(config.seed),
                                      config.outage_s), libpq, tmpdir)  # fmt: skip


def _soak(config: SoakConfig, lab: Lab, rig: Rig, libpq: str, tmpdir: Path) -> SoakReport:
    screen = rig.screen
    lab.start(resume=False)
    lab.supervise()
    poller = StorePoller(libpq, screen)
    wait_for_progress(screen, timeout=60)
    faults = inject(config, rig, deadline=config.seconds)
    end = screen.now()
    poller.stop()
    screen.note("stopping the lab (Ctrl-C)")
    clean = lab.stop()
    screen.note("finishing: codeclab run --resume")
    final_rc = lab.finish(config.final_timeout_s)
    strays = [f"pid {pid}: {cmdline(pid)[:120]}" for pid in session_processes(lab.sessions)]
    for pid in session_processes(lab.sessions):
        kill9(pid)
    return audit(config, lab, rig, libpq, tmpdir, faults, end, clean, final_rc, strays)


def audit(
    config: SoakConfig,
    lab: Lab,
    rig: Rig,
    libpq: str,
    tmpdir: Path,
    faults: list[Fault],
    end: float,
    clean: bool,
    final_rc: int | None,
    strays: list[str],
) -> SoakReport:
    """The figures, from the store, the artifact store, the data directory and the screen."""
    from codeclab.store.db import ExperimentStore

    rows, created = stored_rows(libpq)
    found = claims(rig.screen.lines, lab.runs, created)
    home = Path(lab.env["CODECLAB_HOME"])
    lost, doubled = lost_and_doubled(found, rows, home / "outbox")
    url = lab.env["CODECLAB_DATABASE_URL"]
    records = ExperimentStore(url, outbox_dir=tmpdir.parent / "audit-outbox").list()
    if rig.s3:
        base, stored = f"s3://{BUCKET}/lab/", s3_keys(rig.s3, "lab/")
    else:
        base = str((home / "artifacts").resolve()) + "/"
        stored = local_keys(home / "artifacts")
    orphans, missing = orphans_and_missing(records, stored, base, tmpdir)
    silence, where = longest_silence(rig.screen.events, end)
    rejected = list((home / "outbox" / "rejected").glob("*.json"))
    return SoakReport(
        store=config.store,
        seed=config.seed,
        seconds=round(end, 1),
        experiments=len(rows),
        claimed=len(found),
        faults=dict(Counter(f.kind for f in faults if f.injected)),
        lost=len(lost),
        doubled=len(doubled),
        orphaned=len(orphans),
        missing=len(missing),
        longest_silence_s=silence,
        median_progress_gap_s=median_gap(rig.screen.events),
        silence_at=where,
        lab_exits=len(lab.exits),
        clean_shutdown=clean,
        final_rc=final_rc,
        stray_processes=len(strays),
        outbox_rejected=len(rejected),
        unattributed=sum(1 for c in found if c.campaign is None),
        details={
            "lost": lost,
            "doubled": doubled,
            "orphaned": orphans,
            "missing": missing,
            "lab_exits": lab.exits,
            "stray_processes": strays,
            "faults_not_injected": [f"{f.kind}: {f.detail}" for f in faults if not f.injected],
        },
    )
