"""A campaign: the designer proposes, the runner measures, the store remembers; repeat.

The designer sees every finished experiment of the campaign (and the sources by hash) before
it proposes the next program, so each proposal can learn from all results so far. With
``workers > 1`` that many experiments run at once, by a local process pool or, with
``executor = "ray"``, by threads of this process that each fan their experiment's rungs out
as Ray tasks (:mod:`codeclab.executors`); as soon as one ends, the designer, having seen it,
proposes the next (asynchronously, as AlphaEvolve does: the evaluation cascade makes one
experiment take 20 seconds and the next three minutes, and a batch would leave a worker
idle while the slowest ran). Proposals so depend on the order experiments end in. The
designer stays here; a pool process saves the experiment it ran through its own store
connection, and each experiment is saved once (a rerun after a lost worker keeps what the
store already has).

A campaign holds a lock on its data directory (one campaign per directory at a time) and can
be resumed after a crash: experiments are written whole or not at all, so the iterations
that finished are kept and the interrupted one runs again under the same number. While a
store cannot be reached the campaign waits for it (:mod:`codeclab.store.retry`), up to
``store_give_up_s``. A pool worker that dies (killed, out of memory) is the lab's fault, not
the program's: the campaign says so, starts the pool again and runs the experiments that
worker took down again, under the same numbers; pool workers die with the campaign.
"""

from __future__ import annotations

import ctypes
import fcntl
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures as cf
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from codeclab.cascade import Cascade, cascade_for, evaluate_cascaded
from codeclab.config import Settings
from codeclab.design.evolve import EvolveDesigner, Proposal, fitness, program_sha256
from codeclab.design.llm import BudgetExhausted, DesignRejected
from codeclab.evaluate import bdrate, rd, testsets
from codeclab.executors import Executor
from codeclab.executors.factory import open_executor
from codeclab.executors.local import LOCAL
from codeclab.media import Clip
from codeclab.ranking import leaderboard
from codeclab.record import ExperimentRecord, PhaseRecord, Reasoning
from codeclab.runner import Job, validation_error
from codeclab.store.artifacts import ArtifactStore
from codeclab.store.db import ExperimentStore
from codeclab.store.factory import open_artifact_store, open_experiment_store
from codeclab.store.retry import StoreWait, WaitingStore, say_nothing, say_on_stderr
from codeclab.store.sweep import sweep

LOST_WORKER_TRIES = 3
"""Runs of an experiment that may end with its pool worker lost; then it fails with that
reason, as a Ray task whose worker dies too often does (:class:`codeclab.executors.WorkerLost`)."""
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class CampaignError(RuntimeError):
    """A campaign cannot start: another one holds the directory, or nothing to resume."""


@dataclass
class CampaignResult:
    campaign_id: str
    experiments: list[ExperimentRecord] = field(default_factory=list)
    stopped: str | None = None  # why the campaign ended early (an LLM budget), if it did

    @property
    def best(self) -> ExperimentRecord | None:
        """The leader: the successful experiment with the lowest holdout BD-rate."""
        scored = [r for r in self.experiments if leaderboard(r) is not None]
        return min(scored, key=lambda r: leaderboard(r) or 0.0) if scored else None

    def families(self) -> list[FamilyHull]:
        return family_hulls(self.experiments)


def family_of(program_name: str) -> str:
    """Programs that share a name before ``~`` are configurations of one program."""
    return program_name.split("~")[0]


@dataclass
class HullPoint:
    program_name: str
    experiment_id: str
    quality: int
    kbps: float
    psnr_y: float


@dataclass
class FamilyHull:
    """The convex hull of every configuration of one program family on one clip."""

    family: str
    clip: str
    clip_sha256: str
    programs: int
    points: list[HullPoint]
    bd_rate_x265: float | None
    reason: str | None = None


