"""Baselines are real encodes of the source, decoded and scored by the lab, and cached safely."""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from codeclab.evaluate import fork_server
from codeclab.evaluate.baselines import (
    ENCODERS,
    RUNG_JSON,
    BaselineRung,
    baseline_curve,
    cached_rung,
    encode_rung,
    encoder_version,
    settings,
)
from codeclab.evaluate.metrics import IDENTICAL_PSNR, score
from codeclab.evaluate.rd import LOSSLESS_PSNR_DB
from codeclab.frames import Frame
from codeclab.media import frame_to_av

SAMPLE = Path(__file__).parents[1] / "src" / "codeclab" / "data" / "cars_320x240_30f.y4m"
FPS = 30.0
CLIP = "0" * 64


def read_crop(width: int, height: int, count: int) -> list[Frame]:
    """The first frames of the bundled sample, cropped, decoded with PyAV directly."""
    frames: list[Frame] = []
    with av.open(str(SAMPLE)) as container:
        for video_frame in container.decode(video=0):
            if len(frames) == count:
                break
            packed = video_frame.to_ndarray(format="yuv420p")
            full_h, full_w = packed.shape[0] * 2 // 3, packed.shape[1]
            y = packed[:full_h]
            u, v = packed[full_h:].reshape(2, full_h // 2, full_w // 2)
            frames.append(
                (
                    np.ascontiguousarray(y[100 : 100 + height, 120 : 120 + width]),
                    np.ascontiguousarray(u[50 : 50 + height // 2, 60 : 60 + width // 2]),
                    np.ascontiguousarray(v[50 : 50 + height // 2, 60 : 60 + width // 2]),
                )
            )
    return frames


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return read_crop(96, 64, 4)


def decode_independently(path: str) -> list[Frame]:
    """Decode with PyAV's own choice of decoder, not the module's code."""
    out = []
    with av.open(path) as container:
        for video_frame in container.decode(video=0):
            flat = video_frame.to_ndarray(format="yuv420p").ravel()
            w, h = video_frame.width, video_frame.height
            q = (w // 2) * (h // 2)
            out.append(
                (
                    flat[: w * h].reshape(h, w),
                    flat[w * h : w * h + q].reshape(h // 2, w // 2),
                    flat[w * h + q :].reshape(h // 2, w // 2),
                )
            )
    return out


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_rung_is_a_real_encode_scored_from_its_file(
    encoder: str, frames: list[Frame], tmp_path: Path
) -> None:
    crf = ENCODERS[encoder].crf_ladder[1]
    rung = encode_rung(frames, FPS, encoder, crf, tmp_path / "stream.bin")
    assert Path(rung.bitstream).stat().st_size == rung.bytes > 0
    assert (rung.frames, rung.width, rung.height, rung.crf) == (4, 96, 64, crf)
    assert rung.kbps == pytest.approx(rung.bytes * 8 * FPS / 4 / 1000)
    assert rung.bpp == pytest.approx(rung.bytes * 8 / (4 * 96 * 64))
    again = score(frames, decode_independently(rung.bitstream))
    assert (rung.psnr_y, rung.psnr_yuv, rung.ssim_y) == (again.psnr_y, again.psnr_yuv, again.ssim_y)
    assert 20 < rung.psnr_y < IDENTICAL_PSNR


def test_lossless_x264_round_trips_planes_exactly_with_odd_chroma(tmp_path: Path) -> None:
    # 62x46 has 31x23 chroma planes: the plane layout must not assume H/2 or W/2 even.
    frames = read_crop(62, 46, 2)
    rung = encode_rung(frames, 29.97, "x264", 0, tmp_path / "lossless.h264")
    assert rung.psnr_y == rung.psnr_u == rung.psnr_v == IDENTICAL_PSNR


@pytest.fixture(scope="module")
def curves(frames: list[Frame], tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("baselines")
    return {
        "cache": cache,
        "rungs": {e: baseline_curve(frames, FPS, CLIP, e, cache) for e in ENCODERS},
    }


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_psnr_rises_as_crf_falls(encoder: str, curves: dict) -> None:
    rungs: list[BaselineRung] = curves["rungs"][encoder]
    assert [r.crf for r in rungs] == sorted(ENCODERS[encoder].crf_ladder, reverse=True)
    assert all(a.psnr_y < b.psnr_y for a, b in pairwise(rungs))
    assert all(a.kbps < b.kbps for a, b in pairwise(rungs))
    for rung in rungs:
        assert Path(rung.bitstream).stat().st_size == rung.bytes
        assert Path(rung.bitstream).parent.parent == curves["cache"]


def json_mtimes(rungs: list[BaselineRung]) -> dict[int, int]:
    return {r.crf: (Path(r.bitstream).parent / RUNG_JSON).stat().st_mtime_ns for r in rungs}


def test_cache_hit_does_not_reencode(frames: list[Frame], curves: dict) -> None:
    first = curves["rungs"]["x264"]
    before = json_mtimes(first)
    again = baseline_curve(frames, FPS, CLIP, "x264", curves["cache"])
    assert again == first  # timings included: they were read back, not measured again
    assert json_mtimes(again) == before


def test_truncated_bitstream_is_reencoded(frames: list[Frame], curves: dict) -> None:
    first = curves["rungs"]["x265"]
    before = json_mtimes(first)
    damaged = first[0]
    with open(damaged.bitstream, "r+b") as handle:
        handle.truncate(damaged.bytes // 2)
    again = baseline_curve(frames, FPS, CLIP, "x265", curves["cache"])
    after = json_mtimes(again)
    assert after[damaged.crf] != before[damaged.crf]
    assert {c: t for c, t in after.items() if c != damaged.crf} == {
        c: t for c, t in before.items() if c != damaged.crf
    }
    assert Path(again[0].bitstream).stat().st_size == again[0].bytes == damaged.bytes
    assert not [p for p in curves["cache"].iterdir() if p.name.startswith(".")]


def test_ladder_extends_to_cover_requested_kbps(frames: list[Frame], curves: dict) -> None:
    default = curves["rungs"]["x264"]
    low, high = default[0].kbps * 0.8, default[-1].kbps * 1.5
    rungs = baseline_curve(frames, FPS, CLIP, "x264", curves["cache"], cover_kbps=(low, high))
    assert rungs[0].kbps <= low or rungs[0].crf == 51
    assert rungs[-1].kbps >= high
    assert set(r.crf for r in default) < set(r.crf for r in rungs)
    assert all(r.crf % 5 == 2 or r.crf == 51 for r in rungs)


def test_x264_ladder_stops_short_of_lossless(frames: list[Frame], curves: dict) -> None:
    # asking for far more bits than any lossy rung gives must not reach CRF 0 (lossless)
    rungs = baseline_curve(frames, FPS, CLIP, "x264", curves["cache"], cover_kbps=(1.0, 1e9))
    assert min(r.crf for r in rungs) == 1
    assert all(r.psnr_y < IDENTICAL_PSNR for r in rungs)


def test_ladder_covers_the_candidates_psnr_range_at_both_ends(
    frames: list[Frame], curves: dict
) -> None:
    # a candidate can sit below x264's lowest rung in quality at a higher rate (35 dB
    # against 38 dB on a 720p clip): its kbps range alone does not make the ladder grow
    default = curves["rungs"]["x264"]
    low, high = default[0].psnr_y - 4, default[-1].psnr_y + 4
    cover_kbps = (default[0].kbps, default[-1].kbps)
    rungs = baseline_curve(
        frames, FPS, CLIP, "x264", curves["cache"], cover_kbps=cover_kbps, cover_psnr=(low, high)
    )
    assert min(r.psnr_y for r in rungs) <= low
    assert max(r.psnr_y for r in rungs) >= high
    assert set(r.crf for r in default) < set(r.crf for r in rungs)
    # the CRFs depend on the rungs' values only: from the cache the curve is the same
    again = baseline_curve(
        frames, FPS, CLIP, "x264", curves["cache"], cover_kbps=cover_kbps, cover_psnr=(low, high)
    )
    assert again == rungs


def test_a_lossless_rung_stops_the_ladder_and_is_left_out(tmp_path: Path) -> None:
    # a smooth ramp: x264 reaches the source exactly at a lossy CRF
    ramp = np.tile(np.arange(64, dtype=np.uint8) + 60, (64, 1))
    grey = np.full((32, 32), 128, np.uint8)
    flat = [(ramp.copy(), grey.copy(), grey.copy()) for _ in range(4)]
    rungs = baseline_curve(flat, FPS, "f" * 64, "x264", tmp_path, cover_psnr=(0.0, 99.0))
    assert rungs and all(r.psnr_y < LOSSLESS_PSNR_DB for r in rungs)
    lowest = min(r.crf for r in rungs)
    assert lowest > ENCODERS["x264"].crf_range[0]
    stopper = cached_rung(flat, FPS, "f" * 64, "x264", lowest - 5, tmp_path)
    assert stopper.psnr_y >= LOSSLESS_PSNR_DB


def test_a_failed_encode_says_why_and_leaves_nothing(frames: list[Frame], tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="x264 baseline at CRF -5: .*out of range"):
        cached_rung(frames, FPS, CLIP, "x264", -5, tmp_path)
    assert not list(tmp_path.iterdir())
    assert cached_rung(frames, FPS, CLIP, "x264", 30, tmp_path).bytes > 0


def die(shared: object, send: fork_server.Send, code: int) -> None:
    os._exit(code)


def pids(shared: object, send: fork_server.Send) -> tuple[int, int]:
    return os.getpid(), os.getppid()


def test_each_call_runs_in_a_fresh_fork_of_one_server() -> None:
    with fork_server.session(("tests.test_baselines",), None) as session:
        calls = [session.run(pids) for _ in range(3)]
    assert len({pid for pid, _ in calls}) == 3  # never a process that ran a call before
    assert len({parent for _, parent in calls}) == 1
    assert calls[0][1] != os.getpid()  # forks of the server, never of the lab's process


def test_a_fork_that_dies_is_an_error_not_a_hang() -> None:
    with (
        fork_server.session(("tests.test_baselines",), None) as session,
        pytest.raises(RuntimeError, match="exited with code 3"),
    ):
        session.run(die, 3)


def test_settings_and_version_state_the_encoder() -> None:
    assert settings("x264")["preset"] == "medium"
    assert settings("x265")["options"] == {"x265-params": "log-level=error:info=0"}
    assert (settings("svtav1")["codec"], settings("svtav1")["preset"]) == ("libsvtav1", "8")
    assert encoder_version("svtav1").startswith("libsvtav1 (PyAV ")


def test_a_curve_encoded_again_is_the_same_bytes(tmp_path: Path) -> None:
    """Cached baselines are compared across campaigns: the same frames must give the same
    bitstreams, also while other threads of the lab's process work and whatever was encoded
    before (libx264 in the lab's process gave other bytes after other encodes or while
    FFmpeg filters scored a candidate)."""
    frames = read_crop(160, 128, 8)  # large enough for x264's threads to matter
    busy = threading.Event()

    def score_meanwhile() -> None:
        while not busy.is_set():
            score(frames, frames)

    worker = threading.Thread(target=score_meanwhile)
    worker.start()
    try:
        curves = [
            baseline_curve(frames, 30.0, "d" * 64, "x264", tmp_path / str(n)) for n in range(6)
        ]
    finally:
        busy.set()
        worker.join()
    streams = [[Path(r.bitstream).read_bytes() for r in curve] for curve in curves]
    assert len(streams[0]) == 4 and all(s == streams[0] for s in streams)
    # a rung encoded on its own is the rung encoded after the rest of its ladder
    crf = max(r.crf for r in curves[0])
    alone = cached_rung(frames, 30.0, "d" * 64, "x264", crf, tmp_path / "alone")
    last = next(r for r in curves[0] if r.crf == crf)
    assert Path(alone.bitstream).read_bytes() == Path(last.bitstream).read_bytes()


def annexb_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B stream, each without its start code."""
    starts = [i + 3 for i in range(len(data) - 3) if data[i : i + 3] == b"\x00\x00\x01"]
    ends = [*starts[1:], len(data) + 3]
    return [data[s : e - 3].rstrip(b"\x00") for s, e in zip(starts, ends, strict=True)]


def plain_x264(frames: list[Frame], crf: int, path: Path) -> None:
    """libx264 as the baselines run it, without dropping any unit."""
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        for index, frame in enumerate(frames):
            video_frame = frame_to_av(frame)
            video_frame.pts = index
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))


def test_x264_rungs_count_no_version_text(frames: list[Frame], tmp_path: Path) -> None:
    """libx264 writes its version and options as an SEI message (hundreds of bytes a
    stream); the rung drops it, so its bitrate is the pictures', and decodes the same."""
    crf = ENCODERS["x264"].crf_ladder[-1]
    rung = encode_rung(frames, FPS, "x264", crf, tmp_path / "rung.h264")
    plain = tmp_path / "plain.h264"
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
        fresh.submit(plain_x264, frames, crf, plain).result()  # as the lab's: alone in a process
    units = annexb_units(Path(rung.bitstream).read_bytes())
    version = [u for u in annexb_units(plain.read_bytes()) if u[0] & 31 == 6]
    assert version and b"x264 - core" in version[0] and len(version[0]) > 400
    assert {u[0] & 31 for u in units} <= {1, 5, 7, 8}  # slices and parameter sets only
    # libx264's bytes for the same input vary a little between processes, its text does not
    assert rung.bytes < plain.stat().st_size - len(version[0]) + 40
    ours, theirs = decode_independently(rung.bitstream), decode_independently(str(plain))
    assert len(ours) == len(theirs) == len(frames)
    assert abs(score(frames, ours).psnr_y - score(frames, theirs).psnr_y) < 0.3
