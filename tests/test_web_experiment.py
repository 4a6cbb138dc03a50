"""The experiment page and its routes over real HTTP: charts' JSON, pictures, source video,
program, diff and lineage, on a store filled by a real campaign (tests/weblab.py)."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import av
import numpy as np
import pytest

from codeclab.cli import open_stores
from codeclab.frames import Frame
from codeclab.media import frames_sha256, load_clip, write_y4m
from codeclab.record import ExperimentRecord, HoldoutGate, RungResult
from codeclab.sandbox.isolate import Limits
from codeclab.store.publish import decode_published
from codeclab.store.transcode import transcode
from codeclab.web.pictures import HEAT_MAX, LUT, rgb
from tests.weblab import EVIL, client_for, fill_lab

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def experiment_id(name: str) -> str:
    return f"{name:0<8}-0000-0000-0000-000000000000"


def pixels(data: bytes) -> np.ndarray:
    """A PNG's RGB pixels, decoded by FFmpeg."""
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def variant(record: ExperimentRecord, name: str, **update) -> ExperimentRecord:
    return record.model_copy(
        update={
            "experiment_id": experiment_id(name),
            "campaign_id": None,
            "created_at": record.created_at - timedelta(hours=1),
            **update,
        },
        deep=True,
    )


def on_clip(record: ExperimentRecord, name: str, path: Path, sha256: str) -> ExperimentRecord:
    """``record`` as if its clip were the file ``path`` with frames hashing to ``sha256``."""
    clip = record.clips[0].model_copy(update={"path": str(path), "sha256": sha256})
    results = [r.model_copy(update={"clip_sha256": sha256}) for r in record.results]
    return variant(record, name, clips=[clip], results=results, baselines={})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, small_clip_path: Path):
    """A real campaign's store plus: a child and a grandchild program (one with a script tag
    added), an experiment whose clip changed after it ran, one whose clip is gone, and one
    without results."""
    root = tmp_path_factory.mktemp("web-experiment")
    filled = fill_lab(root / "lab", small_clip_path)
    first, last = filled["records"]
    store, _ = open_stores(filled["settings"])
    base = store.source(last.program_sha256)
    child_source = f"{base}\n# {EVIL}\n"
    child = variant(
        last,
        "child",
        program_sha256=hashlib.sha256(child_source.encode()).hexdigest(),
        parent_sha256=first.program_sha256,
        program_name=f"child {EVIL}",
    )
    store.save(child, child_source)
    grand_source = f"{child_source}# one more generation\n"
    grandchild = variant(
        last,
        "grand",
        program_sha256=hashlib.sha256(grand_source.encode()).hexdigest(),
        parent_sha256=child.program_sha256,
    )
    store.save(grandchild, grand_source)
    # a clip that changes after the experiment: its recorded hash is of the original frames
    frames = load_clip(small_clip_path).frames[::-1]
    moved = write_y4m(root / "reversed.y4m", frames, last.clips[0].fps)
    changed = on_clip(last, "changed", moved, frames_sha256(frames))
    store.save(changed, base)
    frames[0] = (np.clip(frames[0][0].astype(int) + 3, 0, 255).astype(np.uint8), *frames[0][1:])
    write_y4m(moved, frames, last.clips[0].fps)
    gone = on_clip(last, "gone", root / "no-such-clip.y4m", "0" * 64)
    store.save(gone, base)
    empty = variant(last, "empty", status="failed", results=[], error="nothing decoded")
    store.save(empty, base)
    gate = HoldoutGate(
        bd_rate=4.25, best_bd_rate=1.5, margin=1.0, passed=False, reason="beyond <1> point"
    )
    stopped = variant(last, "stopped", stage="train", gate=gate)
    store.save(stopped, base)
    with client_for(filled["settings"]) as client:
        yield {
            **filled,
            "client": client,
            "record": last,
            "child": child,
            "grandchild": grandchild,
            "changed": changed,
            "gone": gone,
            "empty": empty,
            "stopped": stopped,
        }


def lab_decode(lab, result: RungResult) -> list[Frame]:
    """The rung decoded independently of the dashboard: by the published decoder file."""
    record, artifacts = lab["record"], lab["artifacts"]
    decoder = artifacts.get_bytes(f"decoders/{record.experiment_id}_decoder.py").decode()
    bitstream = artifacts.get_bytes(
        f"bitstreams/{record.experiment_id}/{result.clip}_q{result.quality}.bin"
    )
    frames = decode_published(decoder, bitstream, Limits.for_clip(96, 64, result.frames))
    assert frames_sha256(frames) == result.decoded_sha256
    return frames