def family_hulls(records: list[ExperimentRecord]) -> list[FamilyHull]:
    """Per program family and clip: the (kbps, PSNR-Y) hull over all its configurations'
    rungs, and the hull's BD-rate against x265 on that clip (its best reachable curve, over
    x265's standard range)."""
    groups: dict[tuple[str, str], list[ExperimentRecord]] = {}
    for record in records:
        if record.status != "ok":
            continue
        for sha in dict.fromkeys(r.clip_sha256 for r in record.results):
            groups.setdefault((family_of(record.program_name), sha), []).append(record)
    hulls = []
    for (family, sha), members in groups.items():
        rungs = [(m, r) for m in members for r in bdrate.lossy(m.results) if r.clip_sha256 == sha]
        if not rungs:  # every rung near-lossless: no lossy curve to draw
            continue
        kept = rd.hull_indices([(r.kbps, r.psnr_y) for _, r in rungs])
        points = [
            HullPoint(m.program_name, m.experiment_id, r.quality, r.kbps, r.psnr_y)
            for m, r in (rungs[i] for i in kept)
        ]
        anchor = next(
            (c for m in members for c in m.baselines.get("x265", []) if c.clip_sha256 == sha),
            None,
        )
        value, reason = None, "no x265 baseline on this clip"
        if anchor is not None:
            standard, _ = bdrate.clip_figures("x265", anchor.rungs, points, "psnr_y")
            value, reason = standard.value, standard.reason
        hulls.append(
            FamilyHull(
                family=family,
                clip=rungs[0][1].clip,
                clip_sha256=sha,
                programs=len({m.program_sha256 for m in members}),
                points=points,
                bd_rate_x265=value,
                reason=reason,
            )
        )
    return hulls


@contextmanager
def directory_lock(home: Path) -> Iterator[None]:
    """Hold ``home/campaign.lock``; the kernel releases it if the process dies, even by -9."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "campaign.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise CampaignError(
                f"a campaign is already running in {home} ({holder}); wait for it, or use "
                "another CODECLAB_HOME"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


def make_designer(settings: Settings):
    """The designer the settings ask for; the LLM one reads its key from the environment only."""
    if settings.designer == "evolve":
        return EvolveDesigner(seed=settings.seed)
    from codeclab.design.llm import LLMDesigner

    if not settings.llm_model:
        raise CampaignError("designer 'llm' needs a model: --llm-model NAME (or llm_model)")
    return LLMDesigner(
        settings.llm_provider,
        settings.llm_model,
        base_url=settings.llm_base_url,
        repairs=settings.llm_repairs,
        budget_usd=settings.llm_budget_usd,
        prices=settings.llm_prices,
        timeout_s=settings.llm_timeout_s,
        max_tokens=settings.llm_max_tokens,
        max_source_bytes=settings.max_source_bytes,
    )


def _with_usage(proposal: Proposal) -> Proposal:
    """Keep an LLM proposal's token and cost figures on its reasoning, which is stored."""
    usage = getattr(proposal, "usage", None)
    if usage is None:
        return proposal
    reasoning = proposal.reasoning.model_copy(update={"llm_usage": usage.as_dict()})
    return Proposal(proposal.source, proposal.name, proposal.parent_sha256, reasoning)


def _rejected_in_design(
    rejection, designer_name: str, campaign_id: str, iteration: int, settings: Settings
) -> tuple[ExperimentRecord, str]:
    """The record of a design the model never turned into a usable program."""
    source = rejection.source or ""
    reasoning = rejection.reasoning.to_record() if rejection.reasoning else Reasoning()
    reasoning.llm_usage = rejection.usage.as_dict()
    proposal = Proposal(source, rejection.name or "llm", rejection.parent_sha256, reasoning)
    failed = ("rejected", "design", rejection.reason)
    return _unfinished(proposal, designer_name, campaign_id, iteration, settings, *failed), source


def _unfinished(
    proposal: Proposal,
    designer_name: str,
    campaign_id: str,
    iteration: int,
    settings: Settings,
    status: str,
    phase: str,
    error: str,
) -> ExperimentRecord:
    """The record of an experiment that ended in ``phase`` before it measured anything."""
    return ExperimentRecord(
        experiment_id=str(uuid.uuid4()),
        campaign_id=campaign_id,
        iteration=iteration,
        status=status,
        phase=phase,
        error=error,
        program_sha256=program_sha256(proposal.source),
        program_name=proposal.name,
        parent_sha256=proposal.parent_sha256,
        designer=designer_name,
        reasoning=proposal.reasoning,
        isolation="none",
        source_bytes=len(proposal.source.encode()),
        qualities=settings.qualities,
        phases=[PhaseRecord(name=phase, status="failed", seconds=0.0, error=error)],
    )


