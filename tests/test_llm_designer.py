"""The LLM designer end to end against local servers that speak the providers' HTTP APIs."""

from __future__ import annotations

import pickle

import pytest

from codeclab.design.evolve import program_sha256, seed_programs
from codeclab.design.llm import (
    BudgetExhausted,
    DesignRejected,
    LLMDesigner,
    LLMError,
    LLMProposal,
)
from codeclab.design.prompts import parse_reasoning, system_prompt
from codeclab.record import (
    BaselineCurve,
    BaselineRungRecord,
    BdRate,
    ClipInfo,
    ExperimentRecord,
    Reasoning,
    RungResult,
)
from codeclab.sandbox.policy import check_program
from tests.llm_servers import AnthropicServer, OpenAIServer

KEY = "sk-ant-api03-FAKEKEY-do-not-leak-0123456789"

SEED = """import struct

import numpy as np

STEP = 8  # @param int 2..32


def _planes(frame):
    return [np.asarray(p, dtype=np.uint8) for p in frame]


def encode(frames, fps, quality):
    h, w = frames[0][0].shape
    body = b"".join(p.tobytes() for f in frames for p in _planes(f))
    return struct.pack("<III", len(frames), h, w) + body


def decode(bitstream):
    n, h, w = struct.unpack_from("<III", bitstream)
    sizes = [(h, w), (h // 2, w // 2), (h // 2, w // 2)]
    out, pos = [], 12
    for _ in range(n):
        frame = []
        for shape in sizes:
            size = shape[0] * shape[1]
            plane = np.frombuffer(bitstream, np.uint8, size, pos).reshape(shape)
            frame.append(plane.copy())
            pos += size
        out.append(tuple(frame))
    return out
"""
OTHER_SEED = SEED.replace("STEP = 8", "STEP = 16")
BETTER = SEED.replace("    h, w = frames[0][0].shape\n", "    h, w = frames[0][0].shape  # v2\n")
BETTER = BETTER.replace("STEP = 8", "STEP = 6")
FORBIDDEN = "import os\n" + BETTER


def answer(
    program: str | None = None,
    edits: str = "",
    *,
    hypothesis: str = "A finer quantiser step keeps more detail per bit",
) -> str:
    text = (
        f"HYPOTHESIS: {hypothesis}\n"
        "ROOT CAUSE: the step is too coarse\n"
        "for flat areas.\n"
        "INSIGHTS: nothing measured yet\n"
        "NEXT STEP: lower STEP from 8 to 6\n"
        "EXPECTED KBPS: ~1,250 kbps\n"
        "EXPECTED PSNR: 36.5 dB\n"
        "CONFIDENCE: 60%\n"
    )
    if program is not None:
        text += f"\nHere is the program:\n\n```python\n{program}```\n"
    return text + edits


