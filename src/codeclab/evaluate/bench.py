"""``codeclab bench``: how fast the lab's evaluation is, measured here, with the machine stated.

Figures (all from this run, on inputs this module generates, so it runs on a fresh clone):

- ``metrics_fps_1080p``: reading two 1080p 4:2:0 Y4M files and scoring PSNR Y/U/V and
  SSIM-Y, frames per second; ``ffmpeg_cli_fps_1080p``: the ``ffmpeg`` command line computing
  its ``psnr`` and ``ssim`` filters on the same two files, timed the same way, rounds
  interleaved (medians). The 1080p pair is the bundled sample upscaled (bicubic, PyAV) and
  the same upscale coded by x264 at CRF 30 and decoded.
- ``ms_ssim_fps_1080p``: MS-SSIM-Y alone on the same frames, for scale.
- ``sandbox_launch_ms``: median wall time of running a trivial program's encoder in the
  sandbox (process start, limits, the child's imports, plane hand-over).
- ``eval_overhead_ratio``: an evaluation of a seed program on the sample clip with default
  settings and an empty baseline cache: wall time over the time spent inside the program's
  encodes and decodes (every sandboxed run: smoke run, encodes, both decodes of each
  bitstream) plus the wall time during which baseline encodes ran (encodes run at once on
  several cores count once: see :func:`_encoding_wall_s`). ``eval_overhead_ratio_warm``: the
  same evaluation again (baselines from the cache) over the program's time alone; it must
  re-encode no baseline (``baseline_encodes_second_run``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import scipy

from codeclab import __version__
from codeclab.config import SAMPLE_CLIP, Settings
from codeclab.evaluate import ffmpeg, metrics, vmaf
from codeclab.evaluate.baselines import RUNG_JSON
from codeclab.evaluate.reader import read_video
from codeclab.frames import Frame
from codeclab.media import frame_from_av, frame_to_av, load_clip, write_y4m

INPUTS_VERSION = 1
WIDTH, HEIGHT = 1920, 1080
ROUNDS = 3
LAUNCHES = 7
SEED_PROGRAM = "intra_dct"
TRIVIAL_PROGRAM = """def encode(frames, fps, quality):
    return b"x"


def decode(bitstream):
    return []
