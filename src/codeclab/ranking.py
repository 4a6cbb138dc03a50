"""Which experiments rank, and by what figure: the leaderboard's one definition.

Read by the campaign (its best), the stores' summaries (the dashboard's leaderboard and best
figures) and the publish policy, so it depends on the record alone.
"""

from __future__ import annotations

from codeclab.record import ExperimentRecord
from codeclab.sandbox.bwrap import STRONG

LEADERBOARD_ENCODERS = ("x264", "x265")
"""The anchors the leaderboard ranks by, in the order the designer's fitness uses them."""


def ranks(record: ExperimentRecord) -> bool:
    """Whether a record may rank (leaderboard, best figures, target): it succeeded, under
    strong isolation. Under weak isolation a program that escapes the policy can read the
    source clip from the host, so its figures prove nothing."""
    return record.status == "ok" and record.isolation == STRONG


def leaderboard_entry(record: ExperimentRecord) -> tuple[str, float] | None:
    """The leaderboard figure and its anchor: BD-rate (PSNR-Y) on the holdout clips against
    the first baseline that has one; lower is better."""
    if not ranks(record):
        return None
    for encoder in LEADERBOARD_ENCODERS:
        bd = record.leaderboard_bd_rate(encoder)
        if bd is not None and bd.value is not None:
            return encoder, bd.value
    return None


def leaderboard(record: ExperimentRecord) -> float | None:
    entry = leaderboard_entry(record)
    return entry[1] if entry else None
