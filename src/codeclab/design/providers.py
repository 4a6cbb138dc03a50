"""LLM providers: the Anthropic Messages API and the OpenAI Chat Completions API over HTTP.

Plain ``httpx`` against the documented HTTP APIs, not the vendors' SDKs: one small dependency
instead of two large ones, timeouts and retries under the lab's control, and tests that talk
to real local servers (``tests/llm_servers.py``) instead of mocks. The OpenAI provider also
serves every OpenAI-compatible server (Ollama, vLLM, llama.cpp, ...) through ``base_url``.

Keys come from ``ANTHROPIC_API_KEY`` / ``OPENAI_API_KEY`` and nowhere else. A key is sent in
its header and never appears in anything this module returns or raises: error excerpts and
replies are scrubbed of it, and exceptions are raised without the HTTP library's exception
chained (its request object carries the headers).
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

# Statuses worth another try: rate limit, server errors, Anthropic's "overloaded" (529),
# and a server-side request timeout.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
ANTHROPIC_VERSION = "2023-06-01"
EXCERPT_CHARS = 500
REDACTED = "[redacted]"
# Things that look like API keys, for error bodies that echo a masked or partial key.
_KEY_LIKE = re.compile(r"\b(?:sk|key)-[A-Za-z0-9_\-*.]{6,}")

Prices = Mapping[str, tuple[float, float]]


class LLMError(RuntimeError):
    """A call failed for good: ``status`` is the last HTTP status (None: no response).

    The designer sets ``usage`` to what the interrupted proposal had spent before it.
    """

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        self.status = status
        self.attempts = attempts
        self.usage: Usage | None = None
        super().__init__(message)


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of one or more calls; ``cost_known`` is False if a price was missing."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
            self.cost_known and other.cost_known,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "cost_known": self.cost_known,
        }


@dataclass(frozen=True)
class Completion:
    """One answer: its text, what it cost, and whether it stopped at ``max_tokens``."""

    text: str
    usage: Usage
    model: str
    truncated: bool = False


def price_of(model: str, prices: Prices | None) -> tuple[float, float] | None:
    """USD per million (input, output) tokens: exact name first, then the longest prefix.

    The prefix rule lets ``claude-sonnet-4-5`` price ``claude-sonnet-4-5-20250929``.
    """
    if not prices:
        return None
    if model in prices:
        return tuple(prices[model])  # type: ignore[return-value]
    prefixes = [name for name in prices if model.startswith(name)]
    return tuple(prices[max(prefixes, key=len)]) if prefixes else None  # type: ignore[return-value]


def cost_of(model: str, input_tokens: int, output_tokens: int, prices: Prices | None) -> Usage:
    price = price_of(model, prices)
    cost = 0.0 if price is None else (input_tokens * price[0] + output_tokens * price[1]) / 1e6
    return Usage(1, input_tokens, output_tokens, cost, price is not None)


def scrub(text: str, secret: str | None, *, key_like: bool = False) -> str:
    """``text`` without ``secret``; with ``key_like``, also without anything shaped like an
    API key (for error bodies, which may echo a masked key; not for code, where
    ``key-frame`` is a word)."""
    if secret:
        text = text.replace(secret, REDACTED)
    return _KEY_LIKE.sub(REDACTED, text) if key_like else text


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, or ``retry-after`` in seconds
    or as an HTTP date; ``None`` when absent or unreadable."""
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Provider(ABC):
    """One model behind one HTTP API; :meth:`complete` sends a conversation and answers."""

    name = ""
    key_env = ""
    default_base_url = ""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        prices: Prices | None = None,
        timeout_s: float = 120.0,
        attempts: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_wait_s: float = 300.0,
        max_tokens: int = 16000,
        temperature: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.model = model
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.prices = dict(prices or {})
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_wait_s = max_wait_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._key = os.environ.get(self.key_env) or None
        if self._key is None and self.base_url == self.default_base_url:
            raise LLMError(f"{self.name}: set {self.key_env} in the environment to use {self.url}")
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(model={self.model!r}, url={self.url!r})"

    @property
    @abstractmethod
    def url(self) -> str: ...

    @property
    def has_key(self) -> bool:
        return self._key is not None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The two APIs differ only in these three methods.
    @abstractmethod
    def _headers(self) -> dict[str, str]: ...

    @abstractmethod
    def _body(self, system: str, messages: list[dict[str, str]]) -> dict[str, Any]: ...

    @abstractmethod
    def _parse(self, data: dict[str, Any]) -> Completion: ...

    def complete(self, system: str, messages: list[dict[str, str]]) -> Completion:
        """Send ``messages`` (alternating user/assistant, user first) and return the answer.

        Retries 429 (after ``retry-after`` when given), 5xx/529, timeouts and connection
        errors with exponential backoff and jitter, up to ``attempts`` tries in all.
        """
        body = self._body(system, messages)
        problem = ""
        status: int | None = None
        for attempt in range(1, self.attempts + 1):
            wait: float | None = None
            try:
                response = self._client.post(self.url, json=body, headers=self._headers())
            except httpx.TimeoutException:
                status, problem = None, f"no answer within {self.timeout_s:g} s (timeout)"
            except httpx.TransportError as exc:
                status, problem = None, f"connection failed: {type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return self._parse(response.json())
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        raise LLMError(
                            self._say(
                                f"unreadable answer ({type(exc).__name__}: {exc}): "
                                f"{self._excerpt(response.text)}"
                            ),
                            status=status,
                            attempts=attempt,
                        ) from None
                problem = f"HTTP {status}: {self._excerpt(response.text)}"
                if status not in RETRY_STATUSES:
                    raise LLMError(self._say(problem), status=status, attempts=attempt)
                wait = retry_after_s(response.headers)
            if attempt == self.attempts:
                break
            if wait is None:
                wait = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                wait *= 0.5 + self._rng.random()  # full jitter around the nominal delay
            wait = min(wait, self.max_wait_s)
            log.warning(
                "%s: %s; retry %d/%d in %.2f s",
                self.name,
                problem,
                attempt,
                self.attempts - 1,
                wait,
            )
            self._sleep(wait)
        raise LLMError(
            self._say(f"{problem} (gave up after {self.attempts} attempts)"),
            status=status,
            attempts=self.attempts,
        )

    def _say(self, problem: str) -> str:
        return scrub(f"{self.name} {self.url} (model {self.model}): {problem}", self._key)

    def _excerpt(self, body: str) -> str:
        """The message of a JSON error body, or the start of the body: one line, scrubbed."""
        text = body
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        error = data.get("error", data) if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            kind = error.get("type")
            text = f"{kind}: {error['message']}" if isinstance(kind, str) else error["message"]
        text = " ".join(scrub(text, self._key, key_like=True).split())
        if len(text) > EXCERPT_CHARS:
            text = text[:EXCERPT_CHARS] + "..."
        return text or "(empty body)"

    def _usage(self, input_tokens: Any, output_tokens: Any) -> Usage:
        return cost_of(self.model, int(input_tokens or 0), int(output_tokens or 0), self.prices)


