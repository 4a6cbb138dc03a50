"""The evaluation cascade: a screen on short cuts of the train clips, the full train set only
for candidates within the margin of their parent, the holdout only for those within the margin
of the campaign's best train figure; one record whichever stage it ends at."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from codeclab.campaign import Callbacks, run_campaign
from codeclab.cascade import Cascade, cascade_for, evaluate_cascaded
from codeclab.config import load_settings
from codeclab.design.evolve import fitness
from codeclab.evaluate.testsets import HOLDOUT, TRAIN, TestSetPlan, default_plan
from codeclab.media import load_clip, write_y4m
from codeclab.record import Screen
from codeclab.runner import Job, RungMemo
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
    assert seed.holdout_margin == settings.holdout_margin and seed.best_train is None
    assert cascade_for(settings, two, parent, best_train=3.0).best_train == 3.0
    no_screen = settings.model_copy(update={"cascade_frames": 0})
    assert cascade_for(no_screen, two, parent).frames == 0  # the holdout gate alone
    off = no_screen.model_copy(update={"holdout_margin": None})
    assert cascade_for(off, two, parent) is None
    assert isinstance(parent.screen, Screen)
    assert cascade_for(settings, TestSetPlan("x", {}), None) is None


def gated(job: Job, best_train: float | None) -> Cascade:
    """No screen: the full train set, then the holdout within 1 point of ``best_train``."""
    return Cascade(0, 5.0, frozenset({job.clips[0].sha256}), None, 1.0, best_train)


def test_gate_compares_with_the_campaigns_best_train_figure() -> None:
    rule = Cascade(0, 5.0, frozenset(), None, holdout_margin=1.0, best_train=-4.0)
    assert rule.gate(-5.0).passed and rule.gate(-3.0).passed
    late = rule.gate(-2.5)
    assert not late.passed and late.best_bd_rate == -4.0 and late.bd_rate == -2.5
    assert "-2.50% is beyond 1 points of the campaign's best -4.00%" in late.reason
    assert not rule.gate(None).passed
    assert Cascade(0, 5.0, frozenset(), None, 1.0, None).gate(None).passed  # nothing to beat yet
    assert Cascade(0, 5.0, frozenset(), None, None, -4.0).gate(50.0).passed  # no gate


def test_a_candidate_beyond_the_holdout_margin_stops_after_the_train_set(job: Job) -> None:
    record = evaluate_cascaded(job, gated(job, best_train=-1000.0))
    assert record.status == "ok" and record.stage == "train" and record.screen is None
    assert [(c.name, c.frames, c.split) for c in record.clips] == [("train_cut", 4, TRAIN)]
    assert record.gate.passed is False and record.gate.bd_rate is not None
    assert record.bd_rate_train["x264"]["psnr_y"].value == record.gate.bd_rate
    assert record.leaderboard_bd_rate("x264") is None  # no holdout figure: never ranks
    assert job.store.get(record.experiment_id).gate == record.gate
    assert [r.experiment_id for r in job.store.list()] == [record.experiment_id]
    stored = {p for p in job.artifacts.root.rglob("*") if p.is_file() and "bitstreams" in p.parts}
    assert stored == {Path(location) for location in record.artifacts.bitstreams}


def test_the_holdout_stage_reuses_the_train_rungs(job: Job) -> None:
    """A candidate within the margin is the same experiment extended to the holdout clips:
    each train rung is encoded once, and the record is the one a plain evaluation gives."""
    steps: list[str] = []
    record = evaluate_cascaded(replace(job, on_step=steps.append), gated(job, best_train=1000.0))
    assert record.status == "ok" and record.stage == "full" and record.gate.passed
    assert [(c.name, c.split) for c in record.clips] == [
        ("train_cut", TRAIN),
        ("holdout_cut", HOLDOUT),
    ]
    encodes = [s for s in steps if s.startswith("encode: ")]
    assert len(encodes) == len(set(encodes)) and "encode: holdout_cut q40" in encodes
    assert record.leaderboard_bd_rate("x264").value is not None
    assert [r.experiment_id for r in job.store.list()] == [record.experiment_id]
    stored = {p for p in job.artifacts.root.rglob("*") if p.is_file() and "bitstreams" in p.parts}
    assert stored == {Path(location) for location in record.artifacts.bitstreams}
    plain = evaluate_cascaded(replace(job, on_step=steps.append), None)
    assert [(r.clip, r.quality, r.bitstream_sha256, r.psnr_y) for r in record.results] == [
        (r.clip, r.quality, r.bitstream_sha256, r.psnr_y) for r in plain.results
    ]
    assert record.bd_rate_holdout == plain.bd_rate_holdout


def test_a_rung_memo_serves_one_program() -> None:
    memo = RungMemo().bind("a" * 64)
    assert memo.bind("a" * 64) is memo
    with pytest.raises(ValueError, match="one program"):
        memo.bind("b" * 64)


def test_a_campaign_gates_each_candidate_on_the_best_train_figure_before_it(job: Job) -> None:
    """Two workers, each taking the next candidate when its experiment ends: a candidate goes
    on to the holdout only if its train figure beats (margin 0) the best of the experiments
    that had ended when it was proposed; the others are stored at ``stage: train``, keep
    their train figure for the designer and never rank."""
    settings = job.settings.model_copy(
        update={
            "iterations": 6,
            "workers": 2,
            "holdout_margin": 0.0,
            "cascade_frames": 2,
            "cascade_margin": 5.0,
        }
    )
    ended: list[int] = []
    seen: dict[int, list[int]] = {}  # what had ended when each iteration was proposed
    callbacks = Callbacks(
        on_experiment=lambda iteration, name: seen.setdefault(iteration, list(ended)),
        on_done=lambda record: ended.append(record.iteration),
    )
    result = run_campaign(settings, job.clips, job.store, job.artifacts, callbacks=callbacks)
    records = sorted(result.experiments, key=lambda r: r.iteration)
    assert [r.iteration for r in records] == [1, 2, 3, 4, 5, 6]
    assert seen[1] == seen[2] == [] and seen[3]  # two at once; the third waits for one
    for record in records:
        earlier = [r for r in records if r.iteration in seen[record.iteration]]
        before = [f for r in earlier if (f := fitness(r)) is not None]
        if record.stage == "screen" or record.status != "ok":
            continue
        assert record.gate is not None and record.gate.best_bd_rate == min(before, default=None)
        if record.stage == "train":
            assert not record.gate.passed and fitness(record) > min(before)
            assert record.leaderboard_bd_rate("x264") is None
            assert [c.split for c in record.clips] == [TRAIN]
        else:
            assert record.stage == "full" and record.gate.passed
            assert before == [] or fitness(record) <= min(before)
            assert record.leaderboard_bd_rate("x264").value is not None
    assert {r.experiment_id for r in job.store.list()} == {r.experiment_id for r in records}
    assert any(r.gate and r.gate.best_bd_rate is not None for r in records)  # gates compared