def frame_url(record: ExperimentRecord, clip: str, quality: int, index: int, kind: str) -> str:
    return f"/experiments/{record.experiment_id}/frames/{clip}/{quality}/{index}/{kind}.png"


def test_rd_api_has_this_experiment_and_the_baselines_per_clip(lab):
    record = lab["record"]
    answer = lab["client"].get(f"/api/experiments/{record.experiment_id}/rd")
    assert answer.status_code == 200
    (clip,) = answer.json()["clips"]
    assert clip["clip"] == record.clips[0].name and clip["clip_sha256"] == record.clips[0].sha256
    mine, *baselines = clip["series"]
    assert mine["kind"] == "experiment"
    assert sorted((p["quality"], p["kbps"], p["psnr_y"]) for p in mine["points"]) == sorted(
        (r.quality, r.kbps, r.psnr_y) for r in record.results
    )
    (curve,) = record.baselines["x265"]
    (x265,) = baselines
    assert x265["kind"] == "baseline" and x265["name"].startswith("x265")
    assert x265["settings"] == curve.settings
    assert [(p["crf"], p["kbps"]) for p in x265["points"]] == sorted(
        ((b.crf, b.kbps) for b in curve.rungs), key=lambda point: point[1]
    )
    assert lab["client"].get("/api/experiments/nope/rd").status_code == 404


def test_frames_api_has_every_frame_of_every_rung(lab):
    record = lab["record"]
    answer = lab["client"].get(f"/api/experiments/{record.experiment_id}/frames").json()
    assert [(r["clip"], r["quality"]) for r in answer["rungs"]] == sorted(
        (r.clip, r.quality) for r in record.results
    )
    for rung in answer["rungs"]:
        result = next(r for r in record.results if r.quality == rung["quality"])
        assert rung["count"] == result.frames == len(rung["frames"])
        assert rung["decoded_sha256"] == result.decoded_sha256
        assert [f["psnr_y"] for f in rung["frames"]] == [f.psnr_y for f in result.per_frame]
        assert [f["index"] for f in rung["frames"]] == list(range(result.frames))
        url = rung["images"].format(index=1, kind="heatmap")
        assert url == frame_url(record, result.clip, result.quality, 1, "heatmap")
    empty = lab["client"].get(f"/api/experiments/{lab['empty'].experiment_id}/frames").json()
    assert empty["rungs"] == []
    assert lab["client"].get("/api/experiments/nope/frames").status_code == 404


def test_new_routes_are_documented_in_openapi(lab):
    paths = lab["client"].get("/openapi.json").json()["paths"]
    for path in (
        "/api/experiments/{experiment_id}/rd",
        "/api/experiments/{experiment_id}/frames",
        "/experiments/{experiment_id}/frames/{clip}/{quality}/{index}/{kind}.png",
        "/experiments/{experiment_id}/source/{clip}.mp4",
    ):
        assert path in paths, path
    schemas = lab["client"].get("/openapi.json").json()["components"]["schemas"]
    assert {"RdCurves", "FrameSeries"} <= set(schemas)


def test_source_decoded_and_heatmap_pictures_are_the_scored_ones(lab):
    record, client = lab["record"], lab["client"]
    source = load_clip(record.clips[0].path).frames
    for result in record.results:
        decoded = lab_decode(lab, result)
        for index in (0, result.frames - 1):
            shown = {}
            for kind in ("source", "decoded", "heatmap"):
                answer = client.get(frame_url(record, result.clip, result.quality, index, kind))
                assert answer.status_code == 200, answer.text
                assert answer.headers["content-type"] == "image/png"
                shown[kind] = pixels(answer.content)
                assert shown[kind].shape == (result.height, result.width, 3)
            assert np.array_equal(shown["source"], rgb(source[index]))
            assert np.array_equal(shown["decoded"], rgb(decoded[index]))
            difference = np.abs(source[index][0].astype(int) - decoded[index][0].astype(int))
            assert np.array_equal(shown["heatmap"], LUT[difference])
    assert LUT[0].tolist() == [0, 0, 4] and LUT[HEAT_MAX].tolist() == LUT[255].tolist()


