"""Publishing: the policy's decision, the decoder checked alone, the download package."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from codeclab import runner
from codeclab.config import load_settings
from codeclab.design.evolve import program_sha256
from codeclab.media import load_clip
from codeclab.runner import Job, evaluate
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore
from codeclab.store.publish import by_program_key, decoder_file, decoder_history

PROGRAMS = Path(__file__).parent / "programs"
SOURCE = (PROGRAMS / "quantise_zlib.py").read_text()
# a program whose ladder reaches x264's standard range (quantise_zlib stays above 37 dB)
SEED = (Path(__file__).parents[1] / "src/codeclab/programs/intra_dct.py").read_text()


def run(clip: Path, source: str = SOURCE, **settings):
    settings = load_settings(clips=[clip], **{"qualities": [30, 90], "baselines": [], **settings})
    store = ExperimentStore(settings.db_url)
    artifacts = LocalArtifactStore(settings.artifacts_dir)
    job = Job(source, "quantise_zlib", [load_clip(clip)], settings, store, artifacts)
    return evaluate(job), store, artifacts


def policy_note(record):
    return next(p for p in record.phases if p.name == "publish-policy")


def test_package_verifies_on_a_fresh_unzip_and_catches_a_flipped_byte(home, small_clip_path):
    record, store, artifacts = run(small_clip_path)
    assert record.status == "ok", record.error
    assert policy_note(record).status == "ok" and "'all'" in policy_note(record).error
    assert record.artifacts.package == str(artifacts.path(f"packages/{record.experiment_id}.zip"))
    # the decoder is findable by program hash too, with the same bytes
    by_program = artifacts.get_bytes(by_program_key(record.program_sha256))
    assert by_program == Path(record.artifacts.decoder).read_bytes()
    unpacked = home.parent / "unpacked"
    with zipfile.ZipFile(record.artifacts.package) as archive:
        names = set(archive.namelist())
        archive.extractall(unpacked)
    assert {"README.md", "verify.py", "manifest.json"} <= names
    assert f"{record.experiment_id}_decoder.py" in names
    assert {f"bitstreams/{r.clip}_q{r.quality}.bin" for r in record.results} <= names

    def verify():
        return subprocess.run(
            [sys.executable, "-I", "verify.py"],
            cwd=unpacked,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = verify()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 of 2 bitstreams verified" in done.stdout
    manifest = json.loads((unpacked / "manifest.json").read_text())
    target = unpacked / manifest["bitstreams"][0]["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    done = verify()
    assert done.returncode == 1
    assert "FAIL" in done.stdout and "1 of 2 bitstreams verified" in done.stdout


def test_a_decoder_that_does_not_reproduce_the_lab_fails(home, small_clip_path, monkeypatch):
    altered = SOURCE.replace("codes * step + step // 2", "codes * step + step // 2 + 1")
    assert altered != SOURCE

    def wrong_decoder(source, record):
        return decoder_file(
            altered, record.model_copy(update={"program_sha256": program_sha256(altered)})
        )

    monkeypatch.setattr(runner, "decoder_file", wrong_decoder)
    record, _, artifacts = run(small_clip_path)
    # every rung's second decode runs the decoder file, so this fails before any publishing
    assert record.status == "failed" and record.phase == "execution"
    assert "two decodes of the same bitstream differ at frame 0" in record.error
    assert "(the second by the published decoder file" in record.error
    assert record.artifacts.decoder is None and record.artifacts.package is None
    assert not artifacts.exists(f"decoders/{record.experiment_id}_decoder.py")


def test_policy_target_skips_without_a_target_check(home, small_clip_path):
    # 'target' with no x265 baseline: no target check, not published, and the record says why
    record, store, _ = run(small_clip_path, publish="target")
    assert record.status == "ok"
    note = policy_note(record)
    assert note.status == "skipped" and "no target check" in note.error
    assert record.artifacts.decoder is None and record.artifacts.package is None
    assert store.get(record.experiment_id).phases[-2].error == note.error  # stored as such


@pytest.mark.parametrize("policy", ["improved"])
def test_policy_improved_publishes_only_a_better_bd_rate(home, small_clip_path, policy):
    first, store, _ = run(small_clip_path, SEED, publish=policy, baselines=["x264"])
    assert first.status == "ok", first.error
    assert policy_note(first).status == "ok" and "first scored" in policy_note(first).error
    assert first.artifacts.package
    # the same program again cannot beat itself
    second, _, _ = run(small_clip_path, SEED, publish=policy, baselines=["x264"])
    note = policy_note(second)
    assert note.status == "skipped" and "does not beat the previous best" in note.error
    assert second.artifacts.decoder is None
    history = decoder_history(store.list(), first.program_sha256)
    assert history[0]["program_sha256"] == first.program_sha256
    assert history[0]["experiments"] == [first.experiment_id]
    assert history[0]["decoder"] == by_program_key(first.program_sha256)


def test_decoder_history_walks_parents():
    from codeclab.record import Artifacts, ExperimentRecord

    def rec(eid, sha, parent, published=True):
        return ExperimentRecord(
            experiment_id=eid,
            status="ok",
            program_sha256=sha,
            program_name="p",
            parent_sha256=parent,
            designer="evolve",
            isolation="strong",
            source_bytes=1,
            qualities=[50],
            artifacts=Artifacts(decoder="x" if published else None),
        )

    records = [rec("e1", "a", None), rec("e2", "b", "a", published=False), rec("e3", "c", "b")]
    history = decoder_history(records, "c")
    assert [h["program_sha256"] for h in history] == ["c", "b", "a"]
    assert [h["experiments"] for h in history] == [["e3"], [], ["e1"]]
    assert history[1]["decoder"] is None