def edit(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def designer_for(server, provider: str = "anthropic", **options) -> LLMDesigner:
    options.setdefault("seeds", {"alpha": OTHER_SEED, "beta": SEED})
    options.setdefault("parent_seed", "beta")
    options.setdefault("backoff_s", 0.001)
    options.setdefault("timeout_s", 5.0)
    model = "claude-test" if provider == "anthropic" else "gpt-test"
    return LLMDesigner(provider, model, base_url=server.base_url, **options)


def rung(quality: int, kbps: float, psnr: float, clip: str = "cars") -> RungResult:
    return RungResult(
        clip=clip,
        bytes=int(kbps * 125),
        frames=4,
        width=96,
        height=64,
        fps=30.0,
        kbps=kbps,
        bpp=0.1,
        encode_s=0.5,
        decode_s=0.25,
        psnr_y=psnr,
        psnr_u=psnr + 2,
        psnr_v=psnr + 2,
        psnr_yuv=psnr + 0.5,
        ssim_y=0.9,
        quality=quality,
        clip_sha256="c" * 64,
        bitstream_sha256="b" * 64,
        decoded_sha256="d" * 64,
    )


def record(
    iteration: int,
    source: str,
    *,
    bd_x265: float | None = None,
    status: str = "ok",
    error: str | None = None,
    hypothesis: str | None = None,
) -> ExperimentRecord:
    ok = status == "ok"
    return ExperimentRecord(
        experiment_id=f"exp-{iteration}",
        iteration=iteration,
        status=status,
        phase=None if ok else "validation",
        error=error,
        program_sha256=program_sha256(source),
        program_name=f"beta~step{iteration}",
        designer="llm",
        reasoning=Reasoning(text="...", hypothesis=hypothesis or f"idea number {iteration}"),
        isolation="weak",
        source_bytes=len(source),
        qualities=[20, 80],
        clips=[
            ClipInfo(
                name="cars", path="x", sha256="c" * 64, width=96, height=64, frames=4, fps=30.0
            )
        ],
        results=[rung(20, 100.0 + iteration, 30.0), rung(80, 900.0, 40.0 + iteration / 10)]
        if ok
        else [],
        bd_rate={
            "x265": {"psnr_y": BdRate(value=bd_x265)},
            "x264": {"psnr_y": BdRate(value=None, reason="curves do not overlap")},
        }
        if ok and bd_x265 is not None
        else {},
        baselines={
            "x265": [
                BaselineCurve(
                    encoder="x265",
                    version="3.5",
                    settings={"preset": "medium"},
                    clip_sha256="c" * 64,
                    rungs=[
                        BaselineRungRecord(
                            **rung(20, 80.0, 33.0).model_dump(
                                include=set(BaselineRungRecord.model_fields) - {"crf"}
                            ),
                            crf=35,
                        )
                    ],
                )
            ]
        }
        if ok
        else {},
    )


# ----------------------------------------------------------------------------- proposals


def test_a_whole_program_answer_becomes_a_checked_proposal():
    with AnthropicServer(AnthropicServer.reply(answer(BETTER), 2000, 800)) as server:
        designer = designer_for(server, prices={"claude-test": (3.0, 15.0)})
        proposal = designer.propose([], {})
    assert isinstance(proposal, LLMProposal)
    assert proposal.source == BETTER
    check_program(proposal.source)
    assert proposal.parent_sha256 == program_sha256(SEED)
    assert proposal.name == "beta~finer-quantiser-step-keeps"
    assert proposal.repairs_used == 0 and proposal.model == "claude-test"
    reasoning = proposal.llm_reasoning
    assert reasoning.hypothesis == "A finer quantiser step keeps more detail per bit"
    assert reasoning.root_cause == "the step is too coarse\nfor flat areas."
    assert reasoning.insights == "nothing measured yet"
    assert reasoning.next_step == "lower STEP from 8 to 6"
    assert (reasoning.expected_kbps, reasoning.expected_psnr, reasoning.confidence) == (
        1250.0,
        36.5,
        0.6,
    )
    assert reasoning.text.startswith("HYPOTHESIS:") and "```" not in reasoning.text
    assert "Here is the program:" in reasoning.text
    # every parsed field reaches the record, the verbatim text included
    assert proposal.reasoning == Reasoning(
        text=reasoning.text,
        hypothesis=reasoning.hypothesis,
        root_cause=reasoning.root_cause,
        insights=reasoning.insights,
        next_step=reasoning.next_step,
        expected_kbps=reasoning.expected_kbps,
        expected_psnr=reasoning.expected_psnr,
        confidence=reasoning.confidence,
    )
    assert proposal.reasoning.expected_kbps is not None
    cost = (2000 * 3.0 + 800 * 15.0) / 1e6
    assert (
        proposal.usage.as_dict()
        == designer.usage
        == {
            "calls": 1,
            "input_tokens": 2000,
            "output_tokens": 800,
            "cost_usd": cost,
            "cost_known": True,
        }
    )
    (request,) = server.requests
    assert request.body["system"] == system_prompt()
    (message,) = request.body["messages"]
    prompt = message["content"]
    assert prompt == proposal.prompt
    assert "No experiment has run yet" in prompt
    assert "## The parent program: beta (seed)" in prompt and SEED in prompt
    assert "def encode(frames, fps, quality)" in request.body["system"]
    assert "constriction" in request.body["system"] and "<<<<<<< SEARCH" in request.body["system"]
    assert pickle.loads(pickle.dumps(proposal)) == proposal  # it travels to pool workers


def test_the_default_parent_is_the_motion_compensated_seed():
    seeds = {"intra_dct": OTHER_SEED, "inter_mc": SEED}
    with AnthropicServer(AnthropicServer.reply(answer(BETTER))) as server:
        designer = designer_for(server, seeds=seeds, parent_seed=None)
        assert designer.parent_seed == "inter_mc"
        assert designer.propose([], {}).parent_sha256 == program_sha256(SEED)


def test_a_policy_violation_is_repaired_in_the_same_conversation():
    with AnthropicServer(
        AnthropicServer.reply(answer(FORBIDDEN)),
        AnthropicServer.reply(answer(BETTER, hypothesis="drop the os import")),
    ) as server:
        designer = designer_for(server)
        proposal = designer.propose([], {})
    assert proposal.source == BETTER
    assert proposal.repairs_used == 1 and proposal.usage.calls == 2 == designer.usage["calls"]
    first, second = server.requests
    messages = second.body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0] == first.body["messages"][0]
    assert messages[1]["content"] == answer(FORBIDDEN)
    assert "line 1: import of 'os' is not allowed" in messages[2]["content"]
    assert FORBIDDEN in messages[2]["content"]  # the program the edits would now apply to
    # the original hypothesis stays; the repair is appended to the verbatim text
    assert proposal.llm_reasoning.hypothesis == "A finer quantiser step keeps more detail per bit"
    assert "[repair 1 after: the lab's static check refused" in proposal.llm_reasoning.text
    assert "drop the os import" in proposal.llm_reasoning.text


