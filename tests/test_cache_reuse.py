"""The baseline cache is shared by campaigns: a second campaign on the same clips encodes none."""

from __future__ import annotations

from pathlib import Path

from codeclab.campaign import run_campaign
from codeclab.config import load_settings
from codeclab.evaluate.baselines import RUNG_JSON
from codeclab.media import load_clip
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore


def cache_entries(home: Path) -> dict[str, int]:
    """Every whole cache entry and the mtime of its rung.json (rewritten on a re-encode)."""
    folder = home / "cache" / "baselines"
    return {p.parent.name: p.stat().st_mtime_ns for p in folder.glob(f"*/{RUNG_JSON}")}


def test_a_second_campaign_reencodes_no_baseline(home, small_clip_path):
    settings = load_settings(
        clips=[small_clip_path], iterations=1, qualities=[30, 70], baselines=["x264", "x265"]
    )
    clips = [load_clip(small_clip_path)]
    store, artifacts = ExperimentStore(settings.db_url), LocalArtifactStore(settings.artifacts_dir)
    first = run_campaign(settings, clips, store, artifacts)
    assert first.experiments[0].status == "ok", first.experiments[0].error
    entries = cache_entries(home)
    assert len(entries) >= 8  # two encoders, at least four rungs each
    second = run_campaign(settings, clips, store, artifacts)
    assert second.campaign_id != first.campaign_id
    record = second.experiments[0]
    assert record.status == "ok", record.error
    assert cache_entries(home) == entries  # nothing added, nothing rewritten
    assert not [p for p in (home / "cache" / "baselines").iterdir() if p.name.startswith(".")]
    used = {
        (c.encoder, r.crf, r.bytes) for cs in record.baselines.values() for c in cs for r in c.rungs
    }
    before = {
        (c.encoder, r.crf, r.bytes)
        for cs in first.experiments[0].baselines.values()
        for c in cs
        for r in c.rungs
    }
    assert used == before
