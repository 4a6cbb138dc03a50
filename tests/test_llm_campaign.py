"""An LLM campaign end to end: CLI, designer, repair loop, sandbox and store, over real HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import cli
from tests.llm_servers import OpenAIServer

PROGRAMS = Path(__file__).parent / "programs"
GOOD = (PROGRAMS / "quantise_zlib.py").read_text()
# imports fine, passes the static policy, and fails the smoke run: the repair loop's case
CRASHES = GOOD.replace("def decode(bitstream):\n", "def decode(bitstream):\n    return None\n")


def answer(program: str, hypothesis: str) -> str:
    return (
        f"HYPOTHESIS: {hypothesis}\nROOT CAUSE: none yet\nINSIGHTS: a first try\n"
        "NEXT STEP: measure\nEXPECTED KBPS: 900\nEXPECTED PSNR: 40.5\nCONFIDENCE: 0.6\n\n"
        f"```python\n{program}```\n"
    )


def test_llm_campaign_repairs_rejects_and_records_reasoning(home, small_clip_path, tmp_path):
    script = [
        OpenAIServer.reply(answer(GOOD, "coarser steps cost fewer bits")),
        OpenAIServer.reply(answer(CRASHES, "a shorter decoder")),
        OpenAIServer.reply(answer(GOOD.replace("// 8", "// 6"), "finer steps after the crash")),
        *[OpenAIServer.reply("I have no program for you today.") for _ in range(3)],
    ]
    with OpenAIServer(*script) as server:
        done = cli(
            "run", "--designer", "llm", "--llm-provider", "openai", "--llm-model", "local-coder",
            "--llm-base-url", server.base_url + "/v1", "--llm-repairs", "2", "--iterations", "3",
            "--clip", str(small_clip_path), "--qualities", "30,70", "--baselines", "x264",
            "--json", cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"},
        )  # fmt: skip
        requests = list(server.requests)
    assert done.returncode == 0, done.stderr
    experiments = json.loads(done.stdout)["experiments"]
    assert [e["status"] for e in experiments] == ["ok", "ok", "rejected"]
    assert experiments[2]["phase"] == "design" and "no usable program" in experiments[2]["error"]
    # the crash went back to the model with the smoke run's error, and the fix was evaluated
    repair = requests[2].body["messages"][-1]["content"]
    assert "smoke run" in repair and "decoder" in repair
    shown = json.loads(cli("show", experiments[0]["experiment_id"], "--json", cwd=tmp_path).stdout)
    reasoning = shown["reasoning"]
    assert reasoning["hypothesis"] == "coarser steps cost fewer bits"
    assert reasoning["expected_kbps"] == 900 and reasoning["confidence"] == 0.6
    assert reasoning["llm_usage"]["calls"] == 1
    assert shown["designer"] == "llm"


def test_llm_designer_needs_a_model(home, tmp_path):
    done = cli("run", "--designer", "llm", cwd=tmp_path)
    assert done.returncode == 2 and "--llm-model" in done.stderr