def test_search_replace_edits_apply_to_the_parent_over_an_openai_compatible_v1_server():
    reply = answer(
        edits="```python\n"
        + edit("STEP = 8  # @param int 2..32", "STEP = 5  # @param int 2..32")
        + "```\n"
    )
    with OpenAIServer(OpenAIServer.reply(reply, 1500, 100)) as server:
        designer = LLMDesigner(
            "openai",
            "qwen2.5-coder",
            base_url=server.base_url + "/v1",
            seeds={"beta": SEED},
        )
        proposal = designer.propose([], {})
    assert proposal.source == SEED.replace("STEP = 8", "STEP = 5")
    assert server.requests[0].path == "/v1/chat/completions"
    assert "authorization" not in server.requests[0].headers  # a local server, no key
    assert server.requests[0].body["model"] == "qwen2.5-coder"
    assert designer.usage == {
        "calls": 1,
        "input_tokens": 1500,
        "output_tokens": 100,
        "cost_usd": 0.0,
        "cost_known": False,
    }


def test_edits_that_do_not_apply_are_sent_back_naming_the_block():
    step = "STEP = 8  # @param int 2..32"
    bad = answer(edits=edit(step, "STEP = 5") + edit("    return nothing", "    return 1"))
    good = answer(edits=edit("STEP = 8  # @param int 2..32", "STEP = 5  # @param int 2..32"))
    with OpenAIServer(OpenAIServer.reply(bad), OpenAIServer.reply(good)) as server:
        proposal = designer_for(server, "openai").propose([], {})
    assert proposal.source == SEED.replace("STEP = 8", "STEP = 5")
    retry = server.requests[1].body["messages"][-1]["content"]
    assert "SEARCH/REPLACE block 2 (SEARCH starting 'return nothing')" in retry
    assert "SEARCH/REPLACE edits in your next reply apply to it" not in retry  # same base


def test_malformed_answers_end_in_design_rejected_after_the_repairs():
    no_code = answer(hypothesis="think harder") + "\nI would change the quantiser."
    with AnthropicServer(*[AnthropicServer.reply(no_code, 100, 10)] * 3) as server:
        designer = designer_for(server, repairs=2)
        with pytest.raises(DesignRejected) as caught:
            designer.propose([], {})
    rejected = caught.value
    assert len(server.requests) == 3
    assert "no ```python block and no SEARCH/REPLACE edits" in rejected.reason
    assert "after 2 repairs" in rejected.reason
    assert rejected.usage.calls == 3 and rejected.usage.input_tokens == 300
    assert rejected.reasoning is not None and rejected.reasoning.hypothesis == "think harder"
    assert rejected.source is None and rejected.repairs_used == 2
    assert rejected.name == "beta~think-harder"
    assert rejected.parent_sha256 == program_sha256(SEED)
    assert designer.usage["calls"] == 3


