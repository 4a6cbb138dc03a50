"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

Videos play, the comparison wipe moves, the heatmap loads at the clip's size, the decoder
download is the stored artifact, and pages render something. Without Chromium or Playwright
these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from tests.weblab import fill_lab, serve

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 20_000
VIEWPORT = {"width": 1200, "height": 900}


def missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed"
    if shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM}"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, small_clip_path: Path):
    """A lab filled by a real campaign, served on loopback, and a headless Chromium."""
    reason = missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run under CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    filled = fill_lab(tmp_path_factory.mktemp("browser") / "lab", small_clip_path)
    with serve(filled["settings"]) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield {**filled, "base": base, "browser": browser, "record": filled["records"][-1]}
        finally:
            browser.close()


@pytest.fixture()
def page(site):
    context = site["browser"].new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def experiment_page(site):
    """The experiment page, loaded once with its charts drawn (Plotly is large to parse)."""
    context = site["browser"].new_context(accept_downloads=True, viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site['base']}/experiments/{site['record'].experiment_id}")
    page.wait_for_selector("#charts .js-plotly-plot")
    yield page
    context.close()
    assert not errors, errors


def not_blank(png: bytes) -> bool:
    """Whether a screenshot holds more than one colour."""
    with av.open(io.BytesIO(png)) as container:
        pixels = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1


def test_blog_video_plays(site, page):
    page.goto(f"{site['base']}/blog")
    video = page.locator("video").first
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "v => v.readyState >= 2 && v.currentTime > 0", arg=video.element_handle()
    )


def test_comparison_player_is_synced_and_the_wipe_moves(experiment_page):
    page = experiment_page
    page.click("#compare-play")
    page.wait_for_function(
        "() => ['compare-source', 'compare-decoded'].every(id => {"
        " const v = document.getElementById(id); return v.readyState >= 2 && v.currentTime > 0 })"
    )
    page.click("#compare-play")
    page.wait_for_function("() => document.getElementById('compare-decoded').paused")
    overlay = page.locator(".compare-decoded")
    clip = "e => getComputedStyle(e).clipPath"
    assert overlay.evaluate(clip) == "none"  # side by side: nothing is cut
    page.check("input[value=wipe]")
    assert overlay.evaluate(clip) == "inset(0px 0px 0px 50%)"
    page.locator("#wipe").fill("20")
    assert overlay.evaluate(clip) == "inset(0px 0px 0px 20%)"
    page.locator("#wipe").fill("85")
    assert overlay.evaluate(clip) == "inset(0px 0px 0px 85%)"
    under, over = page.locator(".compare-source").bounding_box(), overlay.bounding_box()
    assert over == pytest.approx(under)  # the decode lies exactly over the source
    page.check("input[value=side]")


def test_heatmap_loads_at_the_clip_size_and_the_stepper_steps(site, experiment_page):
    page = experiment_page
    width = site["record"].clips[0].width
    loaded = "img => img.complete && img.naturalWidth > 0"
    for kind in ("source", "decoded", "heatmap"):
        page.wait_for_function(loaded, arg=page.locator(f"#stepper-{kind}").element_handle())
    heatmap = page.locator("#stepper-heatmap")
    assert heatmap.evaluate("img => img.naturalWidth") == width
    before = page.locator("#stepper-metrics [data-metric=psnr_y]").inner_text()
    page.click("#stepper-next")
    assert page.locator("#stepper-position").inner_text() == "Frame 2 of 4"
    assert heatmap.get_attribute("src").endswith("/1/heatmap.png")
    page.wait_for_function(loaded, arg=heatmap.element_handle())
    assert heatmap.evaluate("img => img.naturalWidth") == width
    result = next(r for r in site["record"].results if r.quality == max(site["record"].qualities))
    assert (
        page.locator("#stepper-metrics [data-metric=psnr_y]").inner_text()
        == f"{result.per_frame[1].psnr_y:.2f}"
    )
    assert before == f"{result.per_frame[0].psnr_y:.2f}"
    page.click("#stepper-prev")
    assert page.locator("#stepper-position").inner_text() == "Frame 1 of 4"


def test_decoder_download_is_the_stored_artifact(site, experiment_page):
    record = site["record"]
    with experiment_page.expect_download() as download:
        experiment_page.get_by_role("link", name="Download decoder").click()
    saved = Path(download.value.path()).read_bytes()
    assert saved == site["artifacts"].get_bytes(f"decoders/{record.experiment_id}_decoder.py")


@pytest.mark.parametrize("path", ["/", "/blog"])
def test_pages_render_something(site, page, path):
    page.goto(site["base"] + path)
    assert not_blank(page.screenshot())