@dataclass
class Callbacks:
    on_experiment: Callable[[int, str], None] = lambda iteration, name: None
    on_step: Callable[[str], None] = lambda message: None
    on_done: Callable[[ExperimentRecord], None] = lambda record: None
    on_wait: Callable[[str], None] = say_on_stderr  # a store is unreachable, or back
    on_fault: Callable[[str], None] = say_on_stderr  # a fault the lab rides out (a lost worker)
    keep_going: Callable[[], bool] = lambda: True  # asked before each proposal (a time limit)


def _job(
    designer_name: str,
    proposal: Proposal,
    iteration: int,
    campaign_id: str,
    design_seconds: float,
    settings: Settings,
    clips: list[Clip],
    store: ExperimentStore,
    artifacts: ArtifactStore,
    on_step: Callable[[str], None],
    executor: Executor = LOCAL,
) -> Job:
    return Job(
        source=proposal.source,
        name=proposal.name,
        clips=clips,
        settings=settings,
        store=store,
        artifacts=artifacts,
        designer=designer_name,
        parent_sha256=proposal.parent_sha256,
        reasoning=proposal.reasoning,
        campaign_id=campaign_id,
        iteration=iteration,
        design_seconds=design_seconds,
        on_step=on_step,
        executor=executor,
    )


def _evaluate_in_worker(
    designer_name: str,
    proposal: Proposal,
    iteration: int,
    campaign_id: str,
    design_seconds: float,
    settings: Settings,
    clips: list[Clip],
    cascade: Cascade | None,
) -> ExperimentRecord:
    """One experiment in a pool process, with its own connections to the stores (it waits
    for them silently: the campaign's process says so, see StoreWait.relay)."""
    wait = StoreWait.for_settings(settings, say_nothing)
    store = wait.call(open_experiment_store, settings.db_url, outbox_dir=settings.outbox_dir)
    artifacts = wait.call(open_artifact_store, settings)
    store, artifacts = WaitingStore(store, wait), WaitingStore(artifacts, wait)
    job = _job(
        designer_name,
        proposal,
        iteration,
        campaign_id,
        design_seconds,
        settings,
        clips,
        store,
        artifacts,
        lambda message: None,
    )
    return evaluate_cascaded(job, cascade)


def run_campaign(
    settings: Settings,
    clips: list[Clip],
    store: ExperimentStore,
    artifacts: ArtifactStore,
    *,
    resume_id: str | None = None,
    callbacks: Callbacks | None = None,
    executor: Executor | None = None,
) -> CampaignResult:
    """Run (or, with ``resume_id``, continue) a campaign to ``settings.iterations``.

    Without ``executor`` the one the settings name is opened here, before anything is
    stored (a Ray cluster that cannot be used leaves no campaign behind), and closed after.
    Every call to the stores waits out an outage (``callbacks.on_wait`` says so); after
    ``store_give_up_s`` it raises :class:`~codeclab.store.retry.GaveUp`.
    """
    calls = callbacks or Callbacks()
    wait = StoreWait.for_settings(settings, calls.on_wait)
    owned = executor is None
    executor = executor or open_executor(settings)
    try:
        return _campaign(
            settings,
            clips,
            WaitingStore(store, wait),
            WaitingStore(artifacts, wait),
            resume_id,
            calls,
            executor,
            wait,
        )
    finally:
        if owned:
            executor.close()


def _pool(settings: Settings, executor: Executor) -> Workers | _Threads | _Inline:
    """Where experiments run, ``workers`` at a time: local processes, each with its own
    store connections; or, when the work goes to Ray, threads here that wait on their tasks;
    or, with one worker, here, one after the other."""
    if settings.workers == 1:
        return _Inline()
    if executor.name == "local":
        return Workers(settings.workers)
    return _Threads(settings.workers)


