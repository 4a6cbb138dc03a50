"""The providers against local servers that speak the real HTTP APIs (no mocked client)."""

from __future__ import annotations

import socket

import pytest

from codeclab.design.providers import (
    AnthropicProvider,
    LLMError,
    OpenAIProvider,
    Usage,
    cost_of,
    make_provider,
    retry_after_s,
)
from tests.llm_servers import Answer, AnthropicServer, OpenAIServer

KEY = "sk-ant-test-0123456789abcdefSECRET"
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


class Sleeps(list):
    """Records the waits instead of sleeping them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def anthropic(server: AnthropicServer, **options) -> AnthropicProvider:
    options.setdefault("sleep", Sleeps())
    options.setdefault("timeout_s", 5.0)
    return AnthropicProvider("claude-test", base_url=server.base_url, **options)


def openai(base_url: str, **options) -> OpenAIProvider:
    options.setdefault("sleep", Sleeps())
    options.setdefault("timeout_s", 5.0)
    return OpenAIProvider("gpt-test", base_url=base_url, **options)


def test_anthropic_request_and_answer(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with AnthropicServer(AnthropicServer.reply("hi there", 1200, 300)) as server:
        provider = anthropic(server, prices={"claude-test": (3.0, 15.0)}, max_tokens=4096)
        completion = provider.complete("be brief", MESSAGES)
    assert completion.text == "hi there"
    assert not completion.truncated
    assert completion.usage == Usage(1, 1200, 300, (1200 * 3.0 + 300 * 15.0) / 1e6, True)
    (request,) = server.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.body == {
        "model": "claude-test",
        "max_tokens": 4096,
        "system": "be brief",
        "messages": MESSAGES,
    }


def test_anthropic_joins_text_blocks_and_flags_truncation():
    answer = AnthropicServer.reply("", stop_reason="max_tokens")
    answer.body["content"] = [
        {"type": "thinking", "thinking": "hmm"},
        {"type": "text", "text": "part one, "},
        {"type": "text", "text": "part two"},
    ]
    with AnthropicServer(answer) as server:
        completion = anthropic(server).complete("s", MESSAGES)
    assert completion.text == "part one, part two"
    assert completion.truncated
    assert "x-api-key" not in server.requests[0].headers  # a local server needs no key


def test_openai_request_and_answer(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with OpenAIServer(OpenAIServer.reply("hello back", 800, 200, finish_reason="length")) as server:
        completion = openai(server.base_url, temperature=0.2).complete("sys", MESSAGES)
    assert completion.text == "hello back"
    assert completion.truncated
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (800, 200)
    assert completion.usage.cost_usd == 0.0 and not completion.usage.cost_known  # no price
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["messages"] == [{"role": "system", "content": "sys"}, *MESSAGES]
    assert request.body["max_tokens"] == 16000  # a compatible server's parameter name
    assert request.body["temperature"] == 0.2


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_openai_compatible_base_urls(suffix: str):
    """``http://host:port`` and ``http://host:port/v1`` (Ollama, vLLM, llama.cpp) both work."""
    with OpenAIServer(OpenAIServer.reply("ok")) as server:
        assert openai(server.base_url + suffix).complete("s", MESSAGES).text == "ok"
    assert [r.path for r in server.requests] == ["/v1/chat/completions"]
    assert "authorization" not in server.requests[0].headers


def test_openai_base_url_with_a_path_in_front():
    with OpenAIServer(OpenAIServer.reply("ok"), prefix="/api") as server:
        assert openai(server.base_url + "/v1").complete("s", MESSAGES).text == "ok"
    assert server.requests[0].path == "/api/v1/chat/completions"


def test_default_endpoints_need_a_key_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(LLMError, match="set ANTHROPIC_API_KEY"):
        AnthropicProvider("claude-test")
    with pytest.raises(LLMError, match="set OPENAI_API_KEY"):
        make_provider("openai", "gpt-test")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    provider = make_provider("openai", "gpt-test")
    assert provider.url == "https://api.openai.com/v1/chat/completions"
    assert provider._body("s", MESSAGES)["max_completion_tokens"] == 16000
    assert KEY not in repr(provider)
    with pytest.raises(ValueError, match="unknown LLM provider"):
        make_provider("gemini", "x")


def test_429_waits_as_long_as_retry_after_says():
    sleeps = Sleeps()
    with AnthropicServer(
        AnthropicServer.error(429, "slow down", headers={"retry-after": "7"}),
        AnthropicServer.reply("done"),
    ) as server:
        completion = anthropic(server, sleep=sleeps).complete("s", MESSAGES)
    assert completion.text == "done"
    assert sleeps == [7.0]
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_server_errors_are_retried_with_backoff(status: int):
    sleeps = Sleeps()
    with AnthropicServer(
        AnthropicServer.error(status), AnthropicServer.error(status), AnthropicServer.reply("ok")
    ) as server:
        provider = anthropic(server, sleep=sleeps, backoff_s=1.0)
        assert provider.complete("s", MESSAGES).text == "ok"
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.5 and 1.0 <= sleeps[1] <= 3.0  # 1 s, then 2 s, +-50% jitter


