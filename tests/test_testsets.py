"""Test sets: configuration, pins, the train/holdout split, and what designers may see."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest
from pydantic import ValidationError

from codeclab.config import load_settings
from codeclab.design.evolve import fitness
from codeclab.evaluate.testsets import (
    NATURAL_DIR,
    TestSetError,
    default_plan,
    file_sha256,
    load_test_set,
    natural_set,
)
from codeclab.media import frames_sha256, load_clip, write_y4m
from codeclab.ranking import leaderboard
from codeclab.record import (
    BaselineCurve,
    BaselineRungRecord,
    BdRate,
    ClipInfo,
    ExperimentRecord,
    RungResult,
)
from codeclab.runner import Job, evaluate
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore
from tests.conftest import crop

CODECLAB = [sys.executable, "-m", "codeclab"]
PROGRAM = Path(__file__).parent / "programs" / "quantise_zlib.py"


@pytest.fixture()
def two_clips(home: Path, sample) -> tuple[Path, Path]:
    """Two different 96x64 windows of the sample, in the working directory."""
    first = write_y4m(Path("a.y4m"), [crop(f, 96, 64, 112, 96) for f in sample.frames[:3]], 30.0)
    second = write_y4m(Path("b.y4m"), [crop(f, 96, 64, 16, 16) for f in sample.frames[:3]], 30.0)
    return first, second


def write_config(text: str) -> None:
    Path("codeclab.toml").write_text(text)


def test_named_set_parses_and_loads_with_its_split(two_clips) -> None:
    a, b = two_clips
    write_config(
        f'[test_sets.small]\ntrain = ["{a}"]\nholdout = ["{b}"]\n'
        f'sha256 = {{ "{a}" = "{file_sha256(a)}" }}\n'
    )
    settings = load_settings(test_set="small")
    assert settings.test_sets["small"].holdout == [b]
    clips, plan = load_test_set(settings)
    assert [c.path for c in clips] == [a, b]
    assert plan.name == "small" and not plan.holdout_is_train
    assert [plan.split_of(c.sha256) for c in clips] == ["train", "holdout"]


@pytest.mark.parametrize(
    "config, message",
    [
        ('[test_sets.x]\nholdout = ["a.y4m"]\n', "train"),
        ('[test_sets.x]\ntrain = ["a.y4m"]\nsha256 = { "c.y4m" = "' + "0" * 64 + '" }\n', "names"),
        ('[test_sets.x]\ntrain = ["a.y4m"]\nsha256 = { "a.y4m" = "xyz" }\n', "64 hex"),
        ('[test_sets.x]\ntrain = ["a.y4m"]\nshuffle = true\n', "shuffle"),
        ('test_set = "nope"\n', "unknown test set 'nope' \\(built in: natural"),
        ('[test_sets.natural]\ntrain = ["a.y4m"]\n', "'natural' is built in"),
    ],
)
def test_bad_test_set_configuration_names_the_problem(home, config: str, message: str) -> None:
    write_config(config)
    with pytest.raises(ValidationError, match=message):
        load_settings()


def test_a_pin_that_does_not_match_refuses_the_run(two_clips) -> None:
    a, b = two_clips
    write_config(
        f'[test_sets.small]\ntrain = ["{a}"]\nholdout = ["{b}"]\n'
        f'sha256 = {{ "{b}" = "{"0" * 64}" }}\n'
    )
    with pytest.raises(TestSetError, match="refusing to run on a different clip"):
        load_test_set(load_settings(test_set="small"))
    done = subprocess.run(
        [*CODECLAB, "evaluate", str(PROGRAM), "--test-set", "small"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "sha256" in done.stderr


def test_clip_and_test_set_exclude_each_other(two_clips) -> None:
    a, b = two_clips
    write_config(f'[test_sets.small]\ntrain = ["{a}"]\nholdout = ["{b}"]\n')
    done = subprocess.run(
        [*CODECLAB, "evaluate", str(PROGRAM), "--test-set", "small", "--clip", str(a)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "exclude each other" in done.stderr


def test_overlapping_train_and_holdout_is_refused(two_clips) -> None:
    a, b = two_clips
    write_config(f'[test_sets.mixed]\ntrain = ["{a}", "{b}"]\nholdout = ["{b}"]\n')
    with pytest.raises(TestSetError, match="in both train and holdout"):
        load_test_set(load_settings(test_set="mixed"))
    write_config(f'[test_sets.same]\ntrain = ["{a}"]\nholdout = ["{a}"]\n')
    clips, plan = load_test_set(load_settings(test_set="same"))
    assert len(clips) == 1 and plan.holdout_is_train
    assert plan.split_of(clips[0].sha256) == "train+holdout"


def test_default_set_is_the_clips(two_clips, sample) -> None:
    a, b = two_clips
    one = default_plan([sample])
    assert one.holdout_is_train and one.split_of(sample.sha256) == "train+holdout"
    clips = [load_clip(a), load_clip(b)]
    two = default_plan(clips)
    assert not two.holdout_is_train
    assert [two.split_of(c.sha256) for c in clips] == ["train", "holdout"]


def record_with(train_bd: float, holdout_bd: float) -> ExperimentRecord:
    """A finished experiment on two clips: 'a' is train, 'b' is holdout."""
    clips = [
        ClipInfo(name=n, path=f"{n}.y4m", sha256=n * 64, width=96, height=64, frames=3, fps=30.0)
        for n in "ab"
    ]
    clips[0].split, clips[1].split = "train", "holdout"
    rung = dict(
        bytes=100, frames=3, width=96, height=64, fps=30.0, kbps=8.0, bpp=0.04,
        encode_s=0.1, decode_s=0.1, psnr_y=30.0, psnr_u=40.0, psnr_v=40.0, psnr_yuv=32.5,
        ssim_y=0.9,
    )  # fmt: skip
    results = [
        RungResult(
            **rung,
            clip=c.name,
            quality=50,
            clip_sha256=c.sha256,
            bitstream_sha256="0" * 64,
            decoded_sha256="1" * 64,
        )  # fmt: skip
        for c in clips
    ]
    curves = [
        BaselineCurve(
            encoder="x264",
            version="v",
            settings={},
            clip_sha256=c.sha256,
            rungs=[BaselineRungRecord(**rung, clip=c.name, crf=27)],
        )  # fmt: skip
        for c in clips
    ]
    every = BdRate(value=(train_bd + holdout_bd) / 2, per_clip={"a": train_bd, "b": holdout_bd})
    return ExperimentRecord(
        experiment_id="e",
        status="ok",
        program_sha256="f" * 64,
        program_name="p",
        designer="evolve",
        isolation="strong",
        source_bytes=1,
        qualities=[50],
        clips=clips,
        results=results,
        baselines={"x264": curves},
        bd_rate={"x264": {"psnr_y": every}},
        bd_rate_train={"x264": {"psnr_y": BdRate(value=train_bd, per_clip={"a": train_bd})}},
        bd_rate_holdout={"x264": {"psnr_y": BdRate(value=holdout_bd, per_clip={"b": holdout_bd})}},
        test_set="small",
    )


def test_designer_fitness_ignores_holdout_scores() -> None:
    base = record_with(train_bd=10.0, holdout_bd=-40.0)
    assert fitness(base) == 10.0
    assert fitness(record_with(train_bd=10.0, holdout_bd=+80.0)) == fitness(base)
    assert fitness(record_with(train_bd=5.0, holdout_bd=-40.0)) == 5.0
    # the leaderboard is the other way round
    assert leaderboard(base) == -40.0
    assert base.headline()["bd_rate_x265"] is None  # no x265 in this record


def test_train_view_shows_designers_nothing_of_holdout_clips() -> None:
    seen = record_with(train_bd=10.0, holdout_bd=-40.0).train_view()
    assert [c.name for c in seen.clips] == ["a"]
    assert [r.clip for r in seen.results] == ["a"]
    assert [c.clip_sha256 for c in seen.baselines["x264"]] == ["a" * 64]
    assert seen.bd_rate["x264"]["psnr_y"].value == 10.0
    assert seen.bd_rate["x264"]["psnr_y"].per_clip == {"a": 10.0}
    assert seen.bd_rate_holdout == {} and seen.target is None
    assert "-40" not in seen.model_dump_json()
    assert fitness(seen) == 10.0


def test_experiment_records_split_figures_and_judges_the_target_on_holdout(two_clips) -> None:
    a, b = two_clips
    write_config(f'[test_sets.small]\ntrain = ["{a}"]\nholdout = ["{b}"]\n')
    settings = load_settings(test_set="small", qualities=[30, 90], baselines=["x265"])
    clips, plan = load_test_set(settings)
    record = evaluate(
        Job(
            source=PROGRAM.read_text(),
            name="quantise_zlib",
            clips=clips,
            settings=settings,
            store=ExperimentStore(settings.db_url),
            artifacts=LocalArtifactStore(settings.artifacts_dir),
            test_set=plan,
        )
    )
    assert record.status == "ok", record.error
    assert (record.test_set, record.holdout_is_train) == ("small", False)
    assert [(c.name, c.split) for c in record.clips] == [("a", "train"), ("b", "holdout")]
    assert {r.clip for r in record.results} == {"a", "b"}  # every clip's results are kept
    train = record.bd_rate_train["x265"]["psnr_y"]
    holdout = record.bd_rate_holdout["x265"]["psnr_y"]
    assert set(train.per_clip) == {"a"} and set(holdout.per_clip) == {"b"}
    assert set(record.bd_rate["x265"]["psnr_y"].per_clip) == {"a", "b"}
    assert record.target is not None and record.target.clip == "b"
    assert set(record.bd_rate["x265"]) == {"psnr_y", "ssim_y", "ms_ssim_y", "vmaf"}
    assert "161x161" in record.bd_rate["x265"]["ms_ssim_y"].reason  # 96x64 is too small
    again = ExperimentStore(settings.db_url).get(record.experiment_id)
    assert again.model_dump(exclude={"created_at"}) == record.model_dump(exclude={"created_at"})


# the natural set: (file, width, height, frames, split), and the content hash of its frames
# as load_clip reads them (made by scripts/make_natural_set.py, equal to the sources' frames)
NATURAL = [
    ("cars_320x240_16f.mkv", 320, 240, 16, "train"),
    ("carphone_176x144_16f.mkv", 176, 144, 16, "train"),
    ("bikes_640x272_16f.mkv", 640, 272, 16, "train"),
    ("cisco_vt2people_320x192_9f.mkv", 320, 192, 9, "holdout"),
    ("asl_book_640x480_16f.mkv", 640, 480, 16, "holdout"),
    ("car_detection_768x432_16f.mkv", 768, 432, 16, "holdout"),
]
NATURAL_FRAMES_SHA256 = {
    "cars_320x240_16f.mkv": "825d24c853e4d6fec1001d74cafe662fa5e122b4b2f1f976f39bd9efb424ecf6",
    "carphone_176x144_16f.mkv": "ed5b52965988a107fb9994fc6fb1a5c36c1147bfc3a40ecc9880864e683d2ea5",
    "cisco_vt2people_320x192_9f.mkv": (
        "1cac374295303d179d6d4426ceeb9146fd3ce6d12cd6352255e11164e6be8a65"
    ),
    "asl_book_640x480_16f.mkv": "f89e1e79cbae3a79befdadd334b2f125e36be8209534d360adb794b994621d87",
}


def stored_geometry(path: Path) -> tuple[int, int, int]:
    """Width, height and frame count of a stored clip, by demuxing (no decode)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sum(1 for p in container.demux(stream) if p.size)
        return stream.codec_context.width, stream.codec_context.height, packets


