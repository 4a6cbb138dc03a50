"""A candidate's BD-rate against one baseline on one clip, from the rungs of both curves.

The headline figure is integrated over the standard range: the span the anchor covers at its
standard CRFs (the encoder's ``crf_ladder``: 22, 27, 32 and 37 for x264 and x265; 30, 38, 46
and 54 for SVT-AV1 and libaom), with the anchor's curve drawn through those rungs alone, as
the JVET/AOM common test conditions do. A wider ladder cannot move it. The wide figure, over
wherever the two curves overlap, is kept beside it, labelled. Near-lossless rungs
(:data:`codeclab.evaluate.rd.LOSSLESS_PSNR_DB`) enter neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codeclab.evaluate import rd
from codeclab.evaluate.baselines import KNOWN_ENCODERS

WIDE = "wide range: wherever the curves overlap"


@dataclass(frozen=True)
class Figure:
    """One BD-rate in percent, or None with the reason; ``span`` is the metric range the
    standard figure was integrated over (the anchor's standard span, before clipping)."""

    value: float | None
    reason: str | None
    span: tuple[float, float] | None = None


def standard_crfs(encoder: str) -> tuple[int, ...]:
    return KNOWN_ENCODERS[encoder].crf_ladder


def describe_range(encoder: str) -> str:
    """The standard range in words, for records, pages and tables."""
    crfs = standard_crfs(encoder)
    return f"standard range: {encoder}'s span at CRF {min(crfs)}..{max(crfs)}"


def lossy(rungs: Sequence[Any]) -> list[Any]:
    """The rungs that may sit on a lossy RD curve."""
    return [r for r in rungs if r.psnr_y < rd.LOSSLESS_PSNR_DB]


def standard_rungs(encoder: str, rungs: Sequence[Any]) -> list[Any]:
    """The anchor's rungs at its standard CRFs (lossy ones: x264 stops at CRF 1 anyway)."""
    crfs = set(standard_crfs(encoder))
    return [r for r in lossy(rungs) if r.crf in crfs]


def standard_span(encoder: str, rungs: Sequence[Any], metric: str = "psnr_y"):
    """``(lo, hi)`` of ``metric`` over the anchor's standard rungs, None when it lacks them."""
    kept = standard_rungs(encoder, rungs)
    if len(kept) < len(standard_crfs(encoder)) or any(getattr(r, metric) is None for r in kept):
        return None
    return rd.standard_range([(r.kbps, getattr(r, metric)) for r in kept])


def _points(rungs: Sequence[Any], metric: str) -> list[rd.Point]:
    return [(r.kbps, getattr(r, metric)) for r in rungs]


def clip_figures(
    encoder: str, anchor: Sequence[Any], test: Sequence[Any], metric: str
) -> tuple[Figure, Figure]:
    """The standard-range and the wide BD-rate of ``test`` rungs against ``anchor`` rungs.

    Rungs are anything with ``kbps``, ``psnr_y``, the metric's attribute and, for the anchor,
    ``crf``. A metric a rung lacks (MS-SSIM on small pictures, VMAF without libvmaf) is the
    caller's to explain; here it gives None.
    """
    anchor, test = lossy(anchor), lossy(test)
    wide = Figure(*rd.bd_rate(_points(anchor, metric), _points(test, metric)))
    span = standard_span(encoder, anchor, metric)
    if span is None:
        crfs = ", ".join(map(str, standard_crfs(encoder)))
        return Figure(None, f"the {encoder} curve lacks its standard rungs (CRF {crfs})"), wide
    value, reason = rd.bd_rate(
        _points(standard_rungs(encoder, anchor), metric),
        rd.around(_points(test, metric), span),
        metric_range=span,
    )
    return Figure(value, reason, span), wide
