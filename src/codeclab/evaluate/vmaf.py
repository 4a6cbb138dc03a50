"""VMAF per frame through FFmpeg's ``libvmaf`` filter, when an FFmpeg that has it exists.

The source and the decode are written as Y4M to a private temporary directory and an
``ffmpeg`` process scores them with libvmaf's default model (``vmaf_v0.6.1``), writing
per-frame values to a JSON log. The process runs while the lab computes the other metrics,
so VMAF costs little extra wall time. When no suitable FFmpeg exists, or the run fails, the
answer is ``None`` with the reason (DESIGN.md section 4: VMAF where available).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from codeclab import scratch
from codeclab.evaluate import ffmpeg
from codeclab.frames import Frame

MODEL = "vmaf_v0.6.1"
"""libvmaf's built-in default model, named in the filter options so it cannot drift."""
THREADS = 2
TIMEOUT_S = 600.0


def available() -> tuple[bool, str | None]:
    """Whether VMAF can be computed here, and why not."""
    found, reason = ffmpeg.with_filter("libvmaf")
    return found is not None, reason


def describe() -> str | None:
    """The VMAF implementation as a record states it, or None when there is none."""
    found, _ = ffmpeg.with_filter("libvmaf")
    return None if found is None else f"libvmaf model {MODEL} via {found.describe()}"


def _write_y4m(path: Path, frames: Sequence[Frame]) -> None:
    from codeclab.media import write_y4m

    write_y4m(path, list(frames), 25.0)  # the rate does not enter VMAF


class Job:
    """A running libvmaf process; :meth:`result` waits for it and reads its log."""

    def __init__(self, process: subprocess.Popen, workdir: Path, count: int) -> None:
        self.process = process
        self.workdir = workdir
        self.count = count

    def result(self) -> tuple[list[float] | None, str | None]:
        try:
            try:
                _, stderr = self.process.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()
                return None, f"libvmaf did not finish in {TIMEOUT_S:.0f} s"
            if self.process.returncode != 0:
                last = (stderr or b"").decode(errors="replace").strip().splitlines()
                return None, f"ffmpeg libvmaf failed: {last[-1] if last else 'no message'}"
            try:
                log = json.loads((self.workdir / "vmaf.json").read_text())
                values = [float(frame["metrics"]["vmaf"]) for frame in log["frames"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                return None, f"unreadable libvmaf log ({exc})"
            if len(values) != self.count:
                return None, f"libvmaf scored {len(values)} frames of {self.count}"
            return values, None
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start(reference: Sequence[Frame], distorted: Sequence[Frame]) -> tuple[Job | None, str | None]:
    """Start scoring ``distorted`` against ``reference``; (None, reason) when it cannot."""
    found, reason = ffmpeg.with_filter("libvmaf")
    if found is None:
        return None, reason
    workdir = scratch.make_dir("vmaf")  # in the lab's temporary root: swept after a kill
    try:
        with scratch.reported(workdir):  # a full disk is the lab's, never a null VMAF
            _write_y4m(workdir / "reference.y4m", reference)
            _write_y4m(workdir / "distorted.y4m", distorted)
        options = f"model=version={MODEL}:log_fmt=json:log_path=vmaf.json:n_threads={THREADS}"
        process = subprocess.Popen(
            [
                found.path,
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                "distorted.y4m",  # libvmaf's first input is the distorted video
                "-i",
                "reference.y4m",
                "-lavfi",
                f"[0:v][1:v]libvmaf={options}",
                "-f",
                "null",
                "-",
            ],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "AV_LOG_FORCE_NOCOLOR": "1"},
        )
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        if isinstance(exc, scratch.DiskFull):
            raise
        return None, f"cannot run {found.path}: {exc}"
    return Job(process, workdir, len(reference)), None


def compute(
    reference: Sequence[Frame], distorted: Sequence[Frame]
) -> tuple[list[float] | None, str | None]:
    """Per-frame VMAF, or (None, reason)."""
    job, reason = start(reference, distorted)
    return (None, reason) if job is None else job.result()
