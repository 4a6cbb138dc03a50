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


class FrameMetrics(BaseModel):
    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float
    ssim_y: float


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
    """BD-rate in percent (negative: fewer bits than the baseline); ``None`` with a reason."""

    value: float | None
    reason: str | None = None
    per_clip: dict[str, float | None] = Field(default_factory=dict)


class Target(BaseModel):
    achieved: bool
    target_kbps: float
    kbps: float | None = None
    psnr_y: float | None = None
    x265_psnr_y_at_kbps: float | None = None
    reason: str | None = None


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
    target: Target | None = None
    phases: list[PhaseRecord] = Field(default_factory=list)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    versions: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)

    def headline(self) -> dict[str, float | None]:
        """The figures a summary table shows: mean kbps/PSNR/SSIM over rungs, BD vs x265."""

        def mean(name: str) -> float | None:
            values = [getattr(r, name) for r in self.results]
            return sum(values) / len(values) if values else None

        x265 = self.bd_rate.get("x265", {}).get("psnr_y")
        return {
            "kbps": mean("kbps"),
            "psnr_y": mean("psnr_y"),
            "ssim_y": mean("ssim_y"),
            "bd_rate_x265": x265.value if x265 else None,
        }
