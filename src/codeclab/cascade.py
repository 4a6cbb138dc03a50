"""The evaluation cascade: a cheap screen first, the full evaluation only for candidates that
could be good (as AlphaEvolve and OpenEvolve do).

Each candidate of a campaign on a test set with a holdout first runs on the first
``cascade_frames`` pictures of each train clip. Only a candidate whose mean train BD-rate
there is within ``cascade_margin`` points of its parent's (measured the same way) goes on to
the full train set; the others are stored as they are, ``stage: screen``. After the full
train set, only a candidate within ``holdout_margin`` points of the campaign's best train
figure so far goes on to the holdout clips (the leaderboard's); the others are stored with
their train figures, ``stage: train``. Holdout encodes (most of the pixels of the natural
set) so go to candidates that could lead. Stopped candidates never rank; every stage is a
whole experiment (sandbox, decodes, baselines), so its figures are as real as any. The
holdout stage is the same experiment as its train stage, extended: it reuses the train
rungs' bitstreams, decodes and scores instead of running them again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from codeclab.config import Settings
from codeclab.design.evolve import train_bd_rate
from codeclab.evaluate.testsets import TRAIN, TestSetError, TestSetPlan, plan_for
from codeclab.record import ExperimentRecord, HoldoutGate, Screen
from codeclab.runner import Job, RungMemo, evaluate


@dataclass(frozen=True)
class Cascade:
    """What one candidate's cascade needs: plain data, so a pool process can run it."""

    frames: int  # pictures of each train clip on the screen; 0: no screen
    margin: float
    train: frozenset[str]  # content hashes of the train clips
    parent_bd_rate: float | None  # the parent's screen figure; None: no parent to beat
    holdout_margin: float | None = None  # None: every candidate goes on to the holdout
    best_train: float | None = None  # the campaign's best full train figure so far

    def decide(self, figure: float | None) -> tuple[bool, str]:
        """Whether a screen figure goes on to the full train set, and why."""
        if self.parent_bd_rate is None:
            return True, "no parent screen figure to compare with: evaluated in full"
        if figure is None:
            return False, "no BD-rate on the screen"
        limit = self.parent_bd_rate + self.margin
        verdict = "within" if figure <= limit else "beyond"
        return figure <= limit, (
            f"screen BD-rate {figure:+.2f}% is {verdict} {self.margin:g} points of the parent's "
            f"{self.parent_bd_rate:+.2f}%"
        )

    def gate(self, figure: float | None) -> HoldoutGate:
        """Whether a full train figure goes on to the holdout clips, and why."""
        margin = self.holdout_margin

        def verdict(passed: bool, reason: str) -> HoldoutGate:
            return HoldoutGate(
                bd_rate=figure,
                best_bd_rate=self.best_train,
                margin=margin if margin is not None else 0.0,
                passed=passed,
                reason=reason,
            )

        if margin is None:
            return verdict(True, "no holdout gate: every candidate goes on to the holdout")
        if self.best_train is None:
            return verdict(True, "no train figure of the campaign to compare with yet")
        if figure is None:
            return verdict(False, "no BD-rate on the train set")
        limit = self.best_train + margin
        within = "within" if figure <= limit else "beyond"
        return verdict(
            figure <= limit,
            f"train BD-rate {figure:+.2f}% is {within} {margin:g} points of the campaign's best "
            f"{self.best_train:+.2f}%",
        )


def evaluate_cascaded(job: Job, cascade: Cascade | None) -> ExperimentRecord:
    """The screen, the full train set, the holdout: as far as the candidate gets; stores
    exactly one record."""
    if cascade is None:
        return evaluate(job)
    try:
        plan = job.test_set or plan_for(job.settings, job.clips)
    except TestSetError:
        return evaluate(job)  # the experiment fails with the reason
    screen = None
    if cascade.frames:
        screen, stopped = _screen(job, cascade)
        if stopped is not None:
            return stopped
    train = [clip for clip in job.clips if clip.sha256 in cascade.train]
    if cascade.holdout_margin is None or len(train) == len(job.clips):
        return evaluate(replace(job, test_set=plan, stage="full", screen=screen))
    staged = replace(
        job, test_set=plan, screen=screen, experiment_id=str(uuid.uuid4()), memo=RungMemo()
    )
    trained = evaluate(replace(staged, clips=train, save=False, publish=False, stage="train"))
    gate = cascade.gate(train_bd_rate(trained))
    if trained.status != "ok":
        failed = f"{trained.status} on the train set"
        gate = gate.model_copy(update={"passed": False, "reason": failed})
    if not gate.passed:
        stopped = trained.model_copy(update={"gate": gate})
        job.store.save(stopped, job.source)
        return stopped
    return evaluate(replace(staged, stage="full", gate=gate))


def _screen(job: Job, cascade: Cascade) -> tuple[Screen, ExperimentRecord | None]:
    """The candidate on the first pictures of each train clip: its figures, and its stored
    record (``stage: screen``) when it stops there; a passing screen leaves nothing behind."""
    cuts = [clip.head(cascade.frames) for clip in job.clips if clip.sha256 in cascade.train]
    plan = TestSetPlan(
        f"{job.settings.test_set or 'default'}: screen",
        {clip.sha256: TRAIN for clip in cuts},
        note=f"evaluation cascade screen: first {cascade.frames} pictures of each train clip",
    )
    screened = evaluate(replace(job, clips=cuts, test_set=plan, save=False, publish=False))
    figure = train_bd_rate(screened)
    passed, reason = cascade.decide(figure)
    screen = Screen(
        frames=cascade.frames,
        bd_rate=figure,
        parent_bd_rate=cascade.parent_bd_rate,
        margin=cascade.margin,
        passed=passed and screened.status == "ok",
        reason=reason if screened.status == "ok" else f"{screened.status} on the screen",
    )
    if screen.passed:
        _discard(job, screened)
        return screen, None
    stopped = screened.model_copy(update={"stage": "screen", "screen": screen})
    job.store.save(stopped, job.source)
    return screen, stopped


def _discard(job: Job, screened: ExperimentRecord) -> None:
    """Remove the bitstreams of a screen that no record will reference (the full evaluation
    is an experiment of its own), so a campaign leaves no orphans behind."""
    for location in screened.artifacts.bitstreams:
        job.artifacts.delete(job.artifacts.key_of(location))


def cascade_for(
    settings: Settings,
    plan: TestSetPlan | None,
    parent: ExperimentRecord | None,
    best_train: float | None = None,
) -> Cascade | None:
    """The cascade for a candidate of ``parent`` (None: a seed) in a campaign whose best full
    train figure so far is ``best_train``, or None where none runs: it is off (no screen,
    ``cascade_frames = 0``, and no holdout gate, ``holdout_margin = None``) or the test set
    holds nothing out (one clip, say)."""
    off = settings.cascade_frames == 0 and settings.holdout_margin is None
    if off or plan is None or plan.holdout_is_train:
        return None
    train = frozenset(sha for sha, split in plan.splits.items() if split == TRAIN)
    if not train:
        return None
    figure = parent.screen.bd_rate if parent is not None and parent.screen else None
    return Cascade(
        settings.cascade_frames,
        settings.cascade_margin,
        train,
        figure,
        settings.holdout_margin,
        best_train,
    )
