"""The dashboard over real HTTP: a tiny real campaign fills the store, uvicorn serves it."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from html import unescape
from pathlib import Path

import httpx
import pytest

from codeclab.record import ExperimentRecord
from codeclab.store import links
from tests.conftest import CODECLAB
from tests.weblab import EVIL, FILLER, client_for, fill_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, small_clip_path: Path):
    """A store filled by a real campaign (tests/weblab.py) and a live server over it."""
    filled = fill_lab(tmp_path_factory.mktemp("web") / "lab", small_clip_path)
    with client_for(filled["settings"]) as client:
        yield {**filled, "client": client}


def hrefs(html: str, text: str) -> list[str]:
    return [unescape(h) for h in re.findall(rf'<a href="([^"]+)">{re.escape(text)}</a>', html)]


def test_overview_shows_cards_and_latest_experiments(lab):
    page = lab["client"].get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    html = page.text
    assert "Experiments" in html and "Success rate" in html
    assert "Best holdout BD-rate vs x265" in html and "Best holdout BD-rate vs x264" in html
    for record in lab["records"]:
        assert f'/experiments/{record.experiment_id}"' in html
        assert record.program_name in html
    ok = [r for r in lab["records"] if r.headline()["bd_rate_x265"] is not None]
    if ok:
        assert re.search(r"\b(better|worse)\b", html)


def test_blog_posts_newest_first_with_video_and_downloads(lab):
    page = lab["client"].get("/blog")
    assert page.status_code == 200
    html = page.text
    positions = [html.index(f"Iteration {r.iteration}:") for r in lab["records"]]
    assert positions == sorted(positions, reverse=True), "newest first"
    assert "<video controls" in html
    assert "links expire" in html
    assert hrefs(html, "Download decoder")
    older = lab["client"].get("/blog?page=2")
    last = f"fill{FILLER - 1:04d}"
    assert older.status_code == 200 and last not in html and last in older.text
    assert older.text.count('<article class="post">') == 3 + FILLER - 10
    assert html.count('<article class="post">') == 10
    assert lab["client"].get("/blog?page=0").status_code == 422


def test_experiment_page_shows_the_record(lab):
    record = lab["records"][-1]
    page = lab["client"].get(f"/experiments/{record.experiment_id}")
    assert page.status_code == 200
    html = page.text
    for heading in ("Clips", "Results", "Baselines", "BD-rate", "Target check", "Phases"):
        assert f"<h2>{heading}</h2>" in html
    assert record.clips[0].name in html
    assert "x265" in html and '<iframe class="program"' in html
    program = lab["client"].get(f"/experiments/{record.experiment_id}/program").text
    assert '<pre class="source">' in program
    for phase in record.phases:
        assert f"<td>{phase.name}</td>" in html
    assert lab["client"].get("/experiments/no-such-experiment").status_code == 404


def test_text_from_programs_and_models_is_escaped(lab):
    client = lab["client"]
    evil = lab["evil"]
    pages = ("/", "/blog", f"/experiments/{evil.experiment_id}")
    for path in (*pages, f"/experiments/{evil.experiment_id}/program"):
        html = client.get(path).text
        assert EVIL not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path


def test_decoder_download_is_the_stored_artifact(lab):
    client = lab["client"]
    record = lab["records"][-1]
    html = client.get(f"/experiments/{record.experiment_id}").text
    (link,) = hrefs(html, "Download decoder")
    response = client.get(link)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/x-python")
    stored = lab["artifacts"].get_bytes(f"decoders/{record.experiment_id}_decoder.py")
    assert response.content == stored
    (video,) = hrefs(html, "Reconstructed video")
    answer = client.get(video)
    assert answer.status_code == 200 and answer.headers["content-type"] == "video/mp4"
    (package,) = hrefs(html, "Download package")
    answer = client.get(package)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"


def test_tampered_expired_and_escaping_links_are_refused(lab):
    client = lab["client"]
    artifacts = lab["artifacts"]
    record = lab["records"][-1]
    key = f"decoders/{record.experiment_id}_decoder.py"
    good = artifacts.link(key)
    assert client.get(good).status_code == 200
    sig = good.rsplit("sig=", 1)[1]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert client.get(good.rsplit("sig=", 1)[0] + "sig=" + flipped).status_code == 403
    other = f"reconstructed/{record.experiment_id}.mp4"
    assert client.get(good.replace(key, other, 1)).status_code == 403  # another key
    expires = int(good.split("expires=")[1].split("&")[0])
    assert (
        client.get(good.replace(f"expires={expires}", f"expires={expires + 1}")).status_code == 403
    )
    secret = artifacts._secret
    past = int(time.time()) - 10
    expired = f"/artifacts/{key}?expires={past}&sig={links.sign(key, past, secret)}"
    assert client.get(expired).status_code == 403
    assert client.get(f"/artifacts/{key}").status_code == 403
    escaping = "../link-secret"
    response = client.get(f"/artifacts/decoders/%2E%2E/%2E%2E/link-secret?expires={past}&sig=x")
    assert response.status_code in (403, 404)
    assert client.get(f"/artifacts/{escaping}?expires=9999999999&sig=x").status_code in (403, 404)


def test_api_lists_paginates_filters_and_returns_records(lab):
    client = lab["client"]
    everything = client.get("/api/experiments").json()
    total = 3 + FILLER
    assert everything["total"] == total and everything["page"] == 1 and everything["pages"] == 2
    assert len(everything["experiments"]) == 10
    assert [e["experiment_id"] for e in everything["experiments"]][0] == lab["evil"].experiment_id
    failed = client.get("/api/experiments", params={"status": "failed"}).json()
    assert [e["experiment_id"] for e in failed["experiments"]] == [lab["evil"].experiment_id]
    ok = client.get("/api/experiments", params={"status": "ok"}).json()
    real_ok = sum(r.status == "ok" for r in lab["records"])
    filler_ok = FILLER if lab["records"][0].status == "ok" else 0
    assert ok["total"] == real_ok + filler_ok
    assert {e["status"] for e in ok["experiments"]} <= {"ok"}
    second = client.get("/api/experiments", params={"page": 2}).json()["experiments"]
    assert len(second) == total - 10
    ids = [e["experiment_id"] for e in everything["experiments"] + second]
    assert len(set(ids)) == total and ids[-1] == f"fill{FILLER - 1:04d}-0000-0000-0000-000000000000"
    assert client.get("/api/experiments", params={"page": 3}).json()["experiments"] == []
    campaign = lab["records"][0].campaign_id
    mine = client.get("/api/experiments", params={"campaign": campaign}).json()
    assert {e["experiment_id"] for e in mine["experiments"]} == {
        *(r.experiment_id for r in lab["records"]),
        lab["evil"].experiment_id,
    }
    record = lab["records"][0]
    answer = client.get(f"/api/experiments/{record.experiment_id}")
    assert answer.status_code == 200
    served = ExperimentRecord.model_validate(answer.json())
    assert served.model_dump(exclude={"created_at"}) == record.model_dump(exclude={"created_at"})
    assert client.get("/api/experiments/nope").status_code == 404
    assert client.get("/docs").status_code == 200
    assert "/api/experiments" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("workers", [1, 2])
def test_codeclab_serve_runs_the_dashboard(home, tmp_path, workers):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [*CODECLAB, "serve", "--port", str(port), "--workers", str(workers)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/experiments", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["total"] == 0
        assert "No experiments yet" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        server.terminate()
        server.wait(timeout=10)