def test_a_cut_off_answer_is_asked_again_with_a_hint():
    cut = answer() + "```python\n" + BETTER[:200]
    with AnthropicServer(
        AnthropicServer.reply(cut, stop_reason="max_tokens"), AnthropicServer.reply(answer(BETTER))
    ) as server:
        proposal = designer_for(server, max_tokens=1234).propose([], {})
    assert proposal.source == BETTER
    retry = server.requests[1].body["messages"][-1]["content"]
    assert "cut off at the output limit (1234 tokens)" in retry
    assert server.requests[0].body["max_tokens"] == 1234


def test_a_program_already_tried_is_sent_back():
    same = SEED.replace("import struct\n", "import struct  # unchanged\n")
    with AnthropicServer(
        AnthropicServer.reply(answer(same)), AnthropicServer.reply(answer(BETTER))
    ) as server:
        proposal = designer_for(server).propose([], {})
    assert proposal.source == BETTER
    assert "same (comments and spacing aside)" in server.requests[1].body["messages"][-1]["content"]


def test_the_campaign_repair_sends_the_failing_program_and_the_error():
    error = "smoke run failed: decode returned 3 frames, expected 4\nTraceback (most recent...)"
    fix = answer(edits=edit("    return out", "    return out + out[-1:]"), hypothesis="a fix")
    with AnthropicServer(
        AnthropicServer.reply(answer(BETTER), 1000, 100), AnthropicServer.reply(fix, 500, 50)
    ) as server:
        designer = designer_for(server)
        proposal = designer.propose([], {})
        fixed = designer.repair(proposal, error)
    assert fixed.source == BETTER.replace("    return out\n", "    return out + out[-1:]\n")
    request = server.requests[1]
    (message,) = request.body["messages"]  # a fresh conversation
    assert error in message["content"] and BETTER in message["content"]
    assert "hypothesis: A finer quantiser step" in message["content"]
    assert fixed.repairs_used == 1
    assert fixed.parent_sha256 == proposal.parent_sha256 and fixed.name == proposal.name
    assert fixed.prompt == proposal.prompt
    assert fixed.usage.calls == 2 and fixed.usage.input_tokens == 1500  # the whole lineage
    assert fixed.llm_reasoning.hypothesis == proposal.llm_reasoning.hypothesis
    assert "[repair 1 after: smoke run failed: decode returned 3 frames" in fixed.reasoning.text


def test_the_repair_budget_is_shared_by_the_designer_and_the_campaign():
    with AnthropicServer(
        AnthropicServer.reply(answer(FORBIDDEN)), AnthropicServer.reply(answer(BETTER))
    ) as server:
        designer = designer_for(server, repairs=1)
        proposal = designer.propose([], {})
        with pytest.raises(DesignRejected, match="repair budget of 1 spent") as caught:
            designer.repair(proposal, "smoke run failed: boom")
    assert len(server.requests) == 2  # the refusal asked nobody
    assert caught.value.source == BETTER and caught.value.usage.calls == 2


# ----------------------------------------------------------------------------- the prompt


