"""One experiment, phases 2 to 7 of DESIGN.md section 1, each timed and recorded.

The runner is the only place that turns a program's behaviour into numbers, and it does so
with lab code only: bytes are counted from the bitstream the sandbox handed back, pictures
are scored against the source frames, and baselines are encoded here from the same frames.
Any failure ends the experiment with the phase and a reason; nothing is filled in. Every
bitstream is decoded twice, in two fresh processes, and the decodes must agree bit for bit:
a score is only worth something if the published decoder reproduces it, so the second
decode runs the decoder file the lab publishes.

The heavy work (the smoke run, each rung's encode and decodes, its scores, each baseline
curve, the reconstructed video) runs on the job's executor
(:mod:`codeclab.executors`): in this process by default, or as Ray tasks. The runner keeps
the order of the phases, the checks on what comes back and the record, and saves the record
itself, from the driver only.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from codeclab.config import Settings
from codeclab.design.evolve import program_sha256
from codeclab.evaluate import baselines, bdrate, rd, testsets
from codeclab.evaluate.metrics import ms_ssim_reason
from codeclab.evaluate.testsets import TestSetPlan
from codeclab.executors import CPU, Executor, Resources, WorkerLost, resources_for, tasks
from codeclab.executors.local import LOCAL
from codeclab.media import Clip
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
from codeclab.sandbox import bwrap, isolate, policy
from codeclab.store.artifacts import (
    ArtifactStore,
    bitstream_key,
    bitstream_name,
    decoder_key,
    reconstructed_key,
)
from codeclab.store.db import ExperimentStore
from codeclab.store.publish import decoder_file

BD_METRICS = ("psnr_y", "ssim_y", "ms_ssim_y", "vmaf")
LADDER_STEPS = 4
"""Rounds of added qualities at most, per end of each clip's ladder (see ``_extend_ladders``):
bisection from 80 reaches 99, from 20 reaches 2."""
SMOKE_SIZE = (64, 48)  # width, height of the validation clip cut from the first source clip
PARSING = isolate.PARSING  # one lock for every parse in this process
T = TypeVar("T")


class PhaseFailed(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Job:
    """What to evaluate and where the results go."""

    source: str
    name: str
    clips: list[Clip]
    settings: Settings
    store: ExperimentStore
    artifacts: ArtifactStore
    designer: str = "manual"
    parent_sha256: str | None = None
    reasoning: Reasoning = field(default_factory=Reasoning)
    campaign_id: str | None = None
    iteration: int | None = None
    design_seconds: float = 0.0
    on_step: Callable[[str], None] = lambda message: None
    launcher: isolate.Launcher | None = None  # default: the strongest that works here
    test_set: TestSetPlan | None = None  # default: testsets.plan_for(settings, clips)
    executor: Executor = LOCAL  # where the rungs, scores and baselines run
    stage: str | None = None  # the evaluation cascade's stage this job is (record.stage)
    screen: Screen | None = None  # the cascade's first stage, when this job is the second
    gate: HoldoutGate | None = None  # the cascade's holdout gate, when this job passed it
    experiment_id: str | None = None  # default: a new one (a cascade's stages share one)
    memo: RungMemo | None = None  # rungs an earlier stage of this experiment ran
    save: bool = True  # store the record (a cascade's screen decides later)
    publish: bool = True  # publish by the settings' policy (a stage before the holdout never does)


@dataclass
class RungMemo:
    """The rungs one candidate's experiment already ran, by clip content hash and quality:
    the cascade's holdout stage extends its train stage and takes these instead of encoding,
    decoding and scoring them again. Same program, same frames, same quality: the same
    bitstream, so this is a cache of this experiment's own work, never another's."""

    program_sha256: str | None = None
    runs: dict[tuple[str, int], tuple[tasks.RungRun, float, Any]] = field(default_factory=dict)
    results: dict[tuple[str, int], RungResult] = field(default_factory=dict)
    decoder: str | None = None  # the published decoder file that checked its runs' decodes

    def bind(self, program: str) -> RungMemo:
        """This memo, for ``program``'s experiment; one memo never serves two programs."""
        if self.program_sha256 not in (None, program):
            raise ValueError("a rung memo serves one program's experiment only")
        self.program_sha256 = program
        return self


