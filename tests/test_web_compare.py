"""Comparing two runs, the frontier and the search's progress, over real HTTP on a store a real
campaign filled (tests/weblab.py): the figures must be the ones the records' rungs give."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest

from codeclab.evaluate import rd
from codeclab.store.factory import open_experiment_store
from tests.weblab import EVIL, client_for, fill_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, small_clip_path: Path):
    filled = fill_lab(tmp_path_factory.mktemp("compare") / "lab", small_clip_path)
    store = open_experiment_store(filled["settings"].db_url)
    first = filled["records"][0]
    screened = first.model_copy(  # a candidate the cascade stopped after its screen
        update={
            "experiment_id": "screen00-0000-0000-0000-000000000000",
            "iteration": 50,
            "stage": "screen",
        }
    )
    store.save(screened, store.source(first.program_sha256) or "")
    with client_for(filled["settings"]) as client:
        yield {**filled, "client": client, "store": store}


def lossy_points(rungs, metric: str = "psnr_y") -> list[tuple[float, float]]:
    return [(r.kbps, getattr(r, metric)) for r in rungs if r.psnr_y < rd.LOSSLESS_PSNR_DB]


def text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def test_compare_api_has_both_curves_and_the_bd_rate_of_the_records_rungs(lab):
    a, b = lab["records"]
    answer = lab["client"].get(f"/api/compare?a={a.experiment_id}&b={b.experiment_id}")
    assert answer.status_code == 200, answer.text
    figures = answer.json()
    assert figures["a"]["experiment_id"] == a.experiment_id
    assert figures["b"]["experiment_id"] == b.experiment_id
    (clip,) = figures["clips"]
    first, second, *baselines = clip["series"]
    assert [p["kbps"] for p in first["points"]] == sorted(r.kbps for r in a.results)
    assert [p["kbps"] for p in second["points"]] == sorted(r.kbps for r in b.results)
    assert [s["name"].split()[0] for s in baselines] == ["x265"]
    anchor, test = lossy_points(a.results), lossy_points(b.results)
    span = (min(m for _, m in anchor), max(m for _, m in anchor))
    expected, _ = rd.bd_rate(anchor, test, metric_range=span)
    bd = next(x for x in clip["bd_rate"] if x["metric"] == "psnr_y")
    assert expected is not None and bd["value"] == pytest.approx(expected, abs=1e-9)
    assert bd["span"] == pytest.approx(span)
    low = max(span[0], min(m for _, m in test))
    high = min(span[1], max(m for _, m in test))
    assert bd["clipped"] == pytest.approx((low, high))
    assert "A's psnr_y span" in bd["integrated_over"]
    assert {x["metric"] for x in clip["bd_rate"]} >= {"psnr_y", "psnr_yuv", "ssim_y"}
    pairs = clip["rungs"]
    assert len(pairs) == max(len(a.results), len(b.results))
    frames = {(f["role"], f["quality"]): f["psnr_y"] for f in clip["frames"]}
    for role, record in (("a", a), ("b", b)):
        for result in record.results:
            assert frames[role, result.quality] == [f.psnr_y for f in result.per_frame]


def test_compare_page_states_the_figure_and_its_range(lab):
    a, b = lab["records"]
    html = lab["client"].get(f"/compare?a={a.experiment_id}&b={b.experiment_id}").text
    figures = lab["client"].get(f"/api/compare?a={a.experiment_id}&b={b.experiment_id}").json()
    bd = next(x for x in figures["clips"][0]["bd_rate"] if x["metric"] == "psnr_y")
    row = re.search(r'<tr data-clip="[^"]+" data-metric="psnr_y">(.*?)</tr>', html, re.S)
    shown = text(row.group(1))
    assert f"{bd['value']:+.2f}%" in shown
    assert f"{bd['clipped'][0]:.4g}..{bd['clipped'][1]:.4g} dB" in shown
    assert "clipped to where both curves exist" in shown
    assert 'id="compare-source"' in html and 'id="compare-decoded"' in html  # both videos
    assert "<script>alert" not in html and "evil" not in html


def test_a_baseline_stands_in_for_a_with_the_labs_own_figure(lab):
    _, b = lab["records"]
    figures = lab["client"].get(f"/api/compare?a=x265&b={b.experiment_id}").json()
    assert figures["a"] == {**figures["a"], "kind": "baseline", "name": "x265", "video": None}
    (clip,) = figures["clips"]
    first, second, *others = clip["series"]
    assert first["kind"] == "baseline" and second["kind"] == "experiment" and others == []
    bd = next(x for x in clip["bd_rate"] if x["metric"] == "psnr_y")
    lab_figure = b.bd_rate["x265"]["psnr_y"]
    assert bd["value"] == pytest.approx(lab_figure.per_clip[clip["clip"]], abs=1e-9)
    assert bd["span"] == pytest.approx(lab_figure.spans[clip["clip"]])
    assert bd["integrated_over"].startswith("standard range: x265's span at CRF 22..37")
    html = lab["client"].get(f"/compare?a=x265&b={b.experiment_id}").text
    assert "No side-by-side video" in html and "the baseline encoder" in text(html)


@pytest.mark.parametrize(
    "query, missing",
    [
        ("a=nope&b={b}", "'nope'"),
        ("a={b}&b=nope", "'nope'"),
        ("a={b}", "choose two experiments"),
        ("", "choose two experiments"),
        ("a=x999&b={b}", "'x999'"),
    ],
)
def test_bad_or_missing_ids_give_a_404_page(lab, query, missing):
    b = lab["records"][1].experiment_id
    page = lab["client"].get("/compare?" + query.format(b=b))
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert missing in text(page.text) and "<h1>Not found</h1>" in page.text
    api = lab["client"].get("/api/compare?" + query.format(b=b))
    assert api.status_code == 404 and missing in api.json()["detail"]


def test_unknown_experiment_page_is_a_404_page_and_script_free(lab):
    page = lab["client"].get(f"/experiments/{EVIL}")
    assert page.status_code == 404 and "<h1>Not found</h1>" in page.text
    assert EVIL not in page.text


def test_lists_offer_choosing_a_and_b(lab):
    for path in ("/", "/blog"):
        html = lab["client"].get(path).text
        assert '<form id="choose" action="/compare"' in html
        for record in lab["records"]:
            for role in "ab":
                assert f'name="{role}" value="{record.experiment_id}"' in html, (path, role)
    assert 'name="a" value="x265"' in lab["client"].get("/blog").text


def test_experiment_page_links_to_the_best_and_the_baseline(lab):
    ranked = [r for r in lab["store"].list() if r.leaderboard_bd_rate("x265")]
    best = min(r.leaderboard_bd_rate("x265").value for r in ranked)
    worse = next(r for r in lab["records"] if r.leaderboard_bd_rate("x265").value > best)
    html = lab["client"].get(f"/experiments/{worse.experiment_id}").text
    found = re.search(
        rf'href="/compare\?a=([^&]+)&amp;b={worse.experiment_id}">Compare with the best<', html
    )
    chosen = lab["store"].get(found.group(1))
    assert chosen.leaderboard_bd_rate("x265").value == best
    assert f'href="/compare?a=x265&amp;b={worse.experiment_id}">Compare with x265<' in html
    assert lab["client"].get(unescape(found.group(0)[6:].split('"')[0])).status_code == 200
    best_page = lab["client"].get(f"/experiments/{chosen.experiment_id}").text
    assert "Compare with the best" not in best_page  # it is the best


def test_rd_api_gives_the_bd_rate_ranges_the_plots_shade(lab):
    record = lab["records"][1]
    (clip,) = lab["client"].get(f"/api/experiments/{record.experiment_id}/rd").json()["clips"]
    ranges = {(r["encoder"], r["metric"]): r for r in clip["ranges"]}
    bd = record.bd_rate["x265"]["psnr_y"]
    shaded = ranges["x265", "psnr_y"]
    assert (shaded["low"], shaded["high"]) == pytest.approx(bd.spans[clip["clip"]])
    assert shaded["integrated_over"] == bd.integrated_over


def test_frontier_is_the_hull_of_every_ranked_rung(lab):
    store = lab["store"]
    ranked = [
        r
        for r in store.list()
        if r.status == "ok" and r.isolation == "strong" and r.stage != "screen"
    ]
    rungs = [
        (x.kbps, x.psnr_y, r.experiment_id, x.quality)
        for r in ranked
        for x in r.results
        if x.psnr_y < rd.LOSSLESS_PSNR_DB
    ]
    (clip,) = lab["client"].get("/api/frontier").json()
    hull = rd.convex_hull([(k, p) for k, p, *_ in rungs], log_rate=True)
    assert [(p["kbps"], p["psnr_y"]) for p in clip["frontier"]] == hull
    for point in clip["frontier"]:  # each point names a rung that made it
        made = (point["kbps"], point["psnr_y"], point["experiment_id"], point["quality"])
        assert made in rungs
    assert [s["name"].split()[0] for s in clip["baselines"]] == ["x265"]
    assert clip["experiments"] == len({r.experiment_id for r in ranked})


def test_progress_points_carry_the_ranking_figure_and_the_stage(lab):
    campaign = lab["records"][0].campaign_id
    records = {r.experiment_id: r for r in lab["store"].list(campaign_id=campaign)}
    (progress,) = lab["client"].get(f"/api/progress?campaign={campaign}").json()
    assert [p["iteration"] for p in progress["points"]] == sorted(
        r.iteration for r in records.values()
    )
    assert {p["experiment_id"] for p in progress["points"]} == set(records)
    for point in progress["points"]:
        record = records[point["experiment_id"]]
        assert point["stage"] == record.stage
        ranks = record.status == "ok" and record.stage != "screen"
        figure = record.leaderboard_bd_rate("x265").value if ranks else None
        assert point["leaderboard_bd_rate"] == figure
        assert point["leaderboard_anchor"] == ("x265" if ranks else None)
    assert {p["stage"] for p in progress["points"]} == {None, "screen"}