class _Inline:
    """One worker: each experiment runs here as it is submitted."""

    def __init__(self) -> None:
        self.done: dict[int, ExperimentRecord] = {}

    def submit(self, iteration: int, job: tuple) -> None:
        self.done[iteration] = evaluate_cascaded(*job)

    def next_done(self, *_: object) -> dict[int, ExperimentRecord]:
        """What ran since the last call (it ran at submit)."""
        done, self.done = self.done, {}
        return done

    def close(self, *, abort: bool) -> None:
        pass


class _Threads:
    """Threads of this process, each waiting on one experiment's Ray tasks."""

    def __init__(self, size: int) -> None:
        self.pool = ThreadPoolExecutor(size, thread_name_prefix="experiment")
        self.running: dict[int, cf.Future] = {}

    def submit(self, iteration: int, job: tuple) -> None:
        self.running[iteration] = self.pool.submit(evaluate_cascaded, *job)

    def next_done(
        self, store: ExperimentStore, say: Callable[[str], None], tick: Callable[[], None]
    ) -> dict[int, ExperimentRecord]:
        """Wait until at least one experiment ends; the records of those that did (a lost Ray
        worker is the executor's to retry: :class:`codeclab.executors.WorkerLost`)."""
        while True:
            ended, _ = cf.wait(self.running.values(), timeout=1.0, return_when=cf.FIRST_COMPLETED)
            tick()
            if ended:
                done = [i for i, future in self.running.items() if future in ended]
                return {i: self.running.pop(i).result() for i in done}

    def close(self, *, abort: bool) -> None:
        self.pool.shutdown(cancel_futures=True)


