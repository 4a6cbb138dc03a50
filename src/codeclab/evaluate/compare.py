"""The metrics of any two videos, aligned by frame index: ``codeclab metrics REF DIST``.

The same trusted code that scores every experiment (:mod:`codeclab.evaluate.metrics`), on
two files a person names; the reference is read first, and nothing is scored unless both
have the same picture size and (up to ``--frames``) the same number of frames.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from codeclab.evaluate import metrics, vmaf
from codeclab.evaluate.reader import read_video
from codeclab.media import Clip


class Mismatch(ValueError):
    """The two videos cannot be compared frame by frame; the message says how they differ."""


def _describe(clip: Clip) -> dict:
    return {
        "path": str(clip.path),
        "width": clip.width,
        "height": clip.height,
        "frames": len(clip.frames),
        "fps": clip.fps,
    }


def aligned(reference: Clip, distorted: Clip, frames: int | None) -> int:
    """How many frames to compare, or :class:`Mismatch` saying why they cannot be."""
    if (reference.width, reference.height) != (distorted.width, distorted.height):
        raise Mismatch(
            f"size mismatch: reference is {reference.width}x{reference.height}, "
            f"distorted is {distorted.width}x{distorted.height}"
        )
    counts = len(reference.frames), len(distorted.frames)
    if frames is not None:
        for name, count in zip(("reference", "distorted"), counts, strict=True):
            if count < frames:
                raise Mismatch(f"--frames {frames}: the {name} has only {count} frames")
        return frames
    if counts[0] != counts[1]:
        raise Mismatch(
            f"frame count mismatch: reference has {counts[0]} frames, distorted has "
            f"{counts[1]} (give --frames N to compare the first N)"
        )
    return counts[0]


def compare_files(
    reference: str | Path,
    distorted: str | Path,
    *,
    frames: int | None = None,
    with_ms_ssim: bool = True,
    with_vmaf: bool = True,
) -> dict:
    """Per-frame and mean metrics of ``distorted`` against ``reference``, as a JSON-able dict."""
    started = time.perf_counter()
    ref = read_video(reference, max_frames=frames)
    dist = read_video(distorted, max_frames=frames)
    count = aligned(ref, dist, frames)
    ref_frames, dist_frames = ref.frames[:count], dist.frames[:count]
    job, vmaf_reason = (None, "VMAF not requested")
    if with_vmaf:
        job, vmaf_reason = vmaf.start(ref_frames, dist_frames)
    try:
        per_frame = metrics.score_frames(ref_frames, dist_frames, with_ms_ssim=with_ms_ssim)
    finally:
        values = None
        if job is not None:
            values, vmaf_reason = job.result()
    if values is not None:
        per_frame = [dataclasses.replace(f, vmaf=v) for f, v in zip(per_frame, values, strict=True)]
    names = [field.name for field in dataclasses.fields(metrics.FrameScores)]
    means = {name: metrics.mean_or_none([getattr(f, name) for f in per_frame]) for name in names}
    ms_reason = (
        metrics.ms_ssim_reason(ref.width, ref.height) if with_ms_ssim else "MS-SSIM not requested"
    )
    return {
        "reference": _describe(ref),
        "distorted": _describe(dist),
        "frames": count,
        "metrics": {
            **means,
            "ms_ssim_reason": None if means["ms_ssim_y"] is not None else ms_reason,
            "vmaf_reason": None if values is not None else vmaf_reason,
        },
        "per_frame": [{"frame": i, **vars(f)} for i, f in enumerate(per_frame)],
        "references": {
            "psnr": "10*log10(255^2/MSE) per plane, at most 100 dB (identical planes)",
            "ssim_y": "FFmpeg vf_ssim (4x4 block sums, 8x8 windows)",
            "ms_ssim_y": "Wang, Simoncelli, Bovik 2003: 5 scales, 11x11 Gaussian sigma 1.5",
            "vmaf": vmaf.describe(),
        },
        "seconds": round(time.perf_counter() - started, 4),
    }
