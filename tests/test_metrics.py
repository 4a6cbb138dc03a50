"""Metrics against named references: FFmpeg's ``psnr`` and ``ssim`` filters, the PSNR formula."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from codeclab.evaluate.metrics import IDENTICAL_PSNR, psnr, score, ssim
from codeclab.frames import Frame, FrameMismatch

SAMPLE = Path(__file__).parents[1] / "src" / "codeclab" / "data" / "cars_320x240_30f.y4m"
MEDIA = Path("/work/shared/media")
PAIR = (
    MEDIA / "blue_sky_crop_640x360_3f_input.y4m",
    MEDIA / "blue_sky_crop_640x360_3f_output_encoded.y4m",
)


def read_y4m(path: Path, count: int | None = None) -> list[Frame]:
    """Decode a clip to (Y, U, V) planes with PyAV, independently of the lab's media code."""
    frames: list[Frame] = []
    with av.open(str(path)) as container:
        for video_frame in container.decode(video=0):
            if count is not None and len(frames) == count:
                break
            packed = video_frame.to_ndarray(format="yuv420p")
            height, width = packed.shape[0] * 2 // 3, packed.shape[1]
            chroma = packed[height:].reshape(2, height // 2, width // 2)
            frames.append((packed[:height].copy(), chroma[0].copy(), chroma[1].copy()))
    return frames


def to_video_frame(frame: Frame, index: int) -> av.VideoFrame:
    # Planes laid end to end, as PyAV's yuv420p ndarray expects; works when H/2 is odd too.
    packed = np.concatenate([plane.ravel() for plane in frame]).reshape(-1, frame[0].shape[1])
    video_frame = av.VideoFrame.from_ndarray(packed, format="yuv420p")
    video_frame.pts = index
    video_frame.time_base = Fraction(1, 25)
    return video_frame


def ffmpeg_metadata(name: str, reference: list[Frame], distorted: list[Frame]) -> list[dict]:
    """Per-frame metadata of FFmpeg's two-input filter ``name`` (``psnr`` or ``ssim``)."""
    height, width = reference[0][0].shape
    graph = av.filter.Graph()
    main, ref = (
        graph.add_buffer(
            width=width, height=height, format="yuv420p", time_base=Fraction(1, 25), name=n
        )
        for n in ("main", "ref")
    )
    metric = graph.add(name)
    sink = graph.add("buffersink")
    main.link_to(metric, 0, 0)
    ref.link_to(metric, 0, 1)
    metric.link_to(sink)
    graph.configure()
    metadata = []
    for index, (r, d) in enumerate(zip(reference, distorted, strict=True)):
        main.push(to_video_frame(d, index))
        ref.push(to_video_frame(r, index))
    main.push(None)
    ref.push(None)
    while True:
        try:
            metadata.append(dict(sink.pull().metadata))
        except (av.BlockingIOError, av.EOFError):
            return metadata


def assert_matches_ffmpeg(reference: list[Frame], distorted: list[Frame]) -> float:
    """Compare every plane's PSNR and SSIM with FFmpeg's; return the largest SSIM difference."""
    psnrs = ffmpeg_metadata("psnr", reference, distorted)
    ssims = ffmpeg_metadata("ssim", reference, distorted)
    assert len(psnrs) == len(ssims) == len(reference)
    worst = 0.0
    for r, d, p, s in zip(reference, distorted, psnrs, ssims, strict=True):
        for plane, key in enumerate("yuv"):
            # FFmpeg prints six decimals of a value it rounds to single precision (~2e-6 dB).
            expected = float(p[f"lavfi.psnr.psnr.{key}"])
            assert psnr(r[plane], d[plane]) == pytest.approx(expected, abs=1e-5)
            diff = abs(ssim(r[plane], d[plane]) - float(s[f"lavfi.ssim.{key.upper()}"]))
            assert diff < 1e-5
            worst = max(worst, diff)
    return worst


def distort(frames: list[Frame], seed: int = 1) -> list[Frame]:
    """Coarse quantisation plus noise: a stand-in for a lossy codec's output."""
    rng = np.random.default_rng(seed)
    out = []
    for frame in frames:
        planes = []
        for plane in frame:
            quantised = (plane.astype(np.int16) // 12) * 12 + 6
            noisy = quantised + rng.integers(-4, 5, plane.shape)
            planes.append(np.clip(noisy, 0, 255).astype(np.uint8))
        out.append(tuple(planes))
    return out


@pytest.mark.parametrize("size", [(320, 240), (318, 238)], ids=["320x240", "318x238-not-mod4"])
def test_matches_ffmpeg_on_distorted_sample(size: tuple[int, int]) -> None:
    width, height = size
    reference = [
        (
            y[:height, :width].copy(),
            u[: height // 2, : width // 2].copy(),
            v[: height // 2, : width // 2].copy(),
        )
        for y, u, v in read_y4m(SAMPLE, 3)
    ]
    assert_matches_ffmpeg(reference, distort(reference))


@pytest.mark.skipif(
    not all(path.is_file() for path in PAIR), reason=f"the reference pair in {MEDIA} is absent"
)
def test_matches_ffmpeg_on_named_pair() -> None:
    reference, distorted = (read_y4m(path) for path in PAIR)
    assert len(reference) == len(distorted) == 3
    assert assert_matches_ffmpeg(reference, distorted) < 1e-5


def test_identical_planes_score_100_db_and_ssim_one() -> None:
    frames = read_y4m(SAMPLE, 2)
    scores = score(frames, [tuple(p.copy() for p in f) for f in frames])
    assert scores.psnr_y == scores.psnr_u == scores.psnr_v == scores.psnr_yuv == IDENTICAL_PSNR
    assert scores.ssim_y == pytest.approx(1.0, abs=1e-7)


def test_a_picture_one_level_off_never_scores_above_an_identical_one() -> None:
    """At 1080p one pixel one level off is 111 dB by the formula: capped at the 100 dB an
    identical picture scores, so near-lossless never beats lossless."""
    plane = read_y4m(SAMPLE, 1)[0][0]
    big = np.tile(plane, (5, 6))[:1080, :1920].copy()
    off = big.copy()
    off[0, 0] ^= 1
    assert psnr(big, off) == IDENTICAL_PSNR == psnr(big, big.copy())
    off[:4, :4] ^= 1
    assert psnr(big, off) < IDENTICAL_PSNR


def test_psnr_of_constant_offset_is_closed_form() -> None:
    rng = np.random.default_rng(0)
    plane = rng.integers(0, 250, (48, 64), dtype=np.uint8)
    assert psnr(plane, plane + 3) == pytest.approx(10 * math.log10(255**2 / 9), abs=1e-12)


def test_plane_metrics_refuse_planes_of_different_shapes() -> None:
    plane = np.zeros((16, 16), dtype=np.uint8)
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match="planes differ"):
            metric(plane, plane[:1])


def test_score_averages_per_frame_values_and_weighs_yuv_6_1_1() -> None:
    reference = read_y4m(SAMPLE, 3)
    scores = score(reference, distort(reference))
    frames = scores.per_frame
    assert len(frames) == 3
    for f in frames:
        assert f.psnr_yuv == pytest.approx((6 * f.psnr_y + f.psnr_u + f.psnr_v) / 8)
    for field in ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ssim_y"):
        assert getattr(scores, field) == pytest.approx(np.mean([getattr(f, field) for f in frames]))


def test_score_rejects_one_frame_too_few() -> None:
    reference = read_y4m(SAMPLE, 3)
    with pytest.raises(FrameMismatch, match="2 frames, source has 3"):
        score(reference, reference[:2])


def test_score_rejects_wrong_shape() -> None:
    reference = read_y4m(SAMPLE, 2)
    y, u, v = reference[1]
    with pytest.raises(FrameMismatch, match="frame 1 plane Y: shape"):
        score(reference, [reference[0], (y[:-2], u, v)])


def test_score_rejects_float_planes() -> None:
    reference = read_y4m(SAMPLE, 1)
    y, u, v = reference[0]
    with pytest.raises(FrameMismatch, match="dtype float64"):
        score(reference, [(y.astype(np.float64), u, v)])
