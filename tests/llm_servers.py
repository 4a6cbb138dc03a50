"""Local HTTP servers that speak the Anthropic Messages and OpenAI Chat Completions APIs.

Each server answers from a script, a queue of :class:`Answer` (status, headers, JSON or raw
body, optional delay), and records every request it receives (path, headers, JSON body), so
tests exercise the real HTTP client, its timeouts and retries, against a real socket on
127.0.0.1. A request to a path the API does not serve gets a 404; a request after the script
ran out gets a 500 that says so, which a test sees as a failure.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # dict/list: sent as JSON; str: sent as it is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or the raw text when it is not JSON

    @property
    def raw(self) -> str:
        return json.dumps(self.body)


class ScriptedServer:
    """An HTTP server on a free port of 127.0.0.1 that replays scripted answers."""

    paths: frozenset[str] = frozenset()

    def __init__(self, *answers: Answer, prefix: str = "") -> None:
        self.prefix = prefix
        self.script: deque[Answer] = deque(answers)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    def add(self, *answers: Answer) -> ScriptedServer:
        with self._lock:
            self.script.extend(answers)
        return self

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            if request.path not in {self.prefix + p for p in self.paths}:
                return Answer(404, {"error": {"type": "not_found", "message": request.path}})
            if not self.script:
                return Answer(500, {"error": {"message": "the test script has no answer left"}})
            return self.script.popleft()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = server._next(Request(self.path, headers, body))
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                payload = (
                    answer.body.encode()
                    if isinstance(answer.body, str)
                    else json.dumps(answer.body).encode()
                )
                try:
                    self.send_response(answer.status)
                    kind = "text/plain" if isinstance(answer.body, str) else "application/json"
                    self.send_header("content-type", kind)
                    self.send_header("content-length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

        return Handler


class AnthropicServer(ScriptedServer):
    paths = frozenset({"/v1/messages"})

    @staticmethod
    def reply(
        text: str,
        input_tokens: int = 1000,
        output_tokens: int = 500,
        stop_reason: str = "end_turn",
        **answer: Any,
    ) -> Answer:
        return Answer(
            body={
                "id": "msg_test",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [{"type": "text", "text": text}],
                "stop_reason": stop_reason,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            },
            **answer,
        )

    @staticmethod
    def error(status: int, message: str = "boom", **answer: Any) -> Answer:
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return Answer(
            status, {"type": "error", "error": {"type": kind, "message": message}}, **answer
        )


class OpenAIServer(ScriptedServer):
    paths = frozenset({"/v1/chat/completions"})

    @staticmethod
    def reply(
        text: str,
        prompt_tokens: int = 1000,
        completion_tokens: int = 500,
        finish_reason: str = "stop",
        **answer: Any,
    ) -> Answer:
        return Answer(
            body={
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": "gpt-test",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            **answer,
        )

    @staticmethod
    def error(status: int, message: str = "boom", **answer: Any) -> Answer:
        return Answer(status, {"error": {"type": "server_error", "message": message}}, **answer)