class AnthropicProvider(Provider):
    """Anthropic Messages API: ``POST {base}/v1/messages``."""

    name = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    default_base_url = "https://api.anthropic.com"

    @property
    def url(self) -> str:
        base = self.base_url.removesuffix("/v1")
        return f"{base}/v1/messages"

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        if self._key:
            headers["x-api-key"] = self._key
        return headers

    def _body(self, system: str, messages: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": system,
            "messages": messages,
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def _parse(self, data: dict[str, Any]) -> Completion:
        text = "".join(
            block.get("text", "") for block in data["content"] if block.get("type") == "text"
        )
        usage = data.get("usage") or {}
        return Completion(
            scrub(text, self._key),
            self._usage(usage.get("input_tokens"), usage.get("output_tokens")),
            str(data.get("model") or self.model),
            truncated=data.get("stop_reason") == "max_tokens",
        )


class OpenAIProvider(Provider):
    """OpenAI Chat Completions: ``POST {base}/v1/chat/completions``, or
    ``{base}/chat/completions`` when the base already ends in ``/v1`` (Ollama, vLLM and
    llama.cpp serve the API at ``http://host:port/v1``)."""

    name = "openai"
    key_env = "OPENAI_API_KEY"
    default_base_url = "https://api.openai.com"

    @property
    def url(self) -> str:
        if self.base_url.endswith("/v1"):
            return f"{self.base_url}/chat/completions"
        return f"{self.base_url}/v1/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self._key:
            headers["authorization"] = f"Bearer {self._key}"
        return headers

    def _body(self, system: str, messages: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, *messages],
        }
        # OpenAI's own API has replaced max_tokens by max_completion_tokens (its reasoning
        # models refuse the old name); compatible servers know max_tokens.
        if self.base_url == self.default_base_url:
            body["max_completion_tokens"] = self.max_tokens
        else:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def _parse(self, data: dict[str, Any]) -> Completion:
        choice = data["choices"][0]
        text = (choice.get("message") or {}).get("content") or ""
        usage = data.get("usage") or {}
        return Completion(
            scrub(text, self._key),
            self._usage(usage.get("prompt_tokens"), usage.get("completion_tokens")),
            str(data.get("model") or self.model),
            truncated=choice.get("finish_reason") == "length",
        )


PROVIDERS: dict[str, type[Provider]] = {
    AnthropicProvider.name: AnthropicProvider,
    OpenAIProvider.name: OpenAIProvider,
}


def make_provider(name: str, model: str, **options: Any) -> Provider:
    """A provider by name (``anthropic`` or ``openai``); options as :class:`Provider` takes."""
    try:
        cls = PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown LLM provider {name!r} (known: {sorted(PROVIDERS)})") from None
    return cls(model, **options)