def test_unknown_rungs_frames_and_kinds_are_404(lab):
    record, client = lab["record"], lab["client"]
    result = record.results[0]
    clip, quality = result.clip, result.quality
    for url in (
        frame_url(record, clip, 55, 0, "source"),
        frame_url(record, "other", quality, 0, "source"),
        frame_url(record, clip, quality, result.frames, "decoded"),
        frame_url(record, clip, quality, -1, "decoded"),
        frame_url(record, clip, quality, 0, "bitstream"),
        f"/experiments/nope/frames/{clip}/{quality}/0/source.png",
        f"/experiments/{record.experiment_id}/frames/..%2F..%2Fetc/{quality}/0/source.png",
        f"/experiments/{record.experiment_id}/source/other.mp4",
    ):
        assert client.get(url).status_code == 404, url
    not_a_number = f"/experiments/{record.experiment_id}/frames/{clip}/high/0/source.png"
    assert client.get(not_a_number).status_code == 422


def test_an_altered_decode_cache_is_refused_then_made_again(lab):
    record, client = lab["record"], lab["client"]
    result = record.results[-1]
    url = frame_url(record, result.clip, result.quality, 0, "decoded")
    assert client.get(url).status_code == 200
    cached = lab["settings"].cache_dir / "web" / "decoded" / f"{result.decoded_sha256}.y4m"
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF
    cached.write_bytes(bytes(data))
    refused = client.get(url)
    assert refused.status_code == 409 and "no longer matches" in refused.json()["detail"]
    assert client.get(url).status_code == 200  # decoded again in the sandbox, checked again
    assert frames_sha256(load_clip(cached).frames) == result.decoded_sha256


