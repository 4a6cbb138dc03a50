"""The overview, the blog and their JSON twins over real HTTP, on a store a real campaign filled."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest

from codeclab.ranking import leaderboard
from codeclab.record import Reasoning, utcnow
from codeclab.store.factory import open_experiment_store
from codeclab.web.campaigns import CampaignState
from tests.weblab import FILLER, client_for, fill_lab

SPEND = {"calls": 3, "input_tokens": 12345, "output_tokens": 678, "cost_usd": 0.42}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, small_clip_path: Path):
    """The shared lab (tests/weblab.py) plus one experiment a model designed, with its cost."""
    filled = fill_lab(tmp_path_factory.mktemp("overview") / "lab", small_clip_path)
    store = open_experiment_store(filled["settings"].db_url)
    first = filled["records"][0]
    designed = first.model_copy(
        update={
            "experiment_id": "llm00000-0000-0000-0000-000000000000",
            "iteration": 50,
            "designer": "llm",
            "reasoning": Reasoning(text="a model's idea", llm_usage=SPEND | {"cost_known": True}),
            "created_at": utcnow(),
        }
    )
    store.save(designed, store.source(first.program_sha256) or "")
    everything = store.list()
    with client_for(filled["settings"]) as client:
        yield {**filled, "client": client, "store": store, "all": everything}


def cards(html: str) -> dict[str, str]:
    """Each card's label and the text of the card after it."""
    card = r'<div class="card"><div class="label">([^<]+)</div>(.*?)</div>'
    found = re.findall(card + r'\s*(?=<div class="card">|</section>)', html, flags=re.S)
    return {unescape(label): unescape(re.sub(r"<[^>]+>", " ", body)) for label, body in found}


def test_overview_cards_say_how_many_how_good_and_what_it_cost(lab):
    html = lab["client"].get("/").text
    shown = cards(html)
    records = lab["all"]
    ok = [r for r in records if r.status == "ok"]
    assert shown["Experiments"].split()[0] == str(len(records))
    assert f"{len(ok)} ok" in shown["Experiments"] and "1 failed" in shown["Experiments"]
    assert f"{round(100 * len(ok) / len(records))}%" in shown["Success rate"]
    for encoder in ("x264", "x265", "svtav1"):
        assert f"Best holdout BD-rate vs {encoder}" in shown
    assert "no result yet" in shown["Best holdout BD-rate vs x264"]  # the lab ran x265 only
    best = min(r.leaderboard_bd_rate("x265").value for r in ok)
    x265 = shown["Best holdout BD-rate vs x265"]
    word = "better" if best < 0 else "worse"
    assert f"{best:+.2f}% {word}" in x265
    assert f"{word}: {abs(best):.2f}% {'fewer' if best < 0 else 'more'} bits than x265" in x265
    assert "Lowest bitrate at x265 quality" in shown
    assert "at or above x265's PSNR-Y at that same bitrate" in unescape(html)
    spend = shown["LLM spend"]
    assert "$0.42" in spend and "12,345 input + 678 output tokens" in spend and "3 calls" in spend


def test_overview_shows_the_leaderboard_latest_charts_and_campaign(lab):
    html = lab["client"].get("/").text
    board = html.split("<h2>Leaderboard (holdout clips)</h2>")[1].split("<h2>")[0]
    ranked = sorted(
        (r for r in lab["all"] if leaderboard(r) is not None),
        key=lambda r: (leaderboard(r), r.created_at),
    )[:10]
    assert re.findall(r'<a href="/experiments/([^"]+)">', board) == [
        r.experiment_id for r in ranked
    ]
    latest = html.split("<h2>Latest experiments</h2>")[1].split("<h2>")[0]
    newest = sorted(lab["all"], key=lambda r: r.created_at, reverse=True)[:10]
    assert re.findall(r'<a href="/experiments/([^"]+)">', latest) == [
        r.experiment_id for r in newest
    ]
    assert 'data-src="/api/progress"' in html and '<script src="/vendor/plotly.min.js"' in html
    plotly = lab["client"].get("/vendor/plotly.min.js")
    assert plotly.status_code == 200 and "javascript" in plotly.headers["content-type"]
    assert "No campaign is running." in html
    assert "no admin token is configured" in html and 'id="campaign-admin"' not in html