def test_natural_set_is_built_in_and_split_as_fixed(home) -> None:
    spec = natural_set()
    assert [p.name for p in spec.train] == [n for n, *_, s in NATURAL if s == "train"]
    assert [p.name for p in spec.holdout] == [n for n, *_, s in NATURAL if s == "holdout"]
    assert {Path(k).name for k in spec.sha256} == {n for n, *_ in NATURAL}
    for name, width, height, frames, _ in NATURAL:
        assert stored_geometry(NATURAL_DIR / name) == (width, height, frames), name
    clips, plan = load_test_set(load_settings(test_set="natural", max_frames=2))
    assert plan.name == "natural" and not plan.holdout_is_train
    seen = [(c.path.name, c.width, c.height, plan.split_of(c.sha256)) for c in clips]
    assert seen == [(n, w, h, s) for n, w, h, _, s in NATURAL]


@pytest.mark.parametrize("name", sorted(NATURAL_FRAMES_SHA256))
def test_natural_clips_decode_to_their_pinned_pictures(name: str) -> None:
    clip = load_clip(NATURAL_DIR / name)
    assert frames_sha256(clip.frames) == NATURAL_FRAMES_SHA256[name]
    stored_full_range = name.startswith("asl_book")
    expected = (
        ["full-range yuv420p converted to limited-range yuv420p"] if stored_full_range else []
    )
    assert clip.conversions == expected


