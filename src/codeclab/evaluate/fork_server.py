"""Calls run in fresh forks of a clean server process: one that imported what the calls need
but never ran one.

Why: libx264 gives other bytes for the same frames and CRF after other encodes in the same
process, even single-threaded (on the bundled sample, CRF 37 was 9030 bytes first in a
process, 9033 or 9034 after encodes at CRF 27 or 32; on a 160x128x8 clip 1457 bytes, then
1465, 1469 or 1483), and cached baselines are compared across campaigns: so each baseline
encode needs a process that never encoded. Spawning one per encode costs an interpreter
start, the imports of av and numpy and a re-run of the parent's main module (the CLI's
imports): 2 to 4 s a rung on the loaded 2-core machine, against 0.1 to 0.3 s for the encode.
A fork of a server that only imported costs about 10 ms and starts every call from the same
never-encoded state. The server is started once per lab process (it ends when the lab's
end of its pipe closes); a session hands it the data its calls share (a clip's frames),
which each fork sees without a copy. Forks reply on one pipe: every message fits one atomic
pipe write.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

MESSAGE_MAX = 4096
"""PIPE_BUF on Linux: a write of at most this many bytes to a pipe is never interleaved."""
_HEADER = 4  # Connection.send_bytes's length prefix, written in the same write up to 16 KiB

Send = Callable[[Any], None]


class ServerLost(RuntimeError):
    """The fork server died; the next session starts a new one."""


def _reply(replies: Connection, call: int, kind: str, payload: Any) -> None:
    data = pickle.dumps((call, kind, payload))
    if len(data) + _HEADER > MESSAGE_MAX:
        data = pickle.dumps((call, "error", f"reply of {len(data)} bytes is too long ({kind})"))
    replies.send_bytes(data)


def _run_child(
    replies: Connection, call: int, function: Callable, shared: Any, args: tuple
) -> None:
    """In the fork: run the call, reply with its result or error, never return."""
    code = 1
    try:
        result = function(shared, lambda message: _reply(replies, call, "message", message), *args)
        _reply(replies, call, "result", result)
        code = 0
    except BaseException as exc:  # the fork must end here whatever happened
        with contextlib.suppress(BaseException):
            _reply(replies, call, "error", f"{type(exc).__name__}: {exc}"[:1000])
    finally:
        os._exit(code)


def _serve(requests: Connection, replies: Connection, preload: tuple[str, ...]) -> None:
    """The server's loop: fork a child per call, report each child's exit code."""
    for name in preload:
        importlib.import_module(name)
    shared: Any = None
    children: dict[int, tuple[int, int]] = {}  # exit-sentinel fd -> (call, pid)
    while True:
        for ready in wait([requests, *children]):
            if ready is requests:
                try:
                    request = requests.recv()
                except EOFError:
                    return  # the lab process is gone
                if request[0] == "shared":
                    shared, warm = request[1:]
                    if warm is not None:
                        warm(shared)  # in the server: what every fork would do first
                else:
                    _, call, function, args = request
                    read_end, write_end = os.pipe()  # EOF on read_end when the child ends
                    pid = os.fork()
                    if pid == 0:
                        os.close(read_end)
                        _run_child(replies, call, function, shared, args)
                    os.close(write_end)
                    children[read_end] = (call, pid)
            else:
                call, pid = children.pop(ready)
                os.close(ready)
                _, status = os.waitpid(pid, 0)
                _reply(replies, call, "exit", os.waitstatus_to_exitcode(status))


class Session:
    """Calls on one shared value; :meth:`receive` gives their replies as they come.

    The server is reached, and the shared value sent to it, on the first call only: a
    baseline curve found whole in the cache costs no pickling of its clip's frames.
    """

    def __init__(self, start: Callable[[], _Server]) -> None:
        self._start = start
        self._server: _Server | None = None
        self.running: set[int] = set()

    @property
    def started(self) -> bool:
        return self._server is not None

    @property
    def server(self) -> _Server:
        if self._server is None:
            self._server = self._start()
        return self._server

    def submit(self, function: Callable, *args: Any) -> int:
        """Start ``function(shared, send, *args)`` in a fresh fork; its call number."""
        call = next(self.server.calls)
        self.server.requests.send(("call", call, function, args))
        self.running.add(call)
        return call

    def receive(self) -> tuple[int, str, Any]:
        """The next reply of a call: ``message`` (what it sent), ``result``, ``error``, and
        last ``exit`` with the fork's exit code."""
        while True:
            try:
                data = self.server.replies.recv_bytes()
            except EOFError:  # the server and every fork of it have ended
                code = self.server.process.wait()
                raise ServerLost(f"the encoder fork server exited (code {code})") from None
            call, kind, payload = pickle.loads(data)
            if call not in self.running:
                continue  # a call of an earlier session that was abandoned
            if kind == "exit":
                self.running.discard(call)
            return call, kind, payload

    def run(self, function: Callable, *args: Any) -> Any:
        """One call, waited for: its result, or RuntimeError with its error."""
        call = self.submit(function, *args)
        result, error = None, None
        while call in self.running:
            _, kind, payload = self.receive()
            if kind == "result":
                result = payload
            elif kind == "error":
                error = payload
            elif kind == "exit" and payload != 0:
                error = error or f"the fork exited with code {payload}"
        if error is not None:
            raise RuntimeError(error)
        return result

    def drain(self) -> None:
        """Wait until every call of this session has ended."""
        while self.running:
            self.receive()


class _Server:
    """The server process, started with ``python -c`` rather than multiprocessing's spawn,
    which would re-run the lab's main module (the CLI's imports) in it."""

    def __init__(self, preload: tuple[str, ...]) -> None:
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        command = [
            sys.executable,
            "-c",
            "from codeclab.evaluate.fork_server import main; main()",
            str(requests_read),
            str(replies_write),
            os.pathsep.join(sys.path),
            *preload,
        ]
        try:
            self.process = subprocess.Popen(
                command, pass_fds=(requests_read, replies_write), stdin=subprocess.DEVNULL
            )
        finally:
            os.close(requests_read)
            os.close(replies_write)
        self.requests = Connection(requests_write, readable=False)
        self.replies = Connection(replies_read, writable=False)
        self.owner = os.getpid()
        self.calls = itertools.count()

    def usable(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None


def main() -> None:
    """The server's entry point: its pipes, the lab's import path and what to preload."""
    requests, replies, path, *preload = sys.argv[1:]
    sys.path[:] = path.split(os.pathsep)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the lab's; EOF ends the server
    _serve(
        Connection(int(requests), writable=False),
        Connection(int(replies), readable=False),
        tuple(preload),
    )


_servers: dict[tuple[str, ...], _Server] = {}
_lock = threading.Lock()


@contextlib.contextmanager
def session(
    preload: tuple[str, ...], shared: Any, warm: Callable[[Any], None] | None = None
) -> Iterator[Session]:
    """A session on the server that preloaded ``preload``, started on first use.

    ``warm(shared)`` runs in the server before the forks (work every call would repeat that
    cannot change what a call computes). One session at a time: other threads wait.
    """

    def start() -> _Server:
        server = _servers.get(preload)
        if server is None or not server.usable():
            server = _servers[preload] = _Server(preload)
        server.requests.send(("shared", shared, warm))
        return server

    with _lock:
        current = Session(start)
        try:
            yield current
            current.drain()
        except BaseException:
            with contextlib.suppress(ServerLost, OSError):
                current.drain()  # no fork may still write where the caller cleans up
            raise
        finally:
            if current.started:
                with contextlib.suppress(OSError):
                    current.server.requests.send(("shared", None, None))  # keeps no frames