def test_the_prompt_carries_the_latest_history_in_order_the_best_and_the_failures():
    sources = {}
    history = []
    for i in range(1, 13):
        source = SEED.replace("STEP = 8", f"STEP = {i + 2}")
        if i in (5, 11):
            history.append(
                record(i, source, status="rejected", error=f"line 3: import of 'os' ({i})")
            )
            continue
        sources[program_sha256(source)] = source
        history.append(record(i, source, bd_x265=30.0 - i if i != 9 else 5.0))
    best = SEED.replace("STEP = 8", "STEP = 11")  # iteration 9: BD-rate +5.0%
    new = SEED.replace("STEP = 8", "STEP = 99")
    with AnthropicServer(AnthropicServer.reply(answer(new))) as server:
        designer = designer_for(server, history_size=5, best_count=2, failure_count=1)
        proposal = designer.propose(history, sources)
    prompt = server.requests[0].body["messages"][0]["content"]
    assert proposal.parent_sha256 == program_sha256(best)
    assert f"## The parent program: beta~step9 ({program_sha256(best)[:12]})" in prompt
    assert best in prompt
    assert "The latest 5 of 12 experiments, oldest first" in prompt
    positions = [prompt.index(f"idea number {i} ->") for i in range(8, 13)]
    assert positions == sorted(positions)
    assert "idea number 7 ->" not in prompt
    assert (
        "#11 beta~step11" in prompt
        and "rejected at validation: line 3: import of 'os' (11)" in prompt
    )
    # the best two: #9 (+5.0%), then #12 (+18.0%), with their figures; the second as a diff
    assert "### #9 beta~step9" in prompt and "= the parent" in prompt
    assert "### #12 beta~step12" in prompt
    assert "BD-rate (PSNR-Y): x264 n/a (curves do not overlap), x265 +18.0%" in prompt
    assert "q20 112.0 kbps 30.00 dB, q80 900.0 kbps 41.20 dB" in prompt
    assert "-STEP = 11  # @param int 2..32\n+STEP = 14  # @param int 2..32" in prompt
    # one failure: the latest, with its error in full
    assert "## Recent failures" in prompt and "import of 'os' (11)\n```" in prompt
    assert "import of 'os' (5)\n```" not in prompt
    assert "Train clips: cars (96x64, 4 frames, 30 fps)" in prompt
    assert "- x265 3.5 (preset=medium): c35 80.0 kbps 33.00 dB" in prompt


def test_reasoning_parsing_tolerates_markdown_and_missing_fields():
    reasoning = parse_reasoning(
        "**HYPOTHESIS:** use a bigger search range\n"
        "## Next steps: widen SEARCH_RANGE\n"
        "- **Expected kbps**: 1.2 Mbps\n"
        "CONFIDENCE: 7/10\n"
        "HYPOTHESIS: a second one is ignored\n"
        "<<<<<<< SEARCH\nHYPOTHESIS: inside an edit\n=======\nx\n>>>>>>> REPLACE\n"
    )
    assert reasoning.hypothesis == "use a bigger search range"
    assert reasoning.next_step == "widen SEARCH_RANGE"
    assert reasoning.expected_kbps == 1200.0
    assert reasoning.confidence == 0.7
    assert reasoning.root_cause is None and reasoning.expected_psnr is None
    assert "inside an edit" not in reasoning.text
    assert parse_reasoning("CONFIDENCE: high").confidence is None


# ----------------------------------------------------------------------------- money, errors


def test_the_budget_stops_the_designer_before_a_call():
    prices = {"claude-test": (100.0, 1000.0)}  # 1000 in + 500 out = $0.60 a call
    with AnthropicServer(*[AnthropicServer.reply(answer(BETTER))] * 3) as server:
        designer = designer_for(server, prices=prices, budget_usd=1.0)
        designer.propose([], {})
        designer.propose([], {})
        with pytest.raises(BudgetExhausted, match=r"spent \$1.2000 of \$1.0000 in 2 calls"):
            designer.propose([], {})
    assert len(server.requests) == 2
    assert designer.usage["cost_usd"] == pytest.approx(1.2)
    assert designer.usage["input_tokens"] == 2000 and designer.usage["output_tokens"] == 1000


def test_a_budget_needs_a_price():
    with pytest.raises(ValueError, match="budget_usd needs a price for model 'claude-test'"):
        LLMDesigner("anthropic", "claude-test", base_url="http://127.0.0.1:9", budget_usd=1.0)


def test_a_provider_failure_is_an_llm_error_with_what_was_spent():
    with AnthropicServer(
        AnthropicServer.reply(answer(FORBIDDEN), 100, 10),
        *[AnthropicServer.error(503, "overloaded")] * 2,
    ) as server:
        designer = designer_for(server, attempts=2)
        with pytest.raises(LLMError, match="HTTP 503") as caught:
            designer.propose([], {})
    assert caught.value.usage.calls == 1 and caught.value.usage.input_tokens == 100
    assert len(server.requests) == 3