"""
FFMPEG_FILTERS = "[0:v]split[a][b];[1:v]split[c][d];[a][c]psnr;[b][d]ssim"


def machine() -> dict:
    """The CPU, cores, memory, load and library versions the figures were measured with."""
    model = platform.processor() or platform.machine()
    memory_gb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    found, reason = ffmpeg.find()
    blas = [
        f"{lib['internal_api']} {lib['version']} ({lib['num_threads']} threads)"
        for lib in metrics.blas_info()
    ]
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": memory_gb,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "versions": {
            "codeclab": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "blas": "; ".join(blas) or None,
            "pyav": av.__version__,
            "libavcodec": ".".join(str(x) for x in av.library_versions["libavcodec"]),
            "ffmpeg_cli": found.describe() if found else None,
            "vmaf": vmaf.describe(),
        },
        "ffmpeg_cli_reason": reason,
    }


def _upscale(frame: Frame) -> Frame:
    video_frame = frame_to_av(frame)
    return frame_from_av(
        video_frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p", interpolation="BICUBIC")
    )


def _x264_round_trip(frames: list[Frame], fps: float, workdir: Path) -> list[Frame]:
    path = workdir / "distorted.h264"
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "30", "preset": "veryfast"}
        for index, frame in enumerate(frames):
            video_frame = frame_to_av(frame)
            video_frame.pts = index
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        return [frame_from_av(f) for f in container.decode(video=0)]


def prepare_inputs(cache_dir: Path) -> tuple[Path, Path, str]:
    """The 1080p reference and distorted Y4M pair, generated once into ``cache_dir``."""
    folder = Path(cache_dir) / "bench" / f"inputs-v{INPUTS_VERSION}"
    reference, distorted = folder / "reference_1080p.y4m", folder / "distorted_1080p.y4m"
    description = (
        f"{SAMPLE_CLIP.name} upscaled to {WIDTH}x{HEIGHT} (bicubic), played forward then "
        "backward; distorted: the same coded by x264 (CRF 30, veryfast) and decoded"
    )
    if reference.is_file() and distorted.is_file():
        return reference, distorted, description
    folder.mkdir(parents=True, exist_ok=True)
    sample = load_clip(SAMPLE_CLIP)
    frames = [_upscale(f) for f in sample.frames]
    frames += frames[::-1]
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        work = Path(tmp)
        decoded = _x264_round_trip(frames, sample.fps, work)
        write_y4m(work / reference.name, frames, sample.fps)
        write_y4m(work / distorted.name, decoded, sample.fps)
        os.replace(work / distorted.name, distorted)
        os.replace(work / reference.name, reference)
    return reference, distorted, description


def _time_metrics(reference: Path, distorted: Path) -> float:
    started = time.perf_counter()
    ref, dist = read_video(reference), read_video(distorted)
    metrics.score_frames(ref.frames, dist.frames, with_ms_ssim=False)
    return time.perf_counter() - started


def ffmpeg_command(executable: str, reference: Path, distorted: Path) -> list[str]:
    return [
        executable,
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-i",
        str(distorted),
        "-i",
        str(reference),
        "-lavfi",
        FFMPEG_FILTERS,
        "-f",
        "null",
        "-",
    ]


def _time_ffmpeg(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return time.perf_counter() - started


def metrics_vs_ffmpeg(cache_dir: Path) -> dict:
    """Both sides on the same files, warmed up, then rounds interleaved; medians."""
    reference, distorted, description = prepare_inputs(cache_dir)
    frames = len(read_video(reference).frames)
    found, reason = ffmpeg.find()
    command = ffmpeg_command(found.path, reference, distorted) if found else None
    ours, theirs = [], []
    _time_metrics(reference, distorted)  # page cache and buffers warm, both sides
    if command:
        _time_ffmpeg(command)
    for _ in range(ROUNDS):
        ours.append(_time_metrics(reference, distorted))
        if command:
            theirs.append(_time_ffmpeg(command))
    ref, dist = read_video(reference, max_frames=8), read_video(distorted, max_frames=8)
    started = time.perf_counter()
    with metrics.one_blas_thread():
        for r, d in zip(ref.frames, dist.frames, strict=True):
            metrics.ms_ssim(r[0], d[0])
    ms_ssim_s = time.perf_counter() - started
    ours_fps = frames / statistics.median(ours)
    theirs_fps = frames / statistics.median(theirs) if theirs else None
    return {
        "inputs": {
            "description": description,
            "frames": frames,
            "size": f"{WIDTH}x{HEIGHT}",
            "reference": str(reference),
            "distorted": str(distorted),
        },
        "metrics_fps_1080p": round(ours_fps, 1),
        "metrics_what": "read both Y4M files + PSNR Y/U/V + SSIM-Y, all frames, in-process",
        "metrics_threads": metrics.default_threads(WIDTH * HEIGHT),
        "ffmpeg_cli_fps_1080p": None if theirs_fps is None else round(theirs_fps, 1),
        "ffmpeg_cli_reason": reason,
        "ffmpeg_cli_command": None if command is None else " ".join(command),
        "ffmpeg_what": "the whole command: process start, Y4M demux, psnr and ssim (Y, U, V)",
        "metrics_vs_ffmpeg": None if theirs_fps is None else round(ours_fps / theirs_fps, 2),
        "metrics_runs_s": [round(x, 4) for x in ours],
        "ffmpeg_runs_s": [round(x, 4) for x in theirs],
        "ms_ssim_fps_1080p": round(len(ref.frames) / ms_ssim_s, 1),
    }


def sandbox_launch_ms() -> dict:
    """Median wall time of a trivial program's encoder in the sandbox the runner would use."""
    from codeclab.sandbox import isolate

    try:
        from codeclab.sandbox import bwrap

        launcher = bwrap.best_launcher()
    except (ImportError, AttributeError):
        launcher = isolate.WEAK
    tiny = [(np.zeros((16, 16), np.uint8), np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))]
    limits = isolate.Limits.for_clip(16, 16, 1)
    times = []
    for _ in range(LAUNCHES):
        started = time.perf_counter()
        isolate.run_encode(TRIVIAL_PROGRAM, tiny, 30.0, 50, limits, launcher)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "sandbox_launch_ms": round(statistics.median(times), 1),
        "sandbox_isolation": launcher.isolation,
        "sandbox_launch_runs_ms": [round(t, 1) for t in times],
    }


def _baseline_entries(cache_dir: Path) -> set[str]:
    folder = cache_dir / "baselines"
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}


def _encoding_wall_s(cache_dir: Path, created: set[str], rungs: set[tuple[str, int]]) -> float:
    """Wall time during which at least one of the fresh baseline ``rungs`` was encoding.

    Rungs are encoded several at once, each timed by its own clock: the sum of their
    ``encode_s`` would count shared cores twice (and could exceed the wall time). An
    encode's interval ends when its bitstream was last written (the file's mtime) and lasts
    its ``encode_s``; overlapping intervals count once. Encodes started ahead for a ladder
    that did not need them are not the record's rungs and are not counted.
    """
    spans = []
    for name in created:
        entry = cache_dir / "baselines" / name
        rung = json.loads((entry / RUNG_JSON).read_text())["rung"]
        if (rung["encoder"], rung["crf"]) in rungs:
            end = (entry / rung["bitstream"]).stat().st_mtime
            spans.append((end - rung["encode_s"], end))
    total, reached = 0.0, -math.inf
    for start, end in sorted(spans):
        total += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return total


