"""Transcodes on demand: playable files, cached in the store; and the url command."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from tests.conftest import cli

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, small_clip_path):
    cwd = tmp_path_factory.mktemp("transcode")
    env = {**__import__("os").environ, "CODECLAB_HOME": str(cwd / "lab")}
    args = ["--clip", str(small_clip_path), "--qualities", "30,90", "--baselines", "none"]
    done = cli("evaluate", str(PROGRAMS / "quantise_zlib.py"), *args, "--json", cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), cwd, env


@pytest.mark.parametrize(("fmt", "codec"), [("webm", "vp9"), ("mp4", "h264"), ("y4m", "rawvideo")])
def test_transcodes_are_playable_and_cached(evaluated, fmt, codec):
    record, cwd, env = evaluated
    done = cli("transcode", record["experiment_id"], "--format", fmt, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    location = Path(done.stdout.strip())
    assert (
        location.name == f"{record['experiment_id']}.{fmt}" and location.parent.name == "transcodes"
    )
    with av.open(str(location)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == codec
        frames = list(container.decode(stream))
    assert len(frames) == record["results"][0]["frames"] == 4
    assert (frames[0].width, frames[0].height) == (96, 64)
    before = location.stat().st_mtime_ns
    again = cli("transcode", record["experiment_id"][:8], "--format", fmt, cwd=cwd, env=env)
    assert again.stdout.strip() == str(location) and location.stat().st_mtime_ns == before


def test_lossless_y4m_is_the_lab_decode(evaluated):
    from codeclab.store.package import y4m_sha256

    record, cwd, env = evaluated
    done = cli("transcode", record["experiment_id"], "--format", "y4m", cwd=cwd, env=env)
    top = max(record["results"], key=lambda r: r["quality"])
    assert y4m_sha256(done.stdout.strip()) == top["decoded_sha256"]


def test_url_command(evaluated):
    record, cwd, env = evaluated
    rid = record["experiment_id"]
    for artifact in ("reconstructed", "decoder", "package", "program", "cars_96x64_q30"):
        done = cli("url", rid, artifact, "--ttl", "1h", cwd=cwd, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("/artifacts/") and "&sig=" in done.stdout
    bad = cli("url", rid, "nothing", cwd=cwd, env=env)
    assert bad.returncode == 2 and "unknown artifact" in bad.stderr
    assert cli("transcode", rid, "--format", "avi", cwd=cwd, env=env).returncode == 2