def test_experiment_page_renders_its_charts(experiment_page):
    assert experiment_page.locator("#charts .js-plotly-plot").count() == 4  # RD and per-frame
    assert not_blank(experiment_page.screenshot())


def traces(page, selector: str) -> list[dict]:
    """The traces Plotly drew in the chart at ``selector``: name, kind of line, x values."""
    return page.locator(selector).evaluate(
        "el => el.data.map(t => ({name: t.name, dash: t.line && t.line.dash, x: t.x}))"
    )


def overlaps(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def toolbar_clear_of_title(page, chart) -> None:
    """The chart's toolbar (shown on hover) does not cover its caption, the chart's title."""
    chart.hover()
    toolbar = chart.locator(".modebar")
    toolbar.wait_for(state="attached")
    caption = chart.locator("xpath=../figcaption")
    assert not overlaps(toolbar.bounding_box(), caption.bounding_box())


def test_compare_page_draws_both_curves_and_plays_both_videos_together(site, page):
    first, last = site["records"]
    page.goto(f"{site['base']}/compare?a={first.experiment_id}&b={last.experiment_id}")
    chart = "[data-compare-clip='0'][data-metric='psnr_y']"
    page.wait_for_selector(f"{chart}.js-plotly-plot")
    drawn = traces(page, chart)
    assert [t["name"][:5] for t in drawn] == [
        "A: " + first.program_name[:2],
        "B: " + last.program_name[:2],
        "x265 ",
    ]
    assert drawn[0]["x"] == sorted(r.kbps for r in first.results)
    assert drawn[1]["x"] == sorted(r.kbps for r in last.results)
    assert drawn[2]["dash"] == "dot"  # the baseline
    assert page.locator(chart).evaluate("el => el.layout.xaxis.type") == "log"
    assert page.locator(chart).evaluate("el => el.layout.shapes.length") == 1  # the BD range
    toolbar_clear_of_title(page, page.locator(chart))
    both = "['compare-source', 'compare-decoded'].map(id => document.getElementById(id))"
    page.wait_for_function(f"() => {both}.every(v => v.readyState >= 2)")
    assert page.evaluate(f"() => {both}.every(v => v.paused && v.currentTime === 0)")
    page.click("#compare-play")
    page.wait_for_function(f"() => {both}.every(v => !v.paused && v.currentTime > 0)")
    apart = page.evaluate(f"() => Math.abs({both}[0].currentTime - {both}[1].currentTime)")
    assert apart < 0.1  # one frame at 25 fps is 0.04 s: they run together
    page.click("#compare-play")
    page.wait_for_function(f"() => {both}.every(v => v.paused)")
    page.check("input[value=wipe]")
    assert page.locator(".compare-decoded").evaluate("e => getComputedStyle(e).clipPath") == (
        "inset(0px 0px 0px 50%)"
    )


def test_compare_with_a_bad_id_is_a_404_page(site, page):
    answer = page.goto(f"{site['base']}/compare?a=nope&b={site['record'].experiment_id}")
    assert answer.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert "no experiment 'nope'" in page.locator("#not-found").inner_text()


def test_choosing_two_experiments_from_the_list_opens_their_comparison(site, page):
    first, last = site["records"]
    page.goto(f"{site['base']}/blog")
    page.check(f"input[name=a][value='{first.experiment_id}']")
    page.check(f"input[name=b][value='{last.experiment_id}']")
    page.get_by_role("button", name="Compare B against A").click()
    page.wait_for_selector("[data-compare-clip].js-plotly-plot")
    assert f"a={first.experiment_id}" in page.url and f"b={last.experiment_id}" in page.url


def test_overview_draws_progress_and_frontier_with_titles_clear(site, page):
    page.goto(site["base"] + "/")
    page.wait_for_selector("#frontier .js-plotly-plot")
    frontier = page.locator("#frontier .chart").first
    assert frontier.evaluate("el => el.layout.xaxis.type") == "log"
    assert [t["name"] for t in traces(page, "#frontier .chart")][0] == "frontier (all experiments)"
    progress = page.locator("#progress [data-axis=iteration]")
    progress.locator(".main-svg").first.wait_for()
    names = [t["name"] for t in traces(page, "#progress [data-axis=iteration]")]
    assert any(n.endswith("best so far") for n in names) and "ok" in names
    for chart in (progress, page.locator("#progress [data-axis=minutes]"), frontier):
        toolbar_clear_of_title(page, chart)


def test_experiment_rd_plot_has_a_log_rate_axis_and_the_range_shaded(experiment_page):
    chart = experiment_page.locator("[data-rd-clip][data-metric=psnr_y]").first
    assert chart.evaluate("el => el.layout.xaxis.type") == "log"
    assert chart.evaluate("el => el.layout.shapes.map(s => s.type)") == ["rect"]
    toolbar_clear_of_title(experiment_page, chart)
