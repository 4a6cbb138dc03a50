"""The evaluation cascade: a screen on short cuts of the train clips, the full evaluation only
for candidates within the margin of their parent; one record either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeclab.cascade import Cascade, cascade_for, evaluate_cascaded
from codeclab.config import load_settings
from codeclab.evaluate.testsets import HOLDOUT, TRAIN, TestSetPlan, default_plan
from codeclab.media import load_clip, write_y4m
from codeclab.record import Screen
from codeclab.runner import Job
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore
from tests.conftest import crop

SEED = Path(__file__).parents[1] / "src" / "codeclab" / "programs" / "intra_dct.py"


@pytest.fixture()
def job(home, sample, tmp_path) -> Job:
    """intra_dct on a train clip and a holdout clip, two 96x64 windows of the sample."""
    paths = [
        write_y4m(tmp_path / f"{name}.y4m", [crop(f, 96, 64, x, 96) for f in sample.frames[:4]], 30)
        for name, x in (("train_cut", 112), ("holdout_cut", 16))
    ]
    settings = load_settings(clips=paths, qualities=[40, 70], baselines=["x264"], publish="target")
    return Job(
        source=SEED.read_text(),
        name="intra_dct",
        clips=[load_clip(path) for path in paths],
        settings=settings,
        store=ExperimentStore(settings.db_url),
        artifacts=LocalArtifactStore(settings.artifacts_dir),
    )


def cascade(job: Job, parent_bd_rate: float | None) -> Cascade:
    return Cascade(2, 5.0, frozenset({job.clips[0].sha256}), parent_bd_rate)


def test_decide_compares_with_the_parent_within_the_margin() -> None:
    rule = Cascade(4, 5.0, frozenset(), parent_bd_rate=10.0)
    assert rule.decide(14.0)[0] and rule.decide(15.0)[0]
    passed, reason = rule.decide(15.5)
    assert not passed and "+15.50% is beyond 5 points of the parent's +10.00%" in reason
    assert rule.decide(None) == (False, "no BD-rate on the screen")
    assert Cascade(4, 5.0, frozenset(), None).decide(None)[0]  # a seed: nothing to beat


def test_a_candidate_beyond_the_margin_stops_after_its_screen(job: Job) -> None:
    record = evaluate_cascaded(job, cascade(job, parent_bd_rate=-1000.0))
    assert record.status == "ok" and record.stage == "screen"
    assert [(c.name, c.frames, c.split) for c in record.clips] == [("train_cut", 2, TRAIN)]
    assert record.screen.passed is False and record.screen.bd_rate is not None
    assert record.leaderboard_bd_rate("x264") is None  # never ranks
    assert [r.experiment_id for r in job.store.list()] == [record.experiment_id]
    assert job.store.get(record.experiment_id).stage == "screen"


def test_a_candidate_within_the_margin_is_evaluated_in_full(job: Job) -> None:
    record = evaluate_cascaded(job, cascade(job, parent_bd_rate=1000.0))
    assert record.status == "ok" and record.stage == "full"
    assert [(c.frames, c.split) for c in record.clips] == [(4, TRAIN), (4, HOLDOUT)]
    assert record.screen.passed and record.screen.frames == 2
    assert record.leaderboard_bd_rate("x264").value is not None
    assert [r.experiment_id for r in job.store.list()] == [record.experiment_id]
    stored = {p for p in job.artifacts.root.rglob("*") if p.is_file()}
    referenced = {Path(location) for location in record.artifacts.bitstreams}
    assert {p for p in stored if "bitstreams" in p.parts} == referenced  # the screen's: gone


def test_cascade_runs_only_on_test_sets_with_a_holdout(job: Job) -> None:
    settings = job.settings
    one = default_plan(job.clips[:1])
    assert cascade_for(settings, one, None) is None  # the holdout is the train clip
    two = default_plan(job.clips)
    seed = cascade_for(settings, two, None)
    assert seed.train == {job.clips[0].sha256} and seed.parent_bd_rate is None
    parent = evaluate_cascaded(job, cascade(job, parent_bd_rate=-1000.0))
    assert cascade_for(settings, two, parent).parent_bd_rate == parent.screen.bd_rate
    off = settings.model_copy(update={"cascade_frames": 0})
    assert cascade_for(off, two, parent) is None
    assert isinstance(parent.screen, Screen)
    assert cascade_for(settings, TestSetPlan("x", {}), None) is None
