"""MS-SSIM and VMAF against named references; the fused SSIM/PSNR pass against the plain ones.

References, named per test:
- MS-SSIM: the published formula (Wang, Simoncelli and Bovik, "Multi-scale structural
  similarity for image quality assessment", 2003; their ``msssim.m``) computed independently
  here in float64 with scipy (2-D 11x11 Gaussian window, "valid" filtering, 2x2 averaging);
  and, more loosely, two implementations that differ from it in documented ways: av-metrics
  (its test ``msssim_yuv420p8`` on the blue_sky pair publishes 18.8343 dB for Y; it uses a
  9-tap kernel renormalised at the borders) and libvmaf's ``float_ms_ssim`` (the IQA
  library's MS-SSIM).
- VMAF: FFmpeg's ``libvmaf`` filter run directly on the two named files.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from codeclab.evaluate import ffmpeg, metrics, vmaf
from codeclab.evaluate.metrics import (
    MS_SSIM_MIN_SIZE,
    MS_SSIM_WEIGHTS,
    ms_ssim,
    ms_ssim_reason,
    psnr,
    score,
    score_frame,
    score_frames,
    ssim,
)
from tests.test_metrics import PAIR, SAMPLE, distort, read_y4m

HAVE_PAIR = all(path.is_file() for path in PAIR)
needs_pair = pytest.mark.skipif(not HAVE_PAIR, reason="the reference pair is absent")
needs_vmaf = pytest.mark.skipif(not vmaf.available()[0], reason="no FFmpeg with libvmaf")


def reference_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2003 in float64, written independently of the lab's code."""
    taps = np.arange(11) - 5
    g = np.exp(-(taps**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    cs_means, last = [], 0.0
    for scale in range(5):

        def f(x: np.ndarray) -> np.ndarray:
            return signal.fftconvolve(x, window, mode="valid")  # symmetric: convolution

        mu_a, mu_b = f(a), f(b)
        var_a, var_b = f(a * a) - mu_a**2, f(b * b) - mu_b**2
        cov = f(a * b) - mu_a * mu_b
        cs = (2 * cov + c2) / (var_a + var_b + c2)
        cs_means.append(cs.mean())
        last = (((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)) * cs).mean()
        if scale < 4:  # imfilter(ones(2)/4, 'symmetric') then (1:2:end, 1:2:end)
            a, b = (
                np.pad(x, ((0, x.shape[0] % 2), (0, x.shape[1] % 2)), mode="edge") for x in (a, b)
            )
            a = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4
            b = (b[0::2, 0::2] + b[1::2, 0::2] + b[0::2, 1::2] + b[1::2, 1::2]) / 4
    weights = np.array(MS_SSIM_WEIGHTS)
    return float(np.prod(np.array(cs_means[:4]) ** weights[:4]) * last ** weights[4])


@pytest.mark.parametrize("size", [(176, 176), (215, 163)], ids=["176x176", "215x163-odd"])
def test_ms_ssim_matches_the_published_formula(size: tuple[int, int]) -> None:
    width, height = size
    reference = [(y[:height, :width].copy(), u, v) for y, u, v in read_y4m(SAMPLE, 2)]
    for ref, dist in zip(reference, distort(reference), strict=True):
        assert ms_ssim(ref[0], dist[0]) == pytest.approx(
            reference_ms_ssim(ref[0], dist[0]), abs=2e-6
        )


def test_ms_ssim_weights_are_the_published_ones() -> None:
    assert MS_SSIM_WEIGHTS == (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    assert MS_SSIM_MIN_SIZE == 161


def test_ms_ssim_of_identical_planes_is_one_and_small_planes_have_a_reason() -> None:
    y = read_y4m(SAMPLE, 1)[0][0]
    assert ms_ssim(y, y.copy()) == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim_reason(320, 240) is None
    assert "161x161" in ms_ssim_reason(96, 64)
    with pytest.raises(ValueError, match="at least 161x161"):
        ms_ssim(y[:160], y[:160])


@needs_pair
def test_ms_ssim_on_the_named_pair_matches_formula_and_other_implementations() -> None:
    reference, distorted = (read_y4m(path) for path in PAIR)
    ours = [ms_ssim(r[0], d[0]) for r, d in zip(reference, distorted, strict=True)]
    formula = [reference_ms_ssim(r[0], d[0]) for r, d in zip(reference, distorted, strict=True)]
    assert ours == pytest.approx(formula, abs=2e-6)
    # av-metrics reports -10*log10(1 - mean): 18.8343 dB for Y on this pair. Its kernel and
    # border handling differ from the formula's "valid" 11x11 windows, so only ~1e-3 agrees.
    av_metrics_mean = 1 - 10 ** (-18.8343 / 10)
    assert abs(np.mean(ours) - av_metrics_mean) < 2e-3
    assert -10 * math.log10(1 - np.mean(ours)) == pytest.approx(19.218, abs=0.01)


@needs_pair
@needs_vmaf
def test_ms_ssim_is_close_to_libvmaf_and_vmaf_matches_ffmpeg_libvmaf(tmp_path: Path) -> None:
    found, _ = ffmpeg.with_filter("libvmaf")
    log = tmp_path / "vmaf.json"
    subprocess.run(
        [
            found.path,
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(PAIR[1]),
            "-i",
            str(PAIR[0]),
            "-lavfi",
            f"libvmaf=feature=name=float_ms_ssim:log_fmt=json:log_path={log}",
            "-f",
            "null",
            "-",
        ],
        check=True,
    )
    frames = json.loads(log.read_text())["frames"]
    reference, distorted = (read_y4m(path) for path in PAIR)
    scores = score(reference, distorted, with_vmaf=True)
    assert scores.vmaf_reason is None
    assert [f.vmaf for f in scores.per_frame] == pytest.approx(
        [f["metrics"]["vmaf"] for f in frames], abs=1e-4
    )
    # libvmaf's float_ms_ssim (IQA's MS-SSIM) is within ~1e-3 of the formula here
    for ours, theirs in zip(scores.per_frame, frames, strict=True):
        assert abs(ours.ms_ssim_y - theirs["metrics"]["float_ms_ssim"]) < 2e-3


def test_vmaf_absent_is_none_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ffmpeg, "find", lambda: (None, "no ffmpeg on PATH"))
    reference = read_y4m(SAMPLE, 2)
    scores = score(reference, distort(reference), with_vmaf=True)
    assert scores.vmaf is None and scores.vmaf_reason == "no ffmpeg on PATH"
    assert all(f.vmaf is None for f in scores.per_frame)
    assert vmaf.describe() is None


def test_score_frame_equals_plain_psnr_and_ssim() -> None:
    # 318x238 is not a multiple of 4; score_frame's SSIM is FFmpeg's filter in-process,
    # printed with six decimals, so within 1e-6 of the numpy ssim()
    reference = [
        (y[:238, :318].copy(), u[:119, :159].copy(), v[:119, :159].copy())
        for y, u, v in read_y4m(SAMPLE, 2)
    ]
    for ref, dist in zip(reference, distort(reference), strict=True):
        frame = score_frame(ref, dist)
        assert frame.psnr_y == psnr(ref[0], dist[0])
        assert frame.ssim_y == pytest.approx(ssim(ref[0], dist[0]), abs=1e-6)
        strided = score_frame(ref, tuple(np.asfortranarray(p) for p in dist))
        assert strided == frame
        expected = 10 * math.log10(
            255**2 / np.mean((ref[0].astype(np.float64) - dist[0].astype(np.float64)) ** 2)
        )
        assert frame.psnr_y == pytest.approx(expected, abs=1e-9)


def test_threads_do_not_change_scores() -> None:
    reference = read_y4m(SAMPLE, 4)
    distorted = distort(reference)
    one = score_frames(reference, distorted, threads=1)
    assert score_frames(reference, distorted, threads=3) == one
    assert all(f.ms_ssim_y is not None for f in one)


def test_scores_carry_ms_ssim_means_and_reasons() -> None:
    reference = read_y4m(SAMPLE, 3)
    scores = score(reference, distort(reference))
    assert scores.ms_ssim_y == pytest.approx(np.mean([f.ms_ssim_y for f in scores.per_frame]))
    assert scores.ms_ssim_reason is None and scores.vmaf_reason == "VMAF not requested"
    small = [(y[:32, :48].copy(), u[:16, :24].copy(), v[:16, :24].copy()) for y, u, v in reference]
    tiny = score(small, distort(small))
    assert tiny.ms_ssim_y is None and "161x161" in tiny.ms_ssim_reason
    assert metrics.VERSION