def test_natural_pins_refuse_a_changed_clip(home, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(NATURAL_DIR, copy)
    changed = copy / "carphone_176x144_16f.mkv"
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 1
    changed.write_bytes(bytes(data))
    settings = load_settings(test_sets={"copy": natural_set(copy)}, test_set="copy")
    with pytest.raises(TestSetError, match="carphone_176x144_16f.mkv has sha256 .* refusing"):
        load_test_set(settings)


def test_evaluate_runs_on_the_natural_set(home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODECLAB_PUBLISH", "target")  # no baselines, no target: not published
    monkeypatch.setenv("CODECLAB_VMAF", "false")
    done = subprocess.run(
        [*CODECLAB, "evaluate", str(PROGRAM), "--test-set", "natural", "--frames", "2"]
        + ["--baselines", "none", "--qualities", "50", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "ok", record["error"]
    assert record["test_set"] == "natural" and not record["holdout_is_train"]
    splits = [(c["name"] + ".mkv", c["split"]) for c in record["clips"]]
    assert splits == [(n, s) for n, *_, s in NATURAL]


def test_the_built_in_sets_are_the_ones_the_settings_know() -> None:
    from codeclab.config import BUILT_IN_TEST_SETS
    from codeclab.evaluate.testsets import BUILT_IN

    assert set(BUILT_IN) == set(BUILT_IN_TEST_SETS)
