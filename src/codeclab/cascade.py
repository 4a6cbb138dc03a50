"""The evaluation cascade: a cheap screen first, the full evaluation only for candidates that
could be good (as AlphaEvolve and OpenEvolve do).

Each candidate of a campaign on a test set with a holdout first runs on the first
``cascade_frames`` pictures of each train clip. Only a candidate whose mean train BD-rate
there is within ``cascade_margin`` points of its parent's (measured the same way) goes on to
the full evaluation on every clip; the others are stored as they are, ``stage: screen``,
and never rank. A screen is a whole experiment (sandbox, decodes, baselines), so its figure
is as real as any; it is just on fewer pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from codeclab.config import Settings
from codeclab.design.evolve import train_bd_rate
from codeclab.evaluate.testsets import TRAIN, TestSetPlan
from codeclab.record import ExperimentRecord, Screen
from codeclab.runner import Job, evaluate


@dataclass(frozen=True)
class Cascade:
    """What one candidate's screen needs: plain data, so a pool process can run it."""

    frames: int
    margin: float
    train: frozenset[str]  # content hashes of the train clips
    parent_bd_rate: float | None  # the parent's screen figure; None: no parent to beat

    def decide(self, figure: float | None) -> tuple[bool, str]:
        """Whether a screen figure goes on to the full evaluation, and why."""
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


def evaluate_cascaded(job: Job, cascade: Cascade | None) -> ExperimentRecord:
    """The screen, then (if it passes) the full evaluation; stores exactly one record."""
    if cascade is None:
        return evaluate(job)
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
    if not screen.passed:
        stopped = screened.model_copy(update={"stage": "screen", "screen": screen})
        job.store.save(stopped, job.source)
        return stopped
    _discard(job, screened)
    return evaluate(replace(job, stage="full", screen=screen))


def _discard(job: Job, screened: ExperimentRecord) -> None:
    """Remove the bitstreams of a screen that no record will reference (the full evaluation
    is an experiment of its own), so a campaign leaves no orphans behind."""
    for location in screened.artifacts.bitstreams:
        job.artifacts.delete(job.artifacts.key_of(location))


def cascade_for(
    settings: Settings, plan: TestSetPlan | None, parent: ExperimentRecord | None
) -> Cascade | None:
    """The cascade for a candidate of ``parent`` (None: a seed), or None where none runs: it
    is off (``cascade_frames = 0``) or the test set holds nothing out (one clip, say)."""
    if settings.cascade_frames == 0 or plan is None or plan.holdout_is_train:
        return None
    train = frozenset(sha for sha, split in plan.splits.items() if split == TRAIN)
    if not train:
        return None
    figure = parent.screen.bd_rate if parent is not None and parent.screen else None
    return Cascade(settings.cascade_frames, settings.cascade_margin, train, figure)
