"""The experiment record: what one experiment measured, as other tools read it.

These Pydantic models are the JSON of ``codeclab evaluate --json`` and ``show --json``
(DESIGN.md section 8). Every number in them was measured by lab code on a real decode; the
models hold results, they compute nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "rejected", "failed"]
Split = Literal["train", "holdout", "train+holdout"]
"""Where a clip of the test set counts: designers see train scores only; the leaderboard
and the target check use holdout clips (the same clips when the set has no separate holdout)."""
PHASES = ("design", "validation", "deployment", "execution", "verification", "analysis", "publish")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ClipInfo(BaseModel):
    """A source clip as scored: its content hash makes the experiment re-runnable."""

    name: str
    path: str
    sha256: str
    width: int
    height: int
    frames: int
    fps: float
    conversions: list[str] = Field(default_factory=list)
    split: Split = "train+holdout"


class FrameMetrics(BaseModel):
    """Scores of a decode; ``None`` where a metric is undefined or was not computed.

    ``ms_ssim_y`` is ``None`` for pictures under 161x161 (and in records made before the lab
    computed it); ``vmaf`` is ``None`` without an FFmpeg that has libvmaf (see the rung's
    ``vmaf_reason``).
    """

    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float
    ssim_y: float
    ms_ssim_y: float | None = None
    vmaf: float | None = None


class Rung(FrameMetrics):
    """One point of an RD curve: a clip encoded at one quality (or CRF) and decoded."""

    clip: str
    bytes: int
    frames: int
    width: int
    height: int
    fps: float
    kbps: float
    bpp: float
    encode_s: float
    decode_s: float
    vmaf_reason: str | None = None


class RungResult(Rung):
    quality: int
    clip_sha256: str
    bitstream_sha256: str
    decoded_sha256: str
    per_frame: list[FrameMetrics] = Field(default_factory=list)


class BaselineRungRecord(Rung):
    crf: int


class BaselineCurve(BaseModel):
    encoder: str
    version: str
    settings: dict[str, Any]
    clip_sha256: str
    rungs: list[BaselineRungRecord]


class BdRate(BaseModel):
    """BD-rate in percent (negative: fewer bits than the baseline); ``None`` with a reason.

    ``integrated_over`` says which range: the standard one (the anchor's span at its standard
    CRFs, e.g. "standard range: x264's span at CRF 22..37"; ``spans`` gives it per clip, in the
    metric's unit) or
    ``wide`` (wherever the two curves overlap). Records made before the standard range have
    none and were wide.
    """

    value: float | None
    reason: str | None = None
    per_clip: dict[str, float | None] = Field(default_factory=dict)
    integrated_over: str | None = None
    spans: dict[str, tuple[float, float]] = Field(default_factory=dict)


class Target(BaseModel):
    achieved: bool
    target_kbps: float
    kbps: float | None = None
    psnr_y: float | None = None
    x265_psnr_y_at_kbps: float | None = None
    reason: str | None = None
    clip: str | None = None
    per_clip: dict[str, dict[str, Any]] = Field(default_factory=dict)


STOPPED_STAGES = ("screen", "train")
"""Stages of the evaluation cascade that end before the holdout clips: such records never rank."""


class Screen(BaseModel):
    """The evaluation cascade's first stage: the candidate on short cuts of the train clips,
    against its parent's figure there; only a candidate within the margin goes on to the
    full evaluation (whose record then carries this too)."""

    frames: int
    bd_rate: float | None
    parent_bd_rate: float | None = None
    margin: float
    passed: bool
    reason: str


class HoldoutGate(BaseModel):
    """The evaluation cascade's second gate: after the full train set, only a candidate within
    the margin of the campaign's best train figure so far goes on to the holdout clips (the
    leaderboard's), so holdout encodes go to candidates that could lead."""

    bd_rate: float | None
    best_bd_rate: float | None = None
    margin: float
    passed: bool
    reason: str


class PhaseRecord(BaseModel):
    name: str
    status: Literal["ok", "failed", "skipped"]
    seconds: float
    error: str | None = None


class Artifacts(BaseModel):
    reconstructed: str | None = None
    decoder: str | None = None
    program: str | None = None
    package: str | None = None
    bitstreams: list[str] = Field(default_factory=list)


class Reasoning(BaseModel):
    """Why the designer proposed this program, kept verbatim."""

    text: str = ""
    hypothesis: str | None = None
    mutations: list[str] = Field(default_factory=list)
    root_cause: str | None = None
    insights: str | None = None
    next_step: str | None = None
    expected_kbps: float | None = None
    expected_psnr: float | None = None
    confidence: float | None = None
    llm_usage: dict[str, Any] | None = None  # calls, tokens and cost of this proposal


class ExperimentRecord(BaseModel):
    experiment_id: str
    campaign_id: str | None = None
    iteration: int | None = None
    status: Status
    phase: str | None = None
    error: str | None = None
    program_sha256: str
    program_name: str
    parent_sha256: str | None = None
    designer: str
    reasoning: Reasoning = Field(default_factory=Reasoning)
    isolation: str
    source_bytes: int
    qualities: list[int]
    clips: list[ClipInfo] = Field(default_factory=list)
    results: list[RungResult] = Field(default_factory=list)
    baselines: dict[str, list[BaselineCurve]] = Field(default_factory=dict)
    bd_rate: dict[str, dict[str, BdRate]] = Field(default_factory=dict)
    bd_rate_train: dict[str, dict[str, BdRate]] = Field(default_factory=dict)
    bd_rate_holdout: dict[str, dict[str, BdRate]] = Field(default_factory=dict)
    bd_rate_wide: dict[str, dict[str, BdRate]] = Field(default_factory=dict)
    """All clips, over wherever the curves overlap: the second, labelled figure."""
    test_set: str | None = None
    holdout_is_train: bool = False
    stage: Literal["screen", "train", "full"] | None = None
    """How far the evaluation cascade took it: stopped after the screen, stopped after the
    full train set (no holdout figure), or evaluated in full; None when no cascade ran (only
    full evaluations ever rank)."""
    screen: Screen | None = None
    gate: HoldoutGate | None = None
    target: Target | None = None
    phases: list[PhaseRecord] = Field(default_factory=list)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    versions: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)

    def headline(self) -> dict[str, float | None]:
        """The figures a summary table shows: mean kbps/PSNR/SSIM over rungs, BD vs x265.

        The BD-rate is the leaderboard's: over the holdout clips (over all clips for records
        made before test sets had a holdout).
        """

        def mean(name: str) -> float | None:
            values = [getattr(r, name) for r in self.results]
            if not values or any(v is None for v in values):
                return None
            return sum(values) / len(values)

        x265 = self.leaderboard_bd_rate("x265")
        return {
            "kbps": mean("kbps"),
            "psnr_y": mean("psnr_y"),
            "ssim_y": mean("ssim_y"),
            "ms_ssim_y": mean("ms_ssim_y"),
            "bd_rate_x265": x265.value if x265 else None,
        }

    def published_rung(self) -> RungResult | None:
        """The rung the reconstructed video shows: the first clip at the ladder's highest
        quality (not a quality the lab added to span the standard range)."""
        if not self.clips:
            return None
        first = [r for r in self.results if r.clip_sha256 == self.clips[0].sha256]
        top = [r for r in first if r.quality == max(self.qualities, default=None)]
        return max(top or first, key=lambda r: r.quality, default=None)

    def leaderboard_bd_rate(self, encoder: str, metric: str = "psnr_y") -> BdRate | None:
        """BD-rate over the holdout clips, which designers never see scores of; None for a
        candidate the cascade stopped before the holdout (no full evaluation)."""
        if self.stage in STOPPED_STAGES:
            return None
        split = self.bd_rate_holdout if self.test_set is not None else self.bd_rate
        return split.get(encoder, {}).get(metric)

    def train_view(self) -> ExperimentRecord:
        """This record as a designer may see it: scores of train clips only.

        Holdout clips' results, baselines, BD-rates and the target check (which is judged on
        holdout clips) are removed, and ``bd_rate`` is the train average. A record without a
        test set is returned as it is.
        """
        if self.test_set is None:
            return self
        train = {c.sha256 for c in self.clips if c.split != "holdout"}
        names = {c.name for c in self.clips if c.split != "holdout"}

        def train_only(table: dict[str, dict[str, BdRate]]) -> dict[str, dict[str, BdRate]]:
            return {
                encoder: {
                    metric: bd.model_copy(
                        update={"per_clip": {k: v for k, v in bd.per_clip.items() if k in names}}
                    )
                    for metric, bd in by_metric.items()
                }
                for encoder, by_metric in table.items()
            }

        return self.model_copy(
            update={
                "clips": [c for c in self.clips if c.sha256 in train],
                "results": [r for r in self.results if r.clip_sha256 in train],
                "baselines": {
                    encoder: [curve for curve in curves if curve.clip_sha256 in train]
                    for encoder, curves in self.baselines.items()
                },
                "bd_rate": train_only(self.bd_rate_train),
                "bd_rate_train": train_only(self.bd_rate_train),
                "bd_rate_holdout": {},
                "bd_rate_wide": {},
                "target": None,
            },
            deep=True,
        )