class Experiment:
    """Runs the phases in order; the first failure stops it and becomes the record's error."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.launcher = job.launcher or bwrap.best_launcher()
        self.record = ExperimentRecord(
            experiment_id=job.experiment_id or str(uuid.uuid4()),
            campaign_id=job.campaign_id,
            iteration=job.iteration,
            status="ok",
            program_sha256=program_sha256(job.source),
            program_name=job.name,
            parent_sha256=job.parent_sha256,
            designer=job.designer,
            reasoning=job.reasoning,
            isolation=self.launcher.isolation,
            source_bytes=len(job.source.encode()),
            qualities=job.settings.qualities,
            clips=[
                ClipInfo(
                    name=c.name,
                    path=str(c.path),
                    sha256=c.sha256,
                    width=c.width,
                    height=c.height,
                    frames=len(c.frames),
                    fps=c.fps,
                    conversions=c.conversions,
                )
                for c in job.clips
            ],
            versions=tasks.versions(),
            phases=[PhaseRecord(name="design", status="ok", seconds=job.design_seconds)],
            stage=job.stage,
            screen=job.screen,
            gate=job.gate,
        )
        self.memo = job.memo.bind(self.record.program_sha256) if job.memo else RungMemo()
        self.executor = job.executor
        self.resources: Resources = CPU  # what each rung task asks for; set by validation
        self.decoded: dict[tuple[str, int], Any] = {}  # executor handles of decoded frames
        self.measured: list[dict] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.job.on_step(name)
        start = time.perf_counter()
        try:
            yield
        except PhaseFailed as failure:
            self._finish_phase(name, start, failure.reason)
            self.record.status, self.record.phase, self.record.error = (
                failure.status,
                name,
                failure.reason,
            )
            raise
        self._finish_phase(name, start, None)

    def _finish_phase(self, name: str, start: float, error: str | None) -> None:
        seconds = round(time.perf_counter() - start, 4)
        status = "failed" if error else "ok"
        self.record.phases.append(
            PhaseRecord(name=name, status=status, seconds=seconds, error=error)
        )

    def limits(self, clip: Clip) -> isolate.Limits:
        limits = isolate.Limits.for_clip(clip.width, clip.height, len(clip.frames))
        settings = self.job.settings
        if settings.timeout_s:
            limits.wall_seconds = settings.timeout_s
            limits.cpu_seconds = min(limits.cpu_seconds, settings.timeout_s)
        if settings.memory_mb:
            limits.memory_mb = settings.memory_mb
        return limits

    def run(self) -> ExperimentRecord:
        try:
            with self.phase("validation"):
                self.validate()
            with self.phase("deployment"):
                self.deploy()
            with self.phase("execution"):
                self.execute()
            with self.phase("verification"):
                self.verify()
            with self.phase("analysis"):
                self.analyse()
            with self.phase("publish"):
                self.publish()
        except PhaseFailed:
            pass
        if self.job.save:
            self.job.store.save(self.record, self.job.source)
        return self.record

    # -- phases ---------------------------------------------------------------------------

    def validate(self) -> None:
        settings = self.job.settings
        if not settings.allow_weak_isolation and self.launcher.isolation != bwrap.STRONG:
            raise PhaseFailed("failed", _strong_isolation_missing(self.job.launcher))
        try:
            with PARSING:
                report = policy.check_program(
                    self.job.source, max_source_bytes=settings.max_source_bytes
                )
        except policy.PolicyViolation as exc:
            raise PhaseFailed("rejected", str(exc)) from exc
        self.resources = resources_for(report.imports)
        clip = self.job.clips[0]
        width, height = min(SMOKE_SIZE[0], clip.width), min(SMOKE_SIZE[1], clip.height)
        tiny = [
            tuple(
                np.ascontiguousarray(p[:h, :w])
                for p, (w, h) in zip(
                    f,
                    ((width, height), (width // 2, height // 2), (width // 2, height // 2)),
                    strict=True,
                )
            )
            for f in clip.frames[:2]
        ]
        call = (
            self.job.source,
            tiny,
            clip.fps,
            settings.qualities[0],
            self.limits(clip.head(2)),
            self.job.launcher,
        )
        label = f"smoke run on a {width}x{height} clip"
        with self.executor.map(tasks.smoke_run, [call], resources=self.resources) as results:
            ((_, (error, isolation)),) = self._labelled(results, [label])
        if error:
            raise PhaseFailed("failed", f"{label}: {error}")
        self._ran_with(isolation)

    def deploy(self) -> None:
        key = f"programs/{self.record.program_sha256}.py"
        self.record.artifacts.program = self.job.artifacts.put_bytes(key, self.job.source.encode())

    def execute(self) -> None:
        """Every rung of the ladder on every clip."""
        self._run_rungs([(clip, q) for clip in self.job.clips for q in self.job.settings.qualities])

    def _run_rungs(self, rungs: list[tuple[Clip, int]]) -> None:
        """Encode every rung at once on the executor, then decode them; the first failure, in
        rung order, ends the experiment. No decoder of this experiment starts while one of its
        encoders runs (one could hand a decoder the source frames through the machine). Rungs
        an earlier stage of this experiment ran are taken from its memo."""
        for clip, quality in rungs:
            if (clip.sha256, quality) in self.memo.runs:
                self._keep(clip, quality, *self.memo.runs[(clip.sha256, quality)])
        rungs = [(c, q) for c, q in rungs if (c.sha256, q) not in self.memo.runs]
        if not rungs:
            return
        source, launcher = self.job.source, self.job.launcher
        labels = [f"{clip.name} quality {q}" for clip, q in rungs]
        frames = {id(clip): self._frames(clip) for clip, _ in rungs}
        calls = [
            (source, frames[id(clip)], clip.fps, q, self.limits(clip), launcher)
            for clip, q in rungs
        ]
        encoded: list[tasks.RungRun] = []
        with self.executor.map(
            tasks.encode_rung,
            calls,
            resources=self.resources,
            threads=rung_threads(self.job.settings),
            on_next=lambda i: self.job.on_step(f"encode: {rungs[i][0].name} q{rungs[i][1]}"),
        ) as results:
            for label, run in self._labelled(results, labels):
                if run.error:
                    raise PhaseFailed("failed", f"{label}: {run.error}")
                self._ran_with(run.isolation)
                encoded.append(run)
        calls = [
            (source, self.decoder, run.bitstream, self.limits(clip), launcher)
            for (clip, _), run in zip(rungs, encoded, strict=True)
        ]
        with self.executor.map(
            tasks.decode_rung,
            calls,
            resources=self.resources,
            keep_second=True,
            threads=rung_threads(self.job.settings),
            on_next=lambda i: self.job.on_step(f"decode: {rungs[i][0].name} q{rungs[i][1]}"),
        ) as results:
            for (clip, quality), run, (label, (decode, decoded)) in zip(
                rungs, encoded, self._labelled(results, labels), strict=True
            ):
                if decode.error:
                    raise PhaseFailed("failed", f"{label}: {decode.error}")
                self._ran_with(decode.isolation)
                self._keep(clip, quality, run, decode.seconds, decoded)

    @property
    def decoder(self) -> str:
        """The standalone decoder file, made once per experiment (its stages share it through
        the memo): each rung's second decode runs it, so the file published is the very one
        that reproduced every decode the lab scored."""
        if self.memo.decoder is None:
            with PARSING:
                self.memo.decoder = decoder_file(self.job.source, self.record)
        return self.memo.decoder

    def _frames(self, clip: Clip) -> Any:
        """The clip's frames as tasks receive them: shipped once per content hash."""
        return self.executor.put(clip.sha256, clip.frames)

    def _labelled(self, results: Iterator[T], labels: list[str]) -> Iterable[tuple[str, T]]:
        """Each result with its label; a task whose worker died too often fails the phase."""
        for label in labels:
            try:
                result = next(results)
            except WorkerLost as exc:
                raise PhaseFailed("failed", f"{label}: {exc}") from exc
            yield label, result

    def _ran_with(self, isolation: str) -> None:
        """A worker may sandbox more weakly than this process: the record states the weakest."""
        if isolation == self.record.isolation or isolation == bwrap.STRONG:
            return
        if not self.job.settings.allow_weak_isolation:
            raise PhaseFailed(
                "failed",
                f"strong isolation is required but a worker ran the program with {isolation} "
                "isolation; install bubblewrap on every node",
            )
        self.record.isolation = isolation

    def _keep(
        self, clip: Clip, quality: int, run: tasks.RungRun, decode_s: float, decoded: Any
    ) -> None:
        self.memo.runs[(clip.sha256, quality)] = (run, decode_s, decoded)
        bitstream = run.bitstream
        key = bitstream_key(self.record.experiment_id, clip.name, quality)
        self.record.artifacts.bitstreams.append(self.job.artifacts.put_bytes(key, bitstream))
        self.decoded[(clip.sha256, quality)] = decoded
        count = len(clip.frames)
        self.measured.append(
            dict(
                clip=clip.name,
                clip_sha256=clip.sha256,
                quality=quality,
                bytes=len(bitstream),
                frames=count,
                width=clip.width,
                height=clip.height,
                fps=clip.fps,
                kbps=len(bitstream) * 8 * clip.fps / count / 1000,
                bpp=len(bitstream) * 8 / (count * clip.width * clip.height),
                encode_s=round(run.seconds, 4),
                decode_s=round(decode_s, 4),
                bitstream_sha256=hashlib.sha256(bitstream).hexdigest(),
            )
        )

    def verify(self) -> None:
        self._apply_test_set()
        self._score_new()

    def _score_new(self) -> None:
        """Check and score the decodes not scored yet, in the order they were measured (those
        an earlier stage of this experiment scored are taken from its memo)."""
        measured = self.measured[len(self.record.results) :]
        fresh = [m for m in measured if _rung_of(m) not in self.memo.results]
        frames = {clip.sha256: self._frames(clip) for clip in self.job.clips}
        calls = [
            (
                frames[m["clip_sha256"]],
                self.decoded[_rung_of(m)],
                self.job.settings.vmaf,
            )
            for m in fresh
        ]
        labels = [f"{m['clip']} quality {m['quality']}" for m in fresh]
        with self.executor.map(
            tasks.score_rung,
            calls,
            on_next=lambda i: self.job.on_step(
                f"verification: {fresh[i]['clip']} q{fresh[i]['quality']}"
            ),
        ) as results:
            for m, (label, scored) in zip(fresh, self._labelled(results, labels), strict=True):
                if scored.error:
                    raise PhaseFailed("failed", f"{label}: {scored.error}")
                scores = scored.scores
                self.memo.results[_rung_of(m)] = RungResult(
                    **m,
                    **{name: getattr(scores, name) for name in FrameMetrics.model_fields},
                    vmaf_reason=scores.vmaf_reason,
                    decoded_sha256=scored.decoded_sha256,
                    per_frame=[FrameMetrics(**vars(f)) for f in scores.per_frame],
                )
        self.record.results += [self.memo.results[_rung_of(m)] for m in measured]

    def analyse(self) -> None:
        """Baselines per clip; the candidate's ladder extended to span their standard range;
        BD-rate per baseline and metric over the standard range (per clip, averaged over all,
        train and holdout clips) and over the wide range; the target check on holdout clips."""
        plan = self._apply_test_set()
        settings = self.job.settings
        usable = [e for e in settings.baselines if baselines.unavailable(e) is None]
        if settings.extend_ladder and usable:
            self._extend_ladders(self._baseline_curves(usable, cover=False))
        curves = self._baseline_curves(usable, cover=True)
        standard: dict[str, dict[str, dict[str, bdrate.Figure]]] = {}
        wide: dict[str, dict[str, dict[str, bdrate.Figure]]] = {}
        targets: dict[str, dict] = {}
        for clip in self.job.clips:
            mine = [r for r in self.record.results if r.clip_sha256 == clip.sha256]
            for encoder in settings.baselines:
                missing = baselines.unavailable(encoder)
                rungs = curves.get((clip.sha256, encoder), [])
                if not missing:
                    self.record.baselines.setdefault(encoder, []).append(
                        BaselineCurve(
                            encoder=encoder,
                            version=baselines.encoder_version(encoder),
                            settings=baselines.settings(encoder),
                            clip_sha256=clip.sha256,
                            rungs=[
                                BaselineRungRecord(clip=clip.name, **_fields_of(r, {"clip"}))
                                for r in rungs
                            ],
                        )
                    )
                for metric in BD_METRICS:
                    figures = (
                        (bdrate.Figure(None, missing),) * 2
                        if missing
                        else _bd_rates(encoder, rungs, mine, metric, clip)
                    )
                    for table, figure in zip((standard, wide), figures, strict=True):
                        table.setdefault(encoder, {}).setdefault(metric, {})[clip.name] = figure
                if encoder == "x265" and not missing and plan.counts_as(clip.sha256, "holdout"):
                    targets[clip.name] = rd.target_check(
                        [(r.kbps, r.psnr_y) for r in bdrate.lossy(mine)],
                        [(r.kbps, r.psnr_y) for r in bdrate.lossy(rungs)],
                        settings.target_kbps,
                    )
        names = {
            split: {c.name for c in self.job.clips if plan.counts_as(c.sha256, split)}
            for split in ("train", "holdout")
        }
        for encoder, by_metric in standard.items():
            label = bdrate.describe_range(encoder) if encoder in usable else None
            for metric, clips in by_metric.items():
                self.record.bd_rate.setdefault(encoder, {})[metric] = _average_bd(clips, label)
                for split, table in (
                    ("train", self.record.bd_rate_train),
                    ("holdout", self.record.bd_rate_holdout),
                ):
                    subset = {k: v for k, v in clips.items() if k in names[split]}
                    table.setdefault(encoder, {})[metric] = _average_bd(subset, label)
                self.record.bd_rate_wide.setdefault(encoder, {})[metric] = _average_bd(
                    wide[encoder][metric], bdrate.WIDE
                )
        if targets:
            self.record.target = _combined_target(targets, self.record.isolation)

    def _baseline_curves(
        self, encoders: list[str], *, cover: bool
    ) -> dict[tuple[str, str], list[baselines.BaselineRung]]:
        """Each baseline's curve on each clip: its standard ladder, or (``cover``) extended
        to span the candidate's rungs at both ends, in rate and in PSNR-Y, for the wide
        figure."""
        settings = self.job.settings
        # with an S3 artifact store the baseline cache has a shared level there (a cluster's
        # nodes then encode each curve once between them)
        shared_s3 = (
            (settings.artifacts_url, settings.s3_endpoint_url) if settings.artifacts_url else None
        )
        work = []
        for clip in self.job.clips:
            mine = bdrate.lossy([r for r in self.record.results if r.clip_sha256 == clip.sha256])
            spans = None
            if cover and mine:
                spans = (
                    (min(r.kbps for r in mine), max(r.kbps for r in mine)),
                    (min(r.psnr_y for r in mine), max(r.psnr_y for r in mine)),
                )
            work += [(clip, encoder, spans) for encoder in encoders]
        calls = [
            (
                self._frames(clip),
                clip.fps,
                clip.sha256,
                encoder,
                (settings.cache_dir / "baselines").resolve(),
                spans[0] if spans else None,
                settings.vmaf,
                shared_s3,
                spans[1] if spans else None,
            )
            for clip, encoder, spans in work
        ]
        labels = [f"{encoder} baseline on {clip.name}" for clip, encoder, _ in work]
        curves = {}
        with self.executor.map(
            tasks.baseline_curve,
            calls,
            on_next=lambda i: self.job.on_step(f"analysis: {labels[i]}"),
        ) as results:
            for (clip, encoder, _), (_, rungs) in zip(
                work, self._labelled(results, labels), strict=True
            ):
                curves[(clip.sha256, encoder)] = rungs
        return curves

    def _extend_ladders(self, standard: dict[tuple[str, str], list]) -> None:
        """Add qualities until each clip's lossy rungs span the PSNR-Y range every baseline
        covers at its standard CRFs: bisection on ``quality`` at each end that falls short,
        all clips' next rungs at once, at most :data:`LADDER_STEPS` rounds. Where it still
        falls short the standard BD-rate says so (or is clipped, see :mod:`bdrate`)."""
        spans: dict[str, list[tuple[float, float]]] = {}
        for (sha, encoder), rungs in standard.items():
            span = bdrate.standard_span(encoder, rungs)
            if span is not None:
                spans.setdefault(sha, []).append(span)
        targets = {
            sha: (min(lo for lo, _ in found), max(hi for _, hi in found))
            for sha, found in spans.items()
        }
        for _ in range(LADDER_STEPS):
            wanted = [
                (clip, quality)
                for clip in self.job.clips
                if clip.sha256 in targets
                for quality in _next_qualities(
                    [r for r in self.record.results if r.clip_sha256 == clip.sha256],
                    targets[clip.sha256],
                )
            ]
            if not wanted:
                break
            self._run_rungs(wanted)
            self._score_new()
        # results (and their bitstreams, which pair with them) in clip and quality order
        order = {clip.sha256: i for i, clip in enumerate(self.job.clips)}
        paired = sorted(
            zip(self.record.results, self.record.artifacts.bitstreams, strict=True),
            key=lambda pair: (order[pair[0].clip_sha256], pair[0].quality),
        )
        self.record.results = [result for result, _ in paired]
        self.record.artifacts.bitstreams = [path for _, path in paired]

    def _apply_test_set(self) -> TestSetPlan:
        """State the test set on the record: its name and each clip's split."""
        try:
            plan = self.job.test_set or testsets.plan_for(self.job.settings, self.job.clips)
        except testsets.TestSetError as exc:
            raise PhaseFailed("failed", str(exc)) from exc
        self.record.test_set = plan.name
        self.record.holdout_is_train = plan.holdout_is_train
        for info in self.record.clips:
            info.split = plan.split_of(info.sha256)
        return plan

    def publish(self) -> None:
        """Publish by the policy (the decision and its reason are the ``publish-policy`` phase
        note: status ok or skipped, the reason in its ``error`` field): the decoder (which
        reproduced every decode in its sandbox, see ``tasks.decode_rung``), the reconstructed
        video and the download package."""
        from codeclab.store.artifacts import ArtifactError, ArtifactUnavailable
        from codeclab.store.package import build_package
        from codeclab.store.publish import by_program_key, publish_decision, requirements

        if self.job.publish:
            published, reason = publish_decision(
                self.job.settings.publish, self.record, self._earlier_experiments()
            )
        else:
            published, reason = False, "a stage of the evaluation cascade is never published"
        self.record.phases.append(
            PhaseRecord(
                name="publish-policy",
                status="ok" if published else "skipped",
                seconds=0.0,
                error=reason,
            )
        )
        if not published:
            return
        clip = self.job.clips[0]
        quality = max(self.job.settings.qualities)
        store, rid = self.job.artifacts, self.record.experiment_id
        try:
            bitstreams = {
                bitstream_name(r.clip, r.quality): store.get_bytes(
                    bitstream_key(rid, r.clip, r.quality)
                )
                for r in self.record.results
            }
            decoder = self.decoder
            with PARSING:
                needs = ", ".join(requirements(self.job.source))
            call = (self.decoded[(clip.sha256, quality)], clip.fps)
            with self.executor.map(tasks.render_mp4, [call]) as rendered:
                ((_, mp4),) = self._labelled(rendered, [f"{clip.name} quality {quality}"])
            self.record.artifacts.reconstructed = store.put_bytes(reconstructed_key(rid), mp4)
            self.record.artifacts.decoder = store.put_bytes(decoder_key(rid), decoder.encode())
            store.put_bytes(by_program_key(self.record.program_sha256), decoder.encode())
            package = build_package(self.record, decoder, bitstreams, needs)
            self.record.artifacts.package = store.put_bytes(f"packages/{rid}.zip", package)
        except ArtifactUnavailable:
            raise  # an outage is not the program's failure: the campaign waits for the store
        except ArtifactError as exc:
            raise PhaseFailed("failed", f"artifact store: {exc}") from exc

    def _earlier_experiments(self) -> list[ExperimentRecord]:
        """The campaign's experiments so far (the whole store's without a campaign), for the
        'improved' policy; the others need none."""
        if self.job.settings.publish != "improved":
            return []
        if self.record.campaign_id:
            earlier = self.job.store.list(campaign_id=self.record.campaign_id)
        else:
            earlier = self.job.store.list()
        return [r for r in earlier if r.experiment_id != self.record.experiment_id]


