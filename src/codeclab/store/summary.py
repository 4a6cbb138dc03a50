"""Light summaries of experiments, written beside each record so the dashboard never loads
every record: one row per experiment with its headline figures, and the aggregates of
the overview (counts, best BD-rates, LLM spend, progress over iterations).

Both stores (SQL and DynamoDB) write :func:`summarize` at save time and answer the same
queries (``page``, ``overview``, ``leaderboard``, ``progress``) with these models. The
figures are derived from the record; :data:`SUMMARY_VERSION` changes when their definition
does, and each store then recomputes the summaries of the experiments it holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BaseModel, Field

from codeclab.config import Settings
from codeclab.ranking import leaderboard_entry, ranks
from codeclab.record import Artifacts, ExperimentRecord, Reasoning, Status

SUMMARY_VERSION = 2  # 2: records of weak isolation do not rank
HEADLINE = ("kbps", "psnr_y", "ssim_y", "ms_ssim_y", "bd_rate_x265")
STATUSES: tuple[str, ...] = get_args(Status)
BASELINE_ENCODERS: tuple[str, ...] = get_args(
    get_args(Settings.model_fields["baselines"].annotation)[0]
)
"""Every baseline the lab can run, in the order the dashboard shows them."""

X265_QUALITY_RULE = (
    "the lowest bitrate of any rung on a holdout clip whose PSNR-Y is at or above x265's "
    "PSNR-Y at that same bitrate (x265's RD curve on that clip, interpolated; rungs outside "
    "x265's rate range do not count)"
)


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the store writes UTC, so they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class ExperimentSummary(BaseModel):
    """What a list of experiments shows: no results, baselines or per-frame data."""

    experiment_id: str
    campaign_id: str | None = None
    iteration: int | None = None
    status: str
    phase: str | None = None
    error: str | None = None
    program_sha256: str
    program_name: str
    designer: str
    created_at: UtcDatetime
    reasoning: Reasoning = Field(default_factory=Reasoning)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    headline_kbps: float | None = None
    headline_psnr_y: float | None = None
    headline_ssim_y: float | None = None
    headline_ms_ssim_y: float | None = None
    headline_bd_rate_x265: float | None = None
    leaderboard_bd_rate: float | None = None
    leaderboard_anchor: str | None = None
    x265_quality_kbps: float | None = None
    x265_quality_clip: str | None = None

    def headline(self) -> dict[str, float | None]:
        """The same figures as :meth:`ExperimentRecord.headline`."""
        return {name: getattr(self, f"headline_{name}") for name in HEADLINE}


class Best(BaseModel):
    """The best value of one figure over successful experiments, and whose it is."""

    value: float
    experiment_id: str
    program_name: str
    clip: str | None = None


class LlmSpend(BaseModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True  # False: some model had no price, its cost is not in cost_usd


class Overview(BaseModel):
    """The overview page's cards."""

    total: int
    by_status: dict[str, int]
    best_bd_rate: dict[str, Best | None]  # holdout BD-rate (PSNR-Y) per baseline encoder
    best_x265_quality_kbps: Best | None
    x265_quality_rule: str = X265_QUALITY_RULE
    llm: LlmSpend


class ProgressPoint(BaseModel):
    """One experiment of a campaign on the progress charts."""

    experiment_id: str
    iteration: int | None = None
    status: str
    program_name: str
    created_at: UtcDatetime
    kbps: float | None = None
    psnr_y: float | None = None
    bd_rate_x265: float | None = None
    leaderboard_bd_rate: float | None = Field(
        None, description="the ranking figure (holdout, PSNR-Y); None where it does not rank"
    )
    leaderboard_anchor: str | None = None
    stage: str | None = Field(
        None,
        description="how far the cascade took it: 'screen', 'train', 'full', None (no cascade)",
    )


class ProgramRun(BaseModel):
    """An experiment that ran a program: the version history lists these per ancestor."""

    experiment_id: str
    campaign_id: str | None = None
    iteration: int | None = None
    status: str
    program_name: str
    created_at: UtcDatetime


class ProgramInfo(BaseModel):
    """A stored program without its source: enough to walk a lineage."""

    sha256: str
    name: str
    parent_sha256: str | None = None


class CampaignProgress(BaseModel):
    campaign_id: str
    started_at: UtcDatetime | None
    points: list[ProgressPoint]


def holdout_bd_rates(record: ExperimentRecord) -> dict[str, float]:
    """The leaderboard BD-rate (holdout clips, PSNR-Y) against each baseline, when it ranks."""
    if not ranks(record):
        return {}
    rates = {}
    for encoder in record.baselines.keys() | record.bd_rate_holdout.keys() | record.bd_rate.keys():
        bd = record.leaderboard_bd_rate(encoder)
        if bd is not None and bd.value is not None:
            rates[encoder] = bd.value
    return rates


def _x265_quality(record: ExperimentRecord) -> tuple[float, str] | None:
    """(kbps, clip) by :data:`X265_QUALITY_RULE`, or None."""
    from codeclab.evaluate.rd import value_at_rate  # scipy: only where summaries are made

    if not ranks(record):
        return None
    holdout = {c.sha256 for c in record.clips if c.split != "train"}
    curves = {
        curve.clip_sha256: [(r.kbps, r.psnr_y) for r in curve.rungs]
        for curve in record.baselines.get("x265", [])
    }
    best: tuple[float, str] | None = None
    for rung in record.results:
        if rung.clip_sha256 not in holdout or rung.clip_sha256 not in curves:
            continue
        reference = value_at_rate(curves[rung.clip_sha256], rung.kbps)
        if (
            reference is not None
            and rung.psnr_y >= reference
            and (best is None or rung.kbps < best[0])
        ):
            best = (rung.kbps, rung.clip)
    return best


def summarize(record: ExperimentRecord) -> dict[str, Any]:
    """The derived figures a summary row holds beside the record's own fields."""
    entry = leaderboard_entry(record)
    quality = _x265_quality(record)
    usage = record.reasoning.llm_usage or {}
    return {
        **{f"headline_{k}": v for k, v in record.headline().items()},
        "leaderboard_bd_rate": entry[1] if entry else None,
        "leaderboard_anchor": entry[0] if entry else None,
        "x265_quality_kbps": quality[0] if quality else None,
        "x265_quality_clip": quality[1] if quality else None,
        "llm_calls": int(usage.get("calls") or 0),
        "llm_input_tokens": int(usage.get("input_tokens") or 0),
        "llm_output_tokens": int(usage.get("output_tokens") or 0),
        "llm_cost_usd": float(usage.get("cost_usd") or 0.0),
        "llm_cost_known": bool(usage.get("cost_known", True)),
        "summary_version": SUMMARY_VERSION,
    }