def test_source_video_is_made_from_the_verified_clip(lab):
    record, client = lab["record"], lab["client"]
    clip = record.clips[0]
    answer = client.get(f"/experiments/{record.experiment_id}/source/{clip.name}.mp4")
    assert answer.status_code == 307
    assert answer.headers["location"].startswith(f"/artifacts/sources/{clip.sha256}.mp4?")
    video = client.get(answer.headers["location"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content == lab["artifacts"].get_bytes(f"sources/{clip.sha256}.mp4")
    with av.open(io.BytesIO(video.content)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        frames = list(container.decode(video=0))
    assert len(frames) == clip.frames
    assert (frames[0].width, frames[0].height) == (clip.width, clip.height)


def test_a_changed_source_clip_is_refused_everywhere(lab):
    record, client = lab["changed"], lab["client"]
    clip, result = record.clips[0], record.results[0]
    answer = client.get(f"/experiments/{record.experiment_id}/source/{clip.name}.mp4")
    assert answer.status_code == 409
    assert "has changed" in answer.json()["detail"]
    for kind in ("source", "heatmap"):
        refused = client.get(frame_url(record, result.clip, result.quality, 0, kind))
        assert refused.status_code == 409, kind
    assert (
        client.get(frame_url(record, result.clip, result.quality, 0, "decoded")).status_code == 200
    )
    html = client.get(f"/experiments/{record.experiment_id}").text
    assert "has changed" in html and "will not show other pictures as the source" in html
    assert 'id="compare-source"' not in html
    assert not (lab["settings"].cache_dir / "web" / "sources" / f"{clip.sha256}.y4m").exists()


def test_a_gone_source_clip_is_said_on_the_page(lab):
    record, client = lab["gone"], lab["client"]
    clip = record.clips[0]
    assert (
        client.get(f"/experiments/{record.experiment_id}/source/{clip.name}.mp4").status_code == 410
    )
    html = unescape(client.get(f"/experiments/{record.experiment_id}").text)
    assert f"the source clip {clip.path} is gone" in html
    assert 'id="compare-source"' not in html


def test_page_has_charts_player_stepper_and_timeline(lab):
    record, client = lab["record"], lab["client"]
    answer = client.get(f"/experiments/{record.experiment_id}")
    assert answer.status_code == 200
    html = answer.text
    for heading in (
        "RD curves",
        "Per-frame quality",
        "Compare with the source",
        "Frame by frame",
        "Phases",
        "Downloads",
        "Program source",
        "Version history",
    ):
        assert f"<h2>{heading}</h2>" in html, heading
    assert '<script src="/vendor/plotly.min.js" defer></script>' in html
    assert re.findall(r'<script src="([^"]+)"', html) == [
        "/vendor/plotly.min.js",
        "/static/plots.js",
        "/static/charts.js",
        "/static/compare.js",
        "/static/stepper.js",
    ]
    clip = record.clips[0]
    links = unescape(html)
    assert f'src="/experiments/{record.experiment_id}/source/{clip.name}.mp4"' in links
    assert (
        f'id="compare-decoded" src="/artifacts/reconstructed/{record.experiment_id}.mp4?' in links
    )
    top = max(record.qualities)
    assert f"decode of {clip.name} at quality {top}" in html and "H.264 (CRF 12)" in html
    assert f'src="{frame_url(record, clip.name, top, 0, "heatmap")}"' in html
    assert html.count('class="phase status-bg-') == len(record.phases)
    assert 'type="range" id="wipe"' in html
    script = client.get("/vendor/plotly.min.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert len(script.content) > 1_000_000
    for name in ("charts.js", "compare.js", "stepper.js"):
        assert client.get(f"/static/{name}").status_code == 200, name


def test_program_is_highlighted_and_escaped(lab):
    client, evil = lab["client"], lab["evil"]
    page = client.get(f"/experiments/{evil.experiment_id}").text
    framed = f"/experiments/{evil.experiment_id}/program"
    assert f'<iframe class="program" src="{framed}" loading="lazy"' in page
    html = client.get(framed).text
    assert EVIL not in html and ESCAPED in html
    assert client.get("/experiments/nope/program").status_code == 404
    program = html[html.index('<pre class="source">') :]
    assert '<span class="k">def</span>' in program
    assert f'<span class="c1"># {ESCAPED}</span>' in program


def test_diff_against_the_parent_is_escaped(lab):
    client, child, first = lab["client"], lab["child"], lab["records"][0]
    html = client.get(f"/experiments/{child.experiment_id}/program").text
    assert EVIL not in html
    diff = html[html.index('<pre class="source diff">') :]
    diff = diff[: diff.index("</pre>")]
    assert f"parent {first.program_sha256[:12]}" in diff
    assert f'<span class="gi">+# {ESCAPED}' in diff
    record_html = client.get(f"/experiments/{first.experiment_id}/program").text
    assert "No parent: this program did not come from another one." in record_html


def test_version_history_walks_the_lineage(lab):
    client, grandchild, child = lab["client"], lab["grandchild"], lab["child"]
    html = client.get(f"/experiments/{grandchild.experiment_id}").text
    history = html[html.index("<h2>Version history</h2>") :]
    rows = history.split("<tr>")[2:]
    assert [row.split("<code>")[1][:16] for row in rows] == [
        grandchild.program_sha256[:16],
        child.program_sha256[:16],
        lab["records"][0].program_sha256[:16],
    ]
    assert "this program" in rows[0] and "parent" in rows[1] and "ancestor 2" in rows[2]
    assert f'href="/experiments/{child.experiment_id}"' in rows[1]
    assert f'href="/experiments/{lab["records"][0].experiment_id}"' in rows[2]
    assert EVIL not in history and ESCAPED in rows[1]


def test_downloads_list_the_transcodes_that_exist(lab):
    record, client = lab["record"], lab["client"]
    label = "Transcode: Y4M, lossless"
    assert label not in client.get(f"/experiments/{record.experiment_id}").text
    transcode(record, lab["artifacts"], "y4m")
    html = client.get(f"/experiments/{record.experiment_id}").text
    (link,) = [unescape(h) for h in re.findall(rf'<a href="([^"]+)">{label}</a>', html)]
    answer = client.get(link)
    assert answer.status_code == 200
    assert answer.content == lab["artifacts"].get_bytes(f"transcodes/{record.experiment_id}.y4m")


def test_an_experiment_without_results_says_so(lab):
    html = lab["client"].get(f"/experiments/{lab['empty'].experiment_id}").text
    assert "No results: nothing to plot." in html
    assert "No results: nothing to compare." in html
    assert "No results: no frames to show." in html
    assert "plotly" not in html


def test_the_page_says_where_the_cascade_stopped_it(lab):
    html = lab["client"].get(f"/experiments/{lab['stopped'].experiment_id}").text
    assert "stopped after the full train set</strong>: its holdout clips were not encoded" in html
    assert "Holdout gate: beyond &lt;1&gt; point." in html  # the reason, escaped
    plain = lab["client"].get(f"/experiments/{lab['record'].experiment_id}").text
    assert "Evaluation cascade" not in plain  # a record without a cascade says nothing of it