def test_the_key_never_leaks(monkeypatch: pytest.MonkeyPatch):
    """The fake key is sent in its header and nowhere else: not in prompts, replies,
    reasoning, proposals, usage, or any exception."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    echo = answer(BETTER, hypothesis=f"the key is {KEY}")
    seen: list[str] = []
    with AnthropicServer(
        AnthropicServer.reply(echo),
        AnthropicServer.reply(f"no code; key {KEY}"),
        AnthropicServer.reply(f"still none {KEY}"),
        AnthropicServer.error(401, f"invalid x-api-key: {KEY}"),
    ) as server:
        designer = designer_for(server, repairs=1)
        proposal = designer.propose([], {})
        seen += [repr(proposal), proposal.prompt, proposal.llm_reasoning.text, repr(designer)]
        seen += [str(designer.usage), proposal.name]
        with pytest.raises(DesignRejected) as rejected:
            designer.propose([], {})
        seen += [str(rejected.value), repr(rejected.value.reasoning), rejected.value.reason]
        with pytest.raises(LLMError) as failed:
            designer.propose([], {})
        seen += [str(failed.value), repr(failed.value)]
    with OpenAIServer(OpenAIServer.error(400, f"bad key {KEY}")) as server2:
        with pytest.raises(LLMError) as failed2:
            designer_for(server2, "openai").propose([], {})
        seen.append(str(failed2.value))
    assert all(r.headers["x-api-key"] == KEY for r in server.requests)
    assert server2.requests[0].headers["authorization"] == f"Bearer {KEY}"
    seen += [r.raw for r in server.requests + server2.requests]  # every prompt sent
    assert len(seen) > 10
    for text in seen:
        assert KEY not in text
    assert "the key is [redacted]" in proposal.llm_reasoning.text


def test_edits_against_the_bundled_seed_pass_the_lab_policy():
    line = next(
        ln for ln in seed_programs()["inter_mc"].splitlines() if ln.startswith("SEARCH_RANGE")
    )
    reply = answer(edits=edit(line, line.replace("= 16", "= 24")), hypothesis="wider search")
    with AnthropicServer(AnthropicServer.reply(reply)) as server:
        proposal = LLMDesigner("anthropic", "claude-test", base_url=server.base_url).propose([], {})
    assert proposal.name == "inter_mc~wider-search"
    assert "SEARCH_RANGE = 24  # @param" in proposal.source
    assert len(server.requests[0].raw) < 80_000  # the whole seed, once


@pytest.mark.skipif(
    not hasattr(ExperimentRecord, "train_view"), reason="records have no train/holdout split"
)
def test_holdout_scores_never_reach_the_prompt():
    source = SEED.replace("STEP = 8", "STEP = 12")
    full = record(1, source, bd_x265=10.0)
    holdout = ClipInfo(
        name="secret", path="y", sha256="h" * 64, width=96, height=64, frames=4, fps=30.0
    )
    full = full.model_copy(
        update={
            "test_set": "demo",
            "clips": [
                full.clips[0].model_copy(update={"split": "train"}),
                holdout.model_copy(update={"split": "holdout"}),
            ],
            "results": [
                *full.results,
                rung(20, 777.7, 22.2, clip="secret").model_copy(update={"clip_sha256": "h" * 64}),
            ],
            "bd_rate_train": full.bd_rate,
            "bd_rate_holdout": {"x265": {"psnr_y": BdRate(value=-99.9)}},
        }
    )
    new = SEED.replace("STEP = 8", "STEP = 99")
    with AnthropicServer(AnthropicServer.reply(answer(new))) as server:
        designer_for(server).propose([full], {full.program_sha256: source})
    prompt = server.requests[0].body["messages"][0]["content"]
    assert "x265 +10.0%" in prompt
    for leak in ("777.7", "-99.9", "secret", "22.2"):
        assert leak not in prompt