def _rung_of(measured: dict) -> tuple[str, int]:
    """A measured rung's key: its clip's content hash and its quality."""
    return measured["clip_sha256"], measured["quality"]


def rung_threads(settings: Settings) -> int:
    """Rungs run at once by an executor in this process: the machine's cores, shared by the
    campaign's experiments in flight. Each rung is a sandboxed process that its thread here
    only waits for, so one experiment on 2 cores takes about half the time."""
    return max(1, len(os.sched_getaffinity(0)) // settings.workers)


def _strong_isolation_missing(given: isolate.Launcher | None) -> str:
    if given is not None:
        why = f"this job was given a launcher with {given.isolation} isolation"
    else:
        why = bwrap.probe().reason
    return (
        f"strong isolation is required but {why}; allow_weak_isolation = true "
        "(CODECLAB_ALLOW_WEAK_ISOLATION=1, --allow-weak-isolation) runs with weak isolation"
    )


def _fields_of(obj: object, exclude: set[str]) -> dict:
    """The record fields a baseline rung carries (its cache path stays out of the record)."""
    return {k: getattr(obj, k) for k in BaselineRungRecord.model_fields if k not in exclude}


def _average_bd(clips: dict[str, bdrate.Figure], integrated_over: str | None) -> BdRate:
    """The mean over clips; ``None`` when any clip has no BD-rate, naming which and why."""
    if not clips:
        return BdRate(value=None, reason="no clips in this split", integrated_over=integrated_over)
    per_clip = {name: figure.value for name, figure in clips.items()}
    spans = {name: figure.span for name, figure in clips.items() if figure.span is not None}
    missing = {name: figure.reason for name, figure in clips.items() if figure.value is None}
    value = None if missing else sum(per_clip.values()) / len(per_clip)
    reason = "; ".join(f"{name}: {why}" for name, why in missing.items()) or None
    return BdRate(
        value=value,
        reason=reason,
        per_clip=per_clip,
        integrated_over=integrated_over,
        spans=spans,
    )


def _bd_rates(
    encoder: str, anchor: list, test: list, metric: str, clip: Clip
) -> tuple[bdrate.Figure, bdrate.Figure]:
    """Standard-range and wide BD-rate on one clip, or why a metric has no values there
    (MS-SSIM, VMAF)."""
    for side, rungs in (("candidate", test), ("baseline", anchor)):
        if any(getattr(r, metric) is None for r in rungs):
            if metric == "ms_ssim_y":
                why = ms_ssim_reason(clip.width, clip.height) or "no MS-SSIM values"
            else:
                vmaf_why = next((r.vmaf_reason for r in rungs if r.vmaf_reason), None)
                why = f"no {metric} on the {side}'s rungs" + (f": {vmaf_why}" if vmaf_why else "")
            return (bdrate.Figure(None, why),) * 2
    return bdrate.clip_figures(encoder, anchor, test, metric)


def _next_qualities(mine: list[RungResult], target: tuple[float, float]) -> list[int]:
    """The qualities to try next so the lossy rungs span ``target`` (PSNR-Y): at each end
    that falls short, the midpoint between the outermost quality tried and the bound
    (1 below; 100 above, or the lowest quality above it whose rung was near-lossless)."""
    low, high = target
    tried = {r.quality for r in mine}
    lossy = bdrate.lossy(mine)
    wanted = []
    if lossy and not any(r.psnr_y >= high for r in lossy):
        top = max(r.quality for r in lossy)
        bound = min((r.quality for r in mine if r.quality > top), default=101)
        wanted.append((top + bound) // 2)
    if not any(r.psnr_y <= low for r in lossy):
        bottom = min(tried)
        wanted.append(bottom // 2)
    return [q for q in dict.fromkeys(wanted) if 1 <= q <= 100 and q not in tried]


WEAK_UNRANKED = "run under weak isolation: the program could have read the source clip"


def _combined_target(per_clip: dict[str, dict], isolation: str) -> Target:
    """The target over the holdout clips: achieved when achieved on every one; the figures
    shown are those of the first clip that missed it (else the first clip). A program run
    under weak isolation never achieves it: it could have read the source."""
    shown = next((name for name, t in per_clip.items() if not t["achieved"]), next(iter(per_clip)))
    achieved = all(t["achieved"] for t in per_clip.values())
    figures = per_clip[shown]
    if achieved and isolation != bwrap.STRONG:
        achieved, figures = False, {**figures, "reason": WEAK_UNRANKED}
    return Target(
        **{**figures, "achieved": achieved},
        clip=shown,
        per_clip=per_clip if len(per_clip) > 1 else {},
    )


def validation_error(job: Job) -> str | None:
    """Phase 2 alone (policy, contract, smoke run), for a designer's repair loop; stores nothing."""
    try:
        Experiment(job).validate()
    except PhaseFailed as failure:
        return failure.reason
    return None


def evaluate(job: Job) -> ExperimentRecord:
    """Run phases 2 to 7 on ``job`` and store the record, whatever its outcome."""
    return Experiment(job).run()