def _worker_started(campaign_pid: int) -> None:
    """A pool worker's first act: die with the campaign, and leave Ctrl-C to it.

    A ``kill -9`` of the campaign must not leave workers behind, idle forever, or still
    running an experiment that they could save while the resumed lab runs it again; the
    sandbox's bubblewrap dies with its worker (``--die-with-parent``). Ctrl-C reaches the
    whole process group: the campaign, not each worker, handles it (:meth:`Workers.close`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with suppress(OSError, AttributeError):  # no prctl (not Linux): the pipes' EOF ends it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != campaign_pid:  # the campaign died before the signal was asked for
        os._exit(1)


class Workers:
    """A campaign's local process pool, started again when a worker is lost (which breaks
    the pool: :class:`BrokenProcessPool`, and the pool ends its other workers). ``task``
    takes ``_evaluate_in_worker``'s arguments and returns the experiment's record. Jobs are
    submitted one at a time and collected as they end, so a worker that finishes early takes
    the next candidate instead of waiting for the slowest of a batch."""

    def __init__(
        self, size: int, task: Callable[..., ExperimentRecord] = _evaluate_in_worker
    ) -> None:
        self.size = size
        self.task = task
        self.pool = self._start()
        self.running: dict[int, tuple[cf.Future, tuple]] = {}
        self.tries: dict[int, int] = {}

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs threads (progress display) that fork would copy
        return ProcessPoolExecutor(
            self.size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_started,
            initargs=(os.getpid(),),
        )

    def restart(self) -> None:
        self.pool.shutdown(wait=True)  # a broken pool's workers are gone once it returns
        self.pool = self._start()

    def close(self, *, abort: bool) -> None:
        """Shut the pool down; ``abort`` (Ctrl-C, an error) ends running experiments now
        (the workers ignore Ctrl-C) instead of waiting for them."""
        if abort:  # the pool's processes (no public way before Python 3.14's terminate_workers)
            for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                with suppress(OSError, ValueError):
                    process.kill()
        self.pool.shutdown(cancel_futures=True)

    def submit(self, iteration: int, job: tuple) -> None:
        """Start ``job`` (``_evaluate_in_worker``'s arguments) as ``iteration``."""
        self.tries[iteration] = self.tries.get(iteration, 0) + 1
        self.running[iteration] = (self.pool.submit(self.task, *job), job)

    def run(
        self,
        jobs: dict[int, tuple],
        store: ExperimentStore,
        say: Callable[[str], None],
        tick: Callable[[], None],
    ) -> dict[int, ExperimentRecord]:
        """Each job's record, by iteration: :meth:`submit` each, then :meth:`next_done`
        until all have ended."""
        for iteration, job in jobs.items():
            self.submit(iteration, job)
        records: dict[int, ExperimentRecord] = {}
        while self.running:
            records |= self.next_done(store, say, tick)
        return records

    def next_done(
        self, store: ExperimentStore, say: Callable[[str], None], tick: Callable[[], None]
    ) -> dict[int, ExperimentRecord]:
        """Wait until at least one running job ends; the records of those that did.

        When a worker is lost, the experiments the store has not got (a worker may have saved
        its experiment before it died) run again in a new pool, each up to
        :data:`LOST_WORKER_TRIES` times; then it fails with the reason. ``tick`` runs about
        every second while the pool works.
        """
        records: dict[int, ExperimentRecord] = {}
        while self.running and not records:
            futures = [future for future, _ in self.running.values()]
            done, _ = cf.wait(futures, timeout=1.0, return_when=cf.FIRST_COMPLETED)
            tick()
            if not done:
                continue
            lost = self._collect(records)
            if lost:
                records |= self._rerun(lost, store, say)
        return records

    def _collect(self, records: dict[int, ExperimentRecord]) -> dict[int, tuple]:
        """Move the ended jobs' records into ``records``; the jobs a lost worker took (the
        whole pool breaks then: every job still running is lost with it)."""
        lost: dict[int, tuple] = {}
        self._take(records, lost)
        if lost:
            self.restart()  # the broken pool's futures have all ended once it returns
            self._take(records, lost)
            lost |= {i: job for i, (_, job) in self.running.items()}
            self.running.clear()
        return lost

    def _take(self, records: dict[int, ExperimentRecord], lost: dict[int, tuple]) -> None:
        for iteration, (future, job) in list(self.running.items()):
            if future.done():
                del self.running[iteration]
                try:
                    records[iteration] = future.result()
                except BrokenProcessPool:
                    lost[iteration] = job

    def _rerun(
        self, lost: dict[int, tuple], store: ExperimentStore, say: Callable[[str], None]
    ) -> dict[int, ExperimentRecord]:
        """The records of lost jobs that are final (saved before the worker died, or lost too
        often); the others run again in the new pool."""
        records = _stored(store, next(iter(lost.values()))[3], list(lost))
        for i in lost:
            if i not in records and self.tries[i] >= LOST_WORKER_TRIES:
                records[i] = _lost(store, lost[i])
        again = [i for i in lost if i not in records]
        if again:
            which = ", ".join(map(str, again))
            say(
                "a pool worker was lost (killed, or out of memory: the lab's fault, not the "
                f"program's); the pool is started again and runs iteration {which} again"
            )
            for i in again:
                self.submit(i, lost[i])
        return records


def _stored(store: ExperimentStore, campaign_id: str, iterations: list[int]) -> dict:
    """The experiments of ``iterations`` that lost workers saved (or kept in the outbox)
    before they died, by iteration."""
    store.list(campaign_id=campaign_id, limit=1)  # waits while the store is away
    store.flush_outbox()
    return {
        r.iteration: r for r in store.list(campaign_id=campaign_id) if r.iteration in iterations
    }


def _lost(store: ExperimentStore, job: tuple) -> ExperimentRecord:
    """The failed record of an experiment whose worker was lost on each of its tries."""
    designer_name, proposal, iteration, campaign_id, _, settings, _, _ = job
    reason = f"its pool worker was lost {LOST_WORKER_TRIES} times (killed, or out of memory)"
    record = _unfinished(
        proposal, designer_name, campaign_id, iteration, settings, "failed", "execution", reason
    )
    store.save(record, proposal.source)
    return record


def _campaign(
    settings: Settings,
    clips: list[Clip],
    store: ExperimentStore,
    artifacts: ArtifactStore,
    resume_id: str | None,
    calls: Callbacks,
    executor: Executor,
    wait: StoreWait,
) -> CampaignResult:
    sweep(settings, store, artifacts)  # first, what killed runs left (store.sweep)
    designer = make_designer(settings)
    result = CampaignResult(campaign_id=resume_id or str(uuid.uuid4()))
    sources: dict[str, str] = {}
    if resume_id:
        result.experiments = store.list(campaign_id=resume_id)
        for record in result.experiments:
            sources[record.program_sha256] = store.source(record.program_sha256) or ""
    else:
        store.add_campaign(
            result.campaign_id,
            designer.name,
            settings.seed,
            settings.iterations,
            settings.recorded(),
        )
    done = {r.iteration for r in result.experiments}
    todo = [i for i in range(1, settings.iterations + 1) if i not in done]
    pool = _pool(settings, executor)
    try:
        plan = testsets.plan_for(settings, clips)
    except testsets.TestSetError:
        plan = None  # each experiment fails with the reason

    def cascade(proposal: Proposal) -> Cascade | None:
        parents = [r for r in result.experiments if r.program_sha256 == proposal.parent_sha256]
        figures = [f for r in result.experiments if (f := fitness(r)) is not None]
        best_train = min(figures, default=None)
        return cascade_for(settings, plan, parents[-1] if parents else None, best_train)

    def job(proposal: Proposal, iteration: int, seconds: float) -> Job:
        return _job(
            designer.name,
            proposal,
            iteration,
            result.campaign_id,
            seconds,
            settings,
            clips,
            store,
            artifacts,
            calls.on_step,
            executor,
        )

    def finish(record: ExperimentRecord, source: str) -> None:
        sources[record.program_sha256] = source
        result.experiments.append(record)
        calls.on_done(record)

    def arguments(proposal: Proposal, iteration: int, seconds: float) -> tuple:
        if isinstance(pool, Workers):
            head = (designer.name, proposal, iteration, result.campaign_id, seconds)
            return (*head, settings, clips, cascade(proposal))
        return job(proposal, iteration, seconds), cascade(proposal)

    running: dict[int, Proposal] = {}  # in flight, by iteration
    ended = False
    try:
        while todo or running:
            while todo and len(running) < settings.workers and not result.stopped:
                if not calls.keep_going():
                    todo = []
                    break
                iteration = todo.pop(0)
                started = time.perf_counter()
                # designers see train scores only: holdout clips are the leaderboard's
                seen = [record.train_view() for record in result.experiments]
                pending = sources | {f"pending-{i}": p.source for i, p in running.items()}
                try:
                    proposal = designer.propose(seen, pending, iteration)
                    proposal = _repaired(designer, proposal, lambda p, i=iteration: job(p, i, 0.0))
                except BudgetExhausted as exc:
                    result.stopped = str(exc)
                    break
                except DesignRejected as rejection:
                    record, source = _rejected_in_design(
                        rejection, designer.name, result.campaign_id, iteration, settings
                    )
                    store.save(record, source)
                    finish(record, source)
                    continue
                proposal = _with_usage(proposal)
                running[iteration] = proposal
                calls.on_experiment(iteration, proposal.name)
                pool.submit(
                    iteration, arguments(proposal, iteration, time.perf_counter() - started)
                )
            if not running:
                break
            for iteration, record in sorted(
                pool.next_done(store, calls.on_fault, wait.relay).items()
            ):
                finish(record, running.pop(iteration).source)
        ended = True
    finally:
        pool.close(abort=not ended)  # Ctrl-C or an error: the running experiments end now
        close = getattr(designer, "close", None)
        if close:
            close()
        getattr(store, "flush_outbox", lambda: 0)()  # what an outage kept, written now
    result.experiments.sort(key=lambda r: r.iteration or 0)
    return result


def _repaired(designer, proposal: Proposal, make_job: Callable[[Proposal], Job]) -> Proposal:
    """Send a program that fails validation back to a designer that can repair it.

    When the designer gives up, the last program is evaluated anyway: its record then shows
    the real validation failure instead of a summary of it.
    """
    if not hasattr(designer, "repair"):
        return proposal
    while (error := validation_error(make_job(proposal))) is not None:
        try:
            proposal = designer.repair(proposal, error)
        except DesignRejected:
            return proposal
    return proposal