def test_api_overview_matches_the_records(lab):
    answer = lab["client"].get("/api/overview")
    assert answer.status_code == 200
    overview = answer.json()
    records = lab["all"]
    ok = [r for r in records if r.status == "ok"]
    assert overview["total"] == len(records)
    assert overview["by_status"] == {"ok": len(ok), "failed": len(records) - len(ok)}
    best = min(ok, key=lambda r: (r.leaderboard_bd_rate("x265").value, r.created_at))
    assert overview["best_bd_rate"]["x265"]["experiment_id"] == best.experiment_id
    assert overview["best_bd_rate"]["x265"]["value"] == pytest.approx(
        best.leaderboard_bd_rate("x265").value
    )
    assert overview["best_bd_rate"]["x264"] is None
    assert overview["llm"] == SPEND | {"cost_known": True}


def test_api_leaderboard_ranks_successful_experiments(lab):
    client = lab["client"]
    board = client.get("/api/leaderboard").json()
    ranked = sorted(
        (r for r in lab["all"] if leaderboard(r) is not None),
        key=lambda r: (leaderboard(r), r.created_at),
    )
    assert [e["experiment_id"] for e in board] == [r.experiment_id for r in ranked[:10]]
    assert [e["rank"] for e in board] == list(range(1, len(board) + 1))
    assert {e["anchor"] for e in board} == {"x265"}
    assert board[0]["bd_rate"] == pytest.approx(leaderboard(ranked[0]))
    assert len(client.get("/api/leaderboard", params={"limit": 3}).json()) == 3
    assert client.get("/api/leaderboard", params={"limit": 0}).status_code == 422


def test_api_progress_follows_each_campaign_by_iteration(lab):
    client = lab["client"]
    real = lab["records"]
    progress = client.get("/api/progress").json()
    mine = next(c for c in progress if c["campaign_id"] == real[0].campaign_id)
    run = [p for p in mine["points"] if p["iteration"] in (1, 2)]
    assert [p["experiment_id"] for p in run] == [r.experiment_id for r in real]
    for point, record in zip(run, real, strict=True):
        head = record.headline()
        assert point["kbps"] == pytest.approx(head["kbps"])
        assert point["psnr_y"] == pytest.approx(head["psnr_y"])
        assert point["bd_rate_x265"] == pytest.approx(head["bd_rate_x265"])
    filler = client.get("/api/progress", params={"campaign": "filler"}).json()
    assert [p["iteration"] for p in filler[0]["points"]] == list(range(1, FILLER + 1))
    assert client.get("/api/progress", params={"campaigns": 0}).status_code == 422


def test_api_experiments_filters_by_status_and_campaign_together(lab):
    client = lab["client"]
    both = client.get(
        "/api/experiments", params={"status": "ok", "campaign": "filler", "page": 1}
    ).json()
    assert both["total"] == FILLER and both["pages"] == 1
    assert {e["status"] for e in both["experiments"]} == {"ok"}
    failed = client.get(
        "/api/experiments", params={"status": "failed", "campaign": "filler"}
    ).json()
    assert failed["total"] == 0 and failed["experiments"] == []


def test_blog_pages_by_the_count_and_marks_bd_rates(lab):
    client = lab["client"]
    html = client.get("/blog").text
    total = len(lab["all"])
    assert f"Page 1 of {-(-total // 10)}" in html
    assert "BD-rate vs x265" in html and "links expire" in html
    tiles = re.findall(r'<div class="note">((?:better|worse): [^<]+ than x265[^<]*)</div>', html)
    assert tiles and all("for the same PSNR-Y" in t for t in tiles)
    last = client.get(f"/blog?page={-(-total // 10)}").text
    assert last.count('<article class="post">') == total - 10 * (-(-total // 10) - 1)


def test_every_route_is_in_the_openapi_document(lab):
    paths = lab["client"].get("/openapi.json").json()["paths"]
    for path in (
        "/api/experiments",
        "/api/overview",
        "/api/leaderboard",
        "/api/progress",
        "/api/campaigns",
        "/api/campaigns/current",
        "/api/campaigns/stop",
        "/api/experiments/{experiment_id}/regenerate",
        "/api/experiments/{experiment_id}/transcode",
    ):
        assert path in paths, path
    current = lab["client"].get("/api/campaigns/current").json()
    assert CampaignState.model_validate(current).running is False
