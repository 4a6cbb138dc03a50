"""The lab's own work per experiment, kept small without weakening a check: each rung's second
decode is the published decoder file's (the determinism check and the published decoder's
check in one decode, so publishing decodes nothing again), a program is parsed once for all
its sandboxed runs, and the rungs of one experiment share the machine's cores."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from codeclab.cascade import Cascade, evaluate_cascaded
from codeclab.config import load_settings
from codeclab.evaluate.testsets import HOLDOUT, TRAIN, TestSetPlan
from codeclab.executors import tasks
from codeclab.media import load_clip, write_y4m
from codeclab.runner import Job, evaluate, rung_threads
from codeclab.sandbox import isolate
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore
from tests.conftest import crop

PROGRAMS = Path(__file__).parent / "programs"
SOURCE = (PROGRAMS / "quantise_zlib.py").read_text()


def job_for(clips: list[Path], **settings) -> Job:
    settings = load_settings(clips=clips, **{"qualities": [30, 90], "baselines": [], **settings})
    return Job(
        source=SOURCE,
        name="quantise_zlib",
        clips=[load_clip(path) for path in clips],
        settings=settings,
        store=ExperimentStore(settings.db_url),
        artifacts=LocalArtifactStore(settings.artifacts_dir),
    )


def spy_on_decodes(monkeypatch) -> tuple[list[str], list[str]]:
    """The decoder file each rung's check ran, and the program text of every sandboxed
    decode (the real functions run)."""
    checked, decoded = [], []
    real_rung, real_decode = tasks.decode_rung, isolate.run_decode

    def rung(source, decoder, *rest):
        checked.append(decoder)
        return real_rung(source, decoder, *rest)

    def decode(program, *rest, **options):
        decoded.append(program)
        return real_decode(program, *rest, **options)

    monkeypatch.setattr(tasks, "decode_rung", rung)
    monkeypatch.setattr(isolate, "run_decode", decode)
    return checked, decoded


def published_decoder(job: Job, record) -> str:
    return job.artifacts.get_bytes(f"decoders/{record.experiment_id}_decoder.py").decode()


def test_every_rung_is_checked_by_the_published_decoder_and_publish_decodes_nothing(
    home, small_clip_path, monkeypatch
):
    checked, decoded = spy_on_decodes(monkeypatch)
    job = job_for([small_clip_path])
    record = evaluate(job)
    assert record.status == "ok", record.error
    published = published_decoder(job, record)
    assert checked == [published, published]  # one check per rung, with the very file published
    # the smoke run's decode, and per rung the program's and the published file's: no third
    # (rungs run at once, so in any order)
    assert sorted(decoded) == sorted([SOURCE, SOURCE, published, SOURCE, published])


def test_the_stages_of_a_cascade_check_with_the_one_decoder_file_they_publish(
    home, sample, tmp_path, monkeypatch
):
    """The train stage's rungs are reused by the holdout stage; the file published at the end
    must be the one those rungs were checked with, though the stages' records differ (here
    the first clip, whose rate the file names, is another in each stage)."""
    paths = [
        write_y4m(
            tmp_path / f"{name}.y4m", [crop(f, 96, 64, x, 96) for f in sample.frames[:2]], fps
        )
        for name, x, fps in (("holdout_cut", 16, 25), ("train_cut", 112, 30))
    ]
    job = job_for(paths, publish="all")
    holdout, train = job.clips
    plan = TestSetPlan("two cuts", {holdout.sha256: HOLDOUT, train.sha256: TRAIN})
    checked, _ = spy_on_decodes(monkeypatch)
    gate = Cascade(0, 5.0, frozenset({train.sha256}), None, 1.0, None)  # nothing to beat yet
    record = evaluate_cascaded(replace(job, test_set=plan), gate)
    assert record.status == "ok" and record.stage == "full", record.error
    assert len(checked) == 4 and set(checked) == {published_decoder(job, record)}


def test_a_program_is_parsed_once_for_all_its_sandboxed_runs(small_clip_path):
    frames = load_clip(small_clip_path).frames[:2]
    limits = isolate.Limits.for_clip(96, 64, 2)
    source = SOURCE + "\n# parsed once\n"  # a text no other test has parsed in this process
    before = isolate._parsed_style.cache_info()
    for quality in (30, 60):
        encoded = isolate.run_encode(source, frames, 30.0, quality, limits)
        isolate.run_decode(source, encoded.bitstream, limits)
    after = isolate._parsed_style.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 3)


def test_rungs_share_the_cores_with_the_campaigns_other_experiments(home):
    cores = len(os.sched_getaffinity(0))
    assert rung_threads(load_settings(workers=1)) == cores
    assert rung_threads(load_settings(workers=cores + 1)) == 1