@contextmanager
def _program_clock() -> Iterator[list[float]]:
    """Sum the wall time of every sandboxed encode and decode the runner starts meanwhile.

    Records carry one encode and one decode per rung; the runner also smoke-runs the
    program and decodes each bitstream a second time to check determinism. All of it is
    time spent inside the program, so all of it is counted, read from the sandbox's own
    result (``seconds``: the child process's wall time, interpreter start included).
    """
    from codeclab.sandbox import isolate

    spent: list[float] = []
    originals = isolate.run_encode, isolate.run_decode

    def timed(function):
        def wrapper(*args, **kwargs):
            result = function(*args, **kwargs)
            spent.append(result.seconds)
            return result

        return wrapper

    isolate.run_encode, isolate.run_decode = (timed(f) for f in originals)
    try:
        yield spent
    finally:
        isolate.run_encode, isolate.run_decode = originals


def evaluation_overhead() -> dict:
    """Two evaluations of a seed program on the sample clip in a fresh data directory."""
    from codeclab.design.evolve import seed_programs
    from codeclab.runner import Job, evaluate
    from codeclab.store.artifacts import LocalArtifactStore
    from codeclab.store.db import ExperimentStore

    source = seed_programs()[SEED_PROGRAM]
    home = Path(tempfile.mkdtemp(prefix="codeclab-bench-"))
    try:
        # every setting that shapes the run is explicit: a codeclab.toml cannot change it
        settings = Settings(
            home=home,
            clips=[SAMPLE_CLIP],
            max_frames=None,
            qualities=[20, 40, 60, 80],
            baselines=["x264", "x265", "svtav1"],
            test_set=None,
            vmaf=True,
            timeout_s=None,
            memory_mb=None,
        )
        clips = [load_clip(SAMPLE_CLIP)]
        store = ExperimentStore(settings.db_url)
        artifacts = LocalArtifactStore(settings.artifacts_dir)
        runs = []
        for _ in range(2):
            before = _baseline_entries(settings.cache_dir)
            with _program_clock() as spent:
                started = time.perf_counter()
                record = evaluate(Job(source, SEED_PROGRAM, clips, settings, store, artifacts))
                wall = time.perf_counter() - started
            if record.status != "ok":
                return {"eval_overhead_ratio": None, "eval_error": record.error}
            created = _baseline_entries(settings.cache_dir) - before
            recorded_s = sum(r.encode_s + r.decode_s for r in record.results)
            curves = [c for curves in record.baselines.values() for c in curves]
            rungs = [(c.encoder, r.crf, r) for c in curves for r in c.rungs]
            encoding_s = _encoding_wall_s(
                settings.cache_dir, created, {(e, crf) for e, crf, _ in rungs}
            )
            runs.append(
                {
                    "wall_s": round(wall, 3),
                    "program_encode_decode_s": round(sum(spent), 3),
                    "program_sandbox_runs": len(spent),
                    "program_recorded_encode_decode_s": round(recorded_s, 3),
                    "baseline_encode_s": round(
                        sum(r.encode_s for _, _, r in rungs) if created else 0.0, 3
                    ),
                    "baseline_encoding_wall_s": round(encoding_s, 3),
                    "baseline_rungs": len(rungs),
                    "baseline_rungs_encoded": len(created),
                    "phases_s": {p.name: p.seconds for p in record.phases},
                    "vmaf": record.results[0].vmaf is not None,
                }
            )
        cold, warm = runs
        return {
            "eval_overhead_ratio": round(
                cold["wall_s"]
                / (cold["program_encode_decode_s"] + cold["baseline_encoding_wall_s"]),
                3,
            ),
            "eval_overhead_ratio_warm": round(warm["wall_s"] / warm["program_encode_decode_s"], 3),
            "baseline_encodes_second_run": warm["baseline_rungs_encoded"],
            "eval_program": f"{SEED_PROGRAM} (seed), sha256 {record.program_sha256[:16]}",
            "eval_clip": f"{SAMPLE_CLIP.name}, qualities 20,40,60,80, x264/x265/svtav1",
            "eval_cold": cold,
            "eval_warm": warm,
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run(cache_dir: Path) -> dict:
    """Every figure, with the machine; the goals say which targets were met."""
    result = {"machine": machine()}
    result.update(metrics_vs_ffmpeg(cache_dir))
    result.update(sandbox_launch_ms())
    result.update(evaluation_overhead())
    speed = result.get("metrics_vs_ffmpeg")
    ratio = result.get("eval_overhead_ratio")
    result["goals"] = {
        "metrics_fps_1080p / ffmpeg_cli_fps_1080p >= 1.0": None if speed is None else speed >= 1.0,
        "eval_overhead_ratio <= 1.25": None if ratio is None else ratio <= 1.25,
        "baseline_encodes_second_run == 0": result.get("baseline_encodes_second_run") == 0,
    }
    return result
