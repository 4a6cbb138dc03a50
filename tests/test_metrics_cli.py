"""``codeclab metrics REF DIST``: the lab's metrics on any two files, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codeclab.config import SAMPLE_CLIP
from codeclab.evaluate.metrics import score
from codeclab.evaluate.reader import read_video
from codeclab.media import load_clip, write_mp4, write_y4m
from tests.conftest import cli, crop
from tests.test_metrics import distort


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list, list]:
    """Five 176x176 frames of the sample (MS-SSIM needs 161x161) and a distorted copy."""
    folder = tmp_path_factory.mktemp("pair")
    sample = load_clip(SAMPLE_CLIP, max_frames=5)
    reference = [crop(f, 176, 176, 64, 32) for f in sample.frames]
    distorted = distort(reference)
    return (
        write_y4m(folder / "ref.y4m", reference, 30.0),
        write_y4m(folder / "dist.y4m", distorted, 30.0),
        reference,
        distorted,
    )


def test_json_output_is_the_lab_scores(pair, tmp_path: Path) -> None:
    ref_path, dist_path, reference, distorted = pair
    done = cli("metrics", str(ref_path), str(dist_path), "--json", "--no-vmaf", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    expected = score(reference, distorted)
    assert result["frames"] == 5
    assert (result["reference"]["width"], result["reference"]["height"]) == (176, 176)
    for name in ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ssim_y", "ms_ssim_y"):
        assert result["metrics"][name] == pytest.approx(getattr(expected, name), abs=1e-12)
    assert result["metrics"]["vmaf"] is None and result["metrics"]["vmaf_reason"]
    assert [f["psnr_y"] for f in result["per_frame"]] == pytest.approx(
        [f.psnr_y for f in expected.per_frame], abs=1e-12
    )


def test_frames_option_compares_the_first_n(pair, tmp_path: Path) -> None:
    ref_path, dist_path, reference, distorted = pair
    done = cli(
        "metrics", str(ref_path), str(dist_path), "--frames", "2", "--json", "--no-vmaf",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["frames"] == len(result["per_frame"]) == 2
    assert result["metrics"]["psnr_y"] == pytest.approx(
        score(reference[:2], distorted[:2]).psnr_y, abs=1e-12
    )


def test_size_mismatch_is_one_line_exit_2(pair, tmp_path: Path) -> None:
    ref_path, _, reference, _ = pair
    other = write_y4m(tmp_path / "small.y4m", [crop(f, 160, 176) for f in reference], 30.0)
    done = cli("metrics", str(ref_path), str(other), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: size mismatch: reference is 176x176, distorted is 160x176"
    ]


def test_frame_count_mismatch_is_one_line_exit_2(pair, tmp_path: Path) -> None:
    ref_path, _, reference, _ = pair
    short = write_y4m(tmp_path / "short.y4m", reference[:3], 30.0)
    done = cli("metrics", str(ref_path), str(short), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "frame count mismatch: reference has 5 frames" in lines[0]
    too_many = cli("metrics", str(ref_path), str(short), "--frames", "4", cwd=tmp_path)
    assert too_many.returncode == 2
    assert "the distorted has only 3 frames" in too_many.stderr
    missing = cli("metrics", str(ref_path), str(tmp_path / "nope.y4m"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_y4m_reader_gives_the_frames_load_clip_gives(pair, tmp_path: Path) -> None:
    ref_path, _, _, _ = pair
    for path in (ref_path, SAMPLE_CLIP):
        mapped, decoded = read_video(path), load_clip(path)
        assert mapped.fps == decoded.fps and mapped.sha256 == decoded.sha256
    # anything else (here H.264 in mp4) goes through load_clip
    mp4 = write_mp4(tmp_path / "clip.mp4", load_clip(SAMPLE_CLIP, max_frames=3).frames, 30.0)
    assert read_video(mp4).sha256 == load_clip(mp4).sha256
    # a full-range Y4M is converted by load_clip, not mapped as is
    full = tmp_path / "full.y4m"
    data = ref_path.read_bytes()
    header_end = data.index(b"\n")
    full.write_bytes(data[:header_end] + b" XCOLORRANGE=FULL" + data[header_end:])
    assert read_video(full).conversions == load_clip(full).conversions != []
    assert np.array_equal(read_video(full).frames[0][0], load_clip(full).frames[0][0])
