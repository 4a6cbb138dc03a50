"""End-to-end honesty tests: each fails loudly if an invariant of DESIGN.md section 1 breaks."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codeclab.config import load_settings
from codeclab.media import load_clip
from codeclab.runner import Job, evaluate
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore
from tests.conftest import cli

PROGRAMS = Path(__file__).parent / "programs"


def run_job(program: str, clip_path: Path, home: Path, **settings):
    settings = load_settings(clips=[clip_path], **settings)
    source = (PROGRAMS / program).read_text()
    job = Job(
        source=source,
        name=Path(program).stem,
        clips=[load_clip(clip_path)],
        settings=settings,
        store=ExperimentStore(settings.db_url),
        artifacts=LocalArtifactStore(settings.artifacts_dir),
    )
    return evaluate(job), job


def independent_psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_known_program_bytes_kbps_and_psnr_agree_with_independent_computation(
    home, small_clip_path
):
    record, job = run_job(
        "quantise_zlib.py", small_clip_path, home, qualities=[30, 90], baselines=["x265"]
    )
    assert record.status == "ok", record.error
    clip = job.clips[0]
    spec = importlib.util.spec_from_file_location("known", PROGRAMS / "quantise_zlib.py")
    known = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(known)
    for result, path in zip(record.results, record.artifacts.bitstreams, strict=True):
        bitstream = Path(path).read_bytes()
        assert (
            result.bytes
            == len(bitstream)
            == len(known.encode(clip.frames, clip.fps, result.quality))
        )
        assert result.kbps == pytest.approx(len(bitstream) * 8 * clip.fps / len(clip.frames) / 1000)
        decoded = known.decode(bitstream)
        expected = np.mean(
            [independent_psnr(s[0], d[0]) for s, d in zip(clip.frames, decoded, strict=True)]
        )
        assert result.psnr_y == pytest.approx(expected, abs=1e-9)
    by_quality = {r.quality: r.psnr_y for r in record.results}
    assert by_quality[90] > by_quality[30]


def test_reported_baseline_is_a_real_encode(home, small_clip_path):
    record, _ = run_job(
        "quantise_zlib.py", small_clip_path, home, qualities=[30, 90], baselines=["x265"]
    )
    rungs = record.baselines["x265"][0].rungs
    assert len(rungs) >= 4
    files = {
        p.stat().st_size
        for p in (home / "cache" / "baselines").rglob("*")
        if p.suffix in {".hevc", ".265", ".h265", ".bin", ".mkv", ".mp4"}
    }
    for rung in rungs:
        assert rung.bytes in files, f"no cached bitstream of {rung.bytes} bytes for crf {rung.crf}"
    # more bits, better pictures: a real encoder's curve, not a constant
    ordered = sorted(rungs, key=lambda r: r.kbps)
    assert ordered[0].psnr_y < ordered[-1].psnr_y


def test_decoder_returning_one_frame_too_few_fails_naming_frames(home, small_clip_path):
    record, _ = run_job("one_frame_short.py", small_clip_path, home, baselines=[])
    assert record.status == "failed"
    assert "frames" in record.error
    assert record.results == [] and record.artifacts.reconstructed is None


def test_frames_kept_in_module_state_get_no_credit(home, small_clip_path):
    record, _ = run_job("smuggler.py", small_clip_path, home, baselines=[])
    assert record.status == "failed"
    assert record.results == []
    assert not record.bd_rate


def test_policy_rejects_before_anything_runs(home, small_clip_path, tmp_path):
    hostile = tmp_path / "hostile.py"
    hostile.write_text(
        "import os\n\ndef encode(frames, fps, quality):\n    return b''\n\n"
        "def decode(bitstream):\n    return []\n"
    )
    settings = load_settings(clips=[small_clip_path], baselines=[])
    job = Job(
        source=hostile.read_text(),
        name="hostile",
        clips=[load_clip(small_clip_path)],
        settings=settings,
        store=ExperimentStore(settings.db_url),
        artifacts=LocalArtifactStore(settings.artifacts_dir),
    )
    record = evaluate(job)
    assert (record.status, record.phase) == ("rejected", "validation")
    assert "os" in record.error
    assert [p.name for p in record.phases] == ["design", "validation"]


def test_evaluate_json_record_and_standalone_decoder(home, small_clip_path, tmp_path):
    program = Path(__file__).parents[1] / "src" / "codeclab" / "programs" / "intra_dct.py"
    done = cli(
        "evaluate",
        str(program),
        "--clip",
        str(small_clip_path),
        "--qualities",
        "30,70",
        "--baselines",
        "x264,x265",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "ok", record["error"]
    for key in (
        "program_sha256",
        "isolation",
        "results",
        "baselines",
        "bd_rate",
        "target",
        "experiment_id",
        "artifacts",
    ):
        assert key in record
    first = record["results"][0]
    assert first["bytes"] == Path(record["artifacts"]["bitstreams"][0]).stat().st_size
    assert set(record["bd_rate"]) == {"x264", "x265"}
    # the published decoder runs alone, in a clean interpreter, and matches the lab's decode
    out = tmp_path / "out.y4m"
    decoder = record["artifacts"]["decoder"]
    alone = subprocess.run(
        [sys.executable, "-I", decoder, record["artifacts"]["bitstreams"][0], "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert alone.returncode == 0, alone.stderr
    assert load_clip(out).sha256 == first["decoded_sha256"]
    shown = json.loads(cli("show", record["experiment_id"][:8], "--json", cwd=tmp_path).stdout)
    assert shown["results"] == record["results"]


def test_run_campaign_json(home, small_clip_path, tmp_path):
    done = cli(
        "run",
        "--iterations",
        "3",
        "--clip",
        str(small_clip_path),
        "--qualities",
        "30,70",
        "--baselines",
        "x265",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [e["iteration"] for e in summary["experiments"]] == [1, 2, 3]
    assert summary["best"] in {e["experiment_id"] for e in summary["experiments"]}
    listed = json.loads(cli("list", "--json", cwd=tmp_path).stdout)["experiments"]
    assert len(listed) == 3


def test_bad_input_exits_2_with_one_line(home, tmp_path):
    missing = cli("evaluate", str(tmp_path / "nope.py"), cwd=tmp_path)
    assert missing.returncode == 2 and "error" in missing.stderr
    bad = cli("run", "--qualities", "0,500", cwd=tmp_path)
    assert bad.returncode == 2 and "qualities" in bad.stderr
    unknown = cli("show", "does-not-exist", cwd=tmp_path)
    assert unknown.returncode == 2


def test_decode_command_runs_a_published_decoder_in_the_sandbox(home, small_clip_path, tmp_path):
    program = PROGRAMS / "quantise_zlib.py"
    record = json.loads(
        cli(
            "evaluate",
            str(program),
            "--clip",
            str(small_clip_path),
            "--qualities",
            "50",
            "--baselines",
            "none",
            "--json",
            cwd=tmp_path,
        ).stdout
    )
    out = tmp_path / "decoded.y4m"
    done = cli(
        "decode",
        record["artifacts"]["bitstreams"][0],
        "--decoder",
        record["artifacts"]["decoder"],
        "-o",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert load_clip(out).sha256 == record["results"][0]["decoded_sha256"]
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00" * 9)
    broken = cli("decode", str(corrupt), "--decoder", str(program), "-o", str(out), cwd=tmp_path)
    assert broken.returncode == 2 and "decoder" in broken.stderr


def test_raw_yuv_clip_with_size_and_baseline_command(home, sample, tmp_path):
    raw = tmp_path / "cars.yuv"
    frames = sample.frames[:3]
    raw.write_bytes(b"".join(plane.tobytes() for frame in frames for plane in frame))
    needs_size = cli("baseline", "--clip", str(raw), "--encoder", "x264", cwd=tmp_path)
    assert needs_size.returncode == 2 and "--size" in needs_size.stderr
    done = cli(
        "baseline",
        "--clip",
        str(raw),
        "--size",
        "320x240",
        "--fps",
        "30",
        "--encoder",
        "x264",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    curve = json.loads(done.stdout)
    assert curve["clip_sha256"] == sample.head(3).sha256
    assert curve["settings"]["preset"] == "medium"
    for rung in curve["rungs"]:
        assert Path(rung["bitstream"]).stat().st_size == rung["bytes"]


def test_ladder_grows_until_it_spans_the_standard_range(home, small_clip_path):
    """One quality given: the lab adds qualities (bisection) until the rungs span x264's
    PSNR-Y at CRF 22..37, and the headline BD-rate is integrated over that span."""
    seed = Path(__file__).parents[1] / "src" / "codeclab" / "programs" / "intra_dct.py"
    record, _ = run_job(
        str(seed), small_clip_path, home, qualities=[50], baselines=["x264"], publish="target"
    )
    assert record.status == "ok", record.error
    qualities = [r.quality for r in record.results]
    assert qualities == sorted(qualities) and len(qualities) > 2 and 50 in qualities
    anchor = record.baselines["x264"][0].rungs
    standard = [r.psnr_y for r in anchor if r.crf in (22, 27, 32, 37)]
    assert min(r.psnr_y for r in record.results) <= min(standard)
    assert max(r.psnr_y for r in record.results) >= max(standard)
    for result, path in zip(record.results, record.artifacts.bitstreams, strict=True):
        assert Path(path).name == f"cars_96x64_q{result.quality}.bin"
        assert Path(path).stat().st_size == result.bytes
    bd = record.bd_rate["x264"]["psnr_y"]
    assert (
        bd.value is not None and bd.integrated_over == "standard range: x264's span at CRF 22..37"
    )
    assert bd.spans["cars_96x64"] == pytest.approx((min(standard), max(standard)))
    assert record.bd_rate_wide["x264"]["psnr_y"].value != bd.value
