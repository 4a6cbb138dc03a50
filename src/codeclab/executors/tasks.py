"""The lab's heavy work as plain functions, which an executor may run on any machine.

Each is trusted lab code around the sandbox and depends on its arguments only. An expected
failure (a program that crashes, a decoder that is not deterministic, a short decode) comes
back as the sandbox's reason in the result, never as an exception, so that it reads exactly
the same whether the task ran here or on a Ray worker; only a lab bug or a dead worker raises.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from codeclab import __version__, scratch
from codeclab.evaluate import baselines
from codeclab.evaluate.metrics import Scores, score
from codeclab.frames import Frame, FrameMismatch, check_frames
from codeclab.media import frames_sha256, write_mp4
from codeclab.sandbox import bwrap, isolate


def smoke_run(
    source: str,
    frames: Sequence[Frame],
    fps: float,
    quality: int,
    limits: isolate.Limits,
    launcher: isolate.Launcher | None,
) -> tuple[str | None, str]:
    """Validation's round trip on a tiny clip: why it failed (None: it worked), and the
    isolation it ran with."""
    launcher = launcher or bwrap.best_launcher()
    try:
        isolate.smoke_run(source, frames, fps, quality, limits, launcher)
    except isolate.SandboxError as exc:
        return str(exc), launcher.isolation
    return None, launcher.isolation


@dataclass(frozen=True)
class RungRun:
    """One rung's encode or decodes: the bitstream the sandbox handed back (an encode), the
    seconds it took, or why there is none."""

    error: str | None
    isolation: str
    bitstream: bytes = b""
    seconds: float = 0.0


def encode_rung(
    source: str,
    frames: Sequence[Frame],
    fps: float,
    quality: int,
    limits: isolate.Limits,
    launcher: isolate.Launcher | None,
) -> RungRun:
    """Encode one rung in the sandbox.

    ``launcher`` None means the strongest that works on this machine (each node probes its
    own); the result says which isolation it was.
    """
    launcher = launcher or bwrap.best_launcher()
    try:
        encoded = isolate.run_encode(source, frames, fps, quality, limits, launcher)
    except isolate.SandboxError as exc:
        return RungRun(error=str(exc), isolation=launcher.isolation)
    return RungRun(None, launcher.isolation, encoded.bitstream, encoded.seconds)


def decode_rung(
    source: str,
    decoder: str,
    bitstream: bytes,
    limits: isolate.Limits,
    launcher: isolate.Launcher | None,
) -> tuple[RungRun, list[Frame]]:
    """Decode twice in two fresh sandboxes: the program as the lab runs it, then ``decoder``,
    the published decoder file (the same program text, loaded after checking its sha256).
    The two decodes must be identical.

    One check does two jobs: the decoder is deterministic across fresh processes, and the
    file the lab publishes reproduces, bit for bit, the pictures the lab scores (so no third
    decode at publish). Returns the first decode's frames beside the result, so an executor
    can keep them where they were made. The runner starts no decode of an experiment before
    all its encodes ended, so no encoder of the experiment is alive to pass a decoder the
    source frames.
    """
    launcher = launcher or bwrap.best_launcher()
    failed = functools.partial(RungRun, isolation=launcher.isolation)
    try:
        decoded = isolate.run_decode(source, bitstream, limits, launcher)
    except isolate.SandboxError as exc:
        return failed(error=str(exc)), []
    try:
        again = isolate.run_decode(decoder, bitstream, limits, launcher, style="native")
    except isolate.SandboxError as exc:
        return failed(error=f"{NOT_REPRODUCED}: the published decoder failed: {exc}"), []
    if decoded.frames and not again.frames:
        # a program can tell the decoder file from the lab's sandbox (its call stack is one
        # frame deeper) and decode nothing there
        reason = "the published decoder returned no frames, where the lab decoded pictures"
        return failed(error=f"{NOT_REPRODUCED}: {reason}"), []
    difference = first_difference(decoded.frames, again.frames)
    if difference:
        reason = (
            "decoder is not deterministic: two decodes of the same bitstream differ "
            f"{difference} (the second by the published decoder file: the program decodes "
            "differently each time, or the file does not reproduce it)"
        )
        return failed(error=reason), []
    return RungRun(None, launcher.isolation, seconds=decoded.seconds), decoded.frames


NOT_REPRODUCED = "published decoder does not reproduce"


@dataclass(frozen=True)
class Scored:
    """One rung's verification: the decode checked against the source, then scored."""

    error: str | None
    scores: Scores | None = None
    decoded_sha256: str = ""


def score_rung(source: Sequence[Frame], decoded: list[Frame], with_vmaf: bool) -> Scored:
    """Check frame count, plane shapes and dtype first; only a well-formed decode is scored."""
    height, width = source[0][0].shape
    try:
        check_frames(decoded, count=len(source), width=width, height=height)
    except FrameMismatch as exc:
        return Scored(error=str(exc))
    scores = score(source, decoded, with_vmaf=with_vmaf)
    return Scored(None, scores, frames_sha256(decoded))


def baseline_curve(
    frames: Sequence[Frame],
    fps: float,
    clip_sha256: str,
    encoder: str,
    cache_dir: Path,
    cover_kbps: tuple[float, float],
    with_vmaf: bool,
    shared_s3: tuple[str, str | None] | None = None,
    cover_psnr: tuple[float, float] | None = None,
) -> list[baselines.BaselineRung]:
    """A baseline's RD curve, from this machine's cache of ``cache_dir`` when it has it, else
    from the shared level in S3 (``shared_s3``: the artifacts URL and endpoint) when given;
    its ladder covers the candidate's kbps and PSNR-Y ranges (``cover_kbps``, ``cover_psnr``)."""
    shared = None
    if shared_s3 is not None:
        from codeclab.store.s3 import S3ArtifactStore

        url, endpoint = shared_s3
        shared = S3ArtifactStore(url, endpoint_url=endpoint, check=False)
    # the encodes write into the cache: a full disk there is the lab's fault, said so
    with scratch.reported(cache_dir):
        try:
            return baselines.baseline_curve(
                frames,
                fps,
                clip_sha256,
                encoder,
                cache_dir,
                cover_kbps=cover_kbps,
                cover_psnr=cover_psnr,
                with_vmaf=with_vmaf,
                shared=shared,
            )
        except RuntimeError:  # an encoder's fork failed, perhaps writing its bitstream
            scratch.check_room(cache_dir)
            raise


def render_mp4(frames: list[Frame], fps: float) -> bytes:
    """The reconstructed video (H.264 mp4) of decoded frames, made where the frames are."""
    folder = scratch.make_dir("render")  # in the lab's temporary root: swept after a kill
    try:
        with scratch.reported(folder):
            return write_mp4(folder / "reconstructed.mp4", frames, fps).read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def versions() -> dict[str, str]:
    """The versions an experiment records (codeclab, Python, numpy, PyAV, encoders); every
    node of a cluster must give the driver's."""
    return {
        "codeclab": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pyav": av.__version__,
        **{name: baselines.encoder_version(name) for name in baselines.ENCODERS},
    }


def _frame_digests(frames: list[Frame]) -> list[str]:
    return [
        hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in frame)).hexdigest()
        for frame in frames
    ]


def first_difference(first: list[Frame], second: list[Frame]) -> str | None:
    """Where two decodes differ ('at frame N', 'in frame count ...'), or None if identical."""
    if len(first) != len(second):
        return f"in frame count ({len(first)} and {len(second)} frames)"
    for index, (a, b) in enumerate(zip(_frame_digests(first), _frame_digests(second), strict=True)):
        if a != b:
            return f"at frame {index}"
    return None
