"""The dashboard's actions over real HTTP: refused without the admin token, and what each
does on a store a real campaign filled (regenerate, transcode, start and stop a campaign)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import av
import httpx
import pytest

from codeclab.campaign import directory_lock
from codeclab.config import Settings
from codeclab.store.factory import open_experiment_store
from codeclab.web.campaigns import lock_holder
from tests.weblab import client_for, fill_lab, serve

TOKEN = "admin-token-never-shown-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACTIONS = (
    ("/api/experiments/{id}/regenerate", None),
    ("/api/experiments/{id}/transcode", {"formats": ["y4m"]}),
    ("/api/campaigns", {"iterations": 1}),
    ("/api/campaigns/stop", None),
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, small_clip_path: Path):
    filled = fill_lab(
        tmp_path_factory.mktemp("actions") / "lab", small_clip_path, admin_token=TOKEN
    )
    with client_for(filled["settings"]) as client:
        yield {**filled, "client": client}


def post(client: httpx.Client, path: str, body: dict | None = None, **headers: str):
    return client.post(path, json=body, headers=headers)


def test_actions_are_refused_when_no_token_is_configured(lab):
    open_settings = lab["settings"].model_copy(update={"admin_token": None})
    record = lab["records"][-1]
    with serve(open_settings) as base, httpx.Client(base_url=base, timeout=30) as client:
        for path, body in ACTIONS:
            answer = post(client, path.format(id=record.experiment_id), body, **AUTH)
            assert answer.status_code == 403, path
            assert "no admin token is configured" in answer.json()["detail"]
        assert client.get("/api/campaigns/current").status_code == 200  # reading is not acting


def test_a_missing_or_wrong_token_is_401_and_never_echoed(lab):
    client = lab["client"]
    record = lab["records"][-1]
    wrong = (
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    )
    for path, body in ACTIONS:
        for headers in wrong:
            answer = post(client, path.format(id=record.experiment_id), body, **headers)
            assert answer.status_code == 401, (path, headers)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in answer.text and "Bearer <admin token>" in answer.json()["detail"]
    openapi = client.get("/openapi.json").text
    assert TOKEN not in openapi and "HTTPBearer" in openapi


def regenerate(lab, record_id: str) -> dict:
    answer = post(lab["client"], f"/api/experiments/{record_id}/regenerate", **AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_regenerate_an_intact_experiment_finds_every_rung_matching(lab):
    record = lab["records"][-1]
    found = regenerate(lab, record.experiment_id)
    assert [(r["clip"], r["quality"]) for r in found["rungs"]] == [
        (r.clip, r.quality) for r in record.results
    ]
    assert {r["found"] for r in found["rungs"]} == {"match"}
    assert [r["decoded_sha256"] for r in found["rungs"]] == [
        r.decoded_sha256 for r in record.results
    ]
    assert found["recreated"] == []
    assert found["notes"] == [
        f"reconstructed/{record.experiment_id}.mp4 is in the store: kept as it is"
    ]


def test_regenerate_recreates_a_missing_reconstructed_video(lab):
    record = lab["records"][-1]
    video = lab["artifacts"].path(f"reconstructed/{record.experiment_id}.mp4")
    video.unlink()
    found = regenerate(lab, record.experiment_id)
    assert found["recreated"] == [f"reconstructed/{record.experiment_id}.mp4"]
    assert {r["found"] for r in found["rungs"]} == {"match"}
    assert video.is_file()
    with av.open(str(video)) as container:
        frames = list(container.decode(video=0))
    clip = record.clips[0]
    assert len(frames) == clip.frames and (frames[0].width, frames[0].height) == (
        clip.width,
        clip.height,
    )
    page = lab["client"].get(f"/experiments/{record.experiment_id}").text
    assert "Reconstructed video" in page


def test_a_corrupted_bitstream_is_reported_and_nothing_is_overwritten(lab):
    record = lab["records"][-1]
    artifacts = lab["artifacts"]
    top = max(
        (r for r in record.results if r.clip_sha256 == record.clips[0].sha256),
        key=lambda r: r.quality,
    )
    bitstream = artifacts.path(f"bitstreams/{record.experiment_id}/{top.clip}_q{top.quality}.bin")
    video = artifacts.path(f"reconstructed/{record.experiment_id}.mp4")
    original, original_video = bitstream.read_bytes(), video.read_bytes()
    corrupted = original[: len(original) // 2] + bytes(
        b ^ 0x5A for b in original[len(original) // 2 :]
    )
    try:
        bitstream.write_bytes(corrupted)
        video.unlink()  # missing, and its rung no longer decodes right: not re-created
        found = regenerate(lab, record.experiment_id)
        by_rung = {(r["clip"], r["quality"]): r for r in found["rungs"]}
        bad = by_rung.pop((top.clip, top.quality))
        assert bad["found"] in ("mismatch", "decode failed")
        assert bad["decoded_sha256"] != top.decoded_sha256
        assert {r["found"] for r in by_rung.values()} == {"match"}
        assert found["recreated"] == [] and not video.exists()
        assert "did not decode to the lab's pictures" in found["notes"][0]
        assert bitstream.read_bytes() == corrupted  # reported, never "repaired"
    finally:
        bitstream.write_bytes(original)
        video.write_bytes(original_video)


def test_regenerate_needs_a_published_experiment(lab):
    client = lab["client"]
    answer = post(client, f"/api/experiments/{lab['evil'].experiment_id}/regenerate", **AUTH)
    assert answer.status_code == 409 and "no published decoder" in answer.json()["detail"]
    assert post(client, "/api/experiments/nope/regenerate", **AUTH).status_code == 404


def test_transcode_returns_links_to_the_files(lab):
    client = lab["client"]
    record = lab["records"][-1]
    path = f"/api/experiments/{record.experiment_id}/transcode"
    answer = post(client, path, {"formats": ["y4m", "webm"]}, **AUTH)
    assert answer.status_code == 200, answer.text
    made = answer.json()
    assert [t["format"] for t in made["transcodes"]] == ["y4m", "webm"]
    y4m = client.get(made["transcodes"][0]["link"])
    assert y4m.status_code == 200 and y4m.content.startswith(b"YUV4MPEG2 W96 H64")
    webm = client.get(made["transcodes"][1]["link"])
    assert webm.status_code == 200 and webm.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML
    assert made["expires"] > "2000"
    assert post(client, path, {"formats": ["gif"]}, **AUTH).status_code == 422
    assert post(client, path, {"formats": []}, **AUTH).status_code == 422
    evil = f"/api/experiments/{lab['evil'].experiment_id}/transcode"
    assert post(client, evil, {"formats": ["y4m"]}, **AUTH).status_code == 409


def wait_for(condition, seconds: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_start_stop_and_resume_a_tiny_campaign(tmp_path: Path, small_clip_path: Path):
    settings = Settings(
        clips=[small_clip_path],
        qualities=[30, 70],
        baselines=["x265"],
        home=tmp_path / "lab",
        admin_token=TOKEN,
    )
    log = tmp_path / "lab" / "dashboard-campaign.log"
    with client_for(settings) as client:
        try:
            assert client.get("/api/campaigns/current").json()["running"] is False
            for bad in ({"iterations": 0}, {"iterations": "many"}, {"resume": "perhaps"}):
                assert post(client, "/api/campaigns", bad, **AUTH).status_code == 422
            assert post(client, "/api/campaigns/stop", **AUTH).status_code == 409  # idle

            started = post(client, "/api/campaigns", {"iterations": 50}, **AUTH)
            assert started.status_code == 202, started.text
            state = started.json()
            assert state["running"] and state["started_by"] == "dashboard"
            assert state["iterations"] == 50 and TOKEN not in started.text
            pid = state["pid"]
            # empty while the process is still in exec on a loaded machine: read it once set
            environ_of = Path(f"/proc/{pid}/environ")
            wait_for(lambda: environ_of.read_bytes(), what="the campaign's environment")
            environ = environ_of.read_bytes()
            assert TOKEN.encode() not in environ  # nor the admin token's variable
            assert f"CODECLAB_HOME={settings.home.resolve()}".encode() in environ.split(b"\0")
            again = post(client, "/api/campaigns", {"iterations": 1}, **AUTH)
            assert again.status_code == 409 and "already running" in again.json()["detail"]

            store = open_experiment_store(settings.db_url)
            wait_for(lambda: lock_holder(settings.home) == pid, what="the campaign's lock")
            wait_for(lambda: store.latest_campaign() is not None, what="the campaign to start")
            campaign = store.latest_campaign().id

            stopped = post(client, "/api/campaigns/stop", **AUTH)
            assert stopped.status_code == 200, stopped.text
            assert stopped.json()["running"] is False and stopped.json()["exit_code"] != 0
            assert lock_holder(settings.home) is None
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
            with directory_lock(settings.home):  # released: a terminal could take it now
                pass
            assert client.get("/api/campaigns/current").json()["running"] is False

            resumed = post(client, "/api/campaigns", {"resume": True}, **AUTH)
            assert resumed.status_code == 202 and resumed.json()["resume"] is True
            wait_for(lambda: f"resuming campaign {campaign}" in log.read_text(), what="resume")
            assert post(client, "/api/campaigns/stop", **AUTH).json()["running"] is False
            assert TOKEN not in log.read_text()
        finally:
            if client.get("/api/campaigns/current").json()["running"]:
                post(client, "/api/campaigns/stop", **AUTH)