def test_persistent_server_errors_end_in_llm_error():
    server = OpenAIServer(*[OpenAIServer.error(500, "internal trouble")] * 3)
    with server, pytest.raises(LLMError) as caught:
        openai(server.base_url, attempts=3).complete("s", MESSAGES)
    assert len(server.requests) == 3
    error = caught.value
    assert error.status == 500 and error.attempts == 3
    assert "HTTP 500" in str(error) and "internal trouble" in str(error)
    assert "gave up after 3 attempts" in str(error)
    assert error.__cause__ is None and error.__context__ is None


def test_client_errors_are_not_retried():
    server = AnthropicServer(AnthropicServer.error(400, "max_tokens: too large"))
    with server, pytest.raises(LLMError, match=r"HTTP 400: api_error: max_tokens: too large"):
        anthropic(server).complete("s", MESSAGES)
    assert len(server.requests) == 1


def test_a_wrong_path_is_a_clear_404():
    with AnthropicServer() as server:
        provider = openai(server.base_url)  # an OpenAI client against an Anthropic server
        with pytest.raises(LLMError, match="HTTP 404") as caught:
            provider.complete("s", MESSAGES)
    assert caught.value.status == 404


def test_timeouts_are_retried_then_reported():
    with AnthropicServer(
        AnthropicServer.reply("late", delay_s=0.6), AnthropicServer.reply("late", delay_s=0.6)
    ) as server:
        provider = anthropic(server, timeout_s=0.1, attempts=2)
        with pytest.raises(LLMError, match=r"no answer within 0.1 s \(timeout\)") as caught:
            provider.complete("s", MESSAGES)
    # both attempts were cut by the client's timeout (the error says so), not answered late
    assert caught.value.status is None and caught.value.attempts == 2
    assert len(server.requests) == 2


def test_a_timeout_then_an_answer_succeeds():
    with OpenAIServer(
        OpenAIServer.reply("late", delay_s=0.5), OpenAIServer.reply("in time")
    ) as server:
        assert openai(server.base_url, timeout_s=0.1).complete("s", MESSAGES).text == "in time"


def test_connection_errors_are_retried_then_reported():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    provider = openai(f"http://127.0.0.1:{port}/v1", attempts=3, sleep=sleeps)
    with pytest.raises(LLMError, match="connection failed") as caught:
        provider.complete("s", MESSAGES)
    assert caught.value.attempts == 3 and len(sleeps) == 2


def test_an_unreadable_answer_is_an_error():
    server = OpenAIServer(Answer(200, "<html>proxy page</html>"))
    with server, pytest.raises(LLMError, match="unreadable answer.*proxy page"):
        openai(server.base_url).complete("s", MESSAGES)


def test_retry_after_forms():
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after": "0.25"}) == 0.25
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert retry_after_s({"retry-after": date}, now=1445412480.0) == 10.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


def test_costs_use_configured_prices_by_exact_name_then_longest_prefix():
    prices = {"claude-sonnet-4-5": (3.0, 15.0), "claude": (1.0, 1.0)}
    exact = cost_of("claude-sonnet-4-5", 1_000_000, 100_000, prices)
    assert exact.cost_usd == pytest.approx(3.0 + 1.5) and exact.cost_known
    dated = cost_of("claude-sonnet-4-5-20250929", 1_000_000, 0, prices)
    assert dated.cost_usd == pytest.approx(3.0)
    unknown = cost_of("gpt-test", 10, 10, prices)
    assert unknown.cost_usd == 0.0 and not unknown.cost_known
    total = exact + unknown
    assert total.calls == 2 and total.input_tokens == 1_000_010 and not total.cost_known


def test_the_key_never_leaves_in_errors_or_answers(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    masked = KEY[:10] + "*" * 12 + KEY[-4:]
    with AnthropicServer(
        AnthropicServer.error(401, f"invalid x-api-key {KEY} (also known as {masked})"),
        AnthropicServer.reply(f"your key is {KEY}"),
    ) as server:
        provider = anthropic(server)
        with pytest.raises(LLMError) as caught:
            provider.complete("s", MESSAGES)
        completion = provider.complete("s", MESSAGES)
    assert server.requests[0].headers["x-api-key"] == KEY  # it is sent where it belongs
    for text in (str(caught.value), repr(caught.value), completion.text, repr(provider)):
        assert KEY not in text and masked not in text
    assert "[redacted]" in str(caught.value)
