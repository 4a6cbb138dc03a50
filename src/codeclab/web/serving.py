"""The dashboard on several server processes, each listening on a socket of its own.

uvicorn's workers share one listening socket, and the process that wakes first accepts every
connection waiting: with 20 clients, one of two processes held 14 to 20 of them while the
other core idled, so the page waited behind 20 others instead of 10. Here each process
listens on a socket of its own, all bound to the same address with ``SO_REUSEPORT``, and the
kernel spreads new connections over them (nginx's ``reuseport``, gunicorn's
``--reuse-port``). The address is first bound without it, so a port that another program,
or another dashboard, holds refuses the start instead of being shared.

The parent only supervises: it starts the processes, starts again one that dies (logged),
and ends them all on Ctrl-C or SIGTERM; each process ends with it (a parent-death signal).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import socket
from contextlib import suppress
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType

import uvicorn

FACTORY = "codeclab.web.app:from_configuration"  # each process builds its own app
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_SECONDS = 10.0  # a process's graceful shutdown, then it is killed

log = logging.getLogger("uvicorn.error")


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` (``port`` 0: one free port for all);
    :class:`OSError` with the address if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed server's TIME_WAIT
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        port = probe.getsockname()[1]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class _Server(uvicorn.Server):
    """uvicorn's server that tells the supervisor once it serves."""

    def __init__(self, config: uvicorn.Config, ready: EventType) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()


def _serve_one(sock: socket.socket, ready: EventType) -> None:
    """One server process: ends with the supervisor, serves ``sock`` until told to stop."""
    with suppress(OSError, AttributeError):  # not Linux: the supervisor's SIGTERM ends it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    _Server(uvicorn.Config(FACTORY, factory=True), ready).run(sockets=[sock])


def serve(host: str, port: int, workers: int) -> None:
    """Serve on ``workers`` processes until Ctrl-C or SIGTERM; :class:`RuntimeError` if a
    process ends before it ever served (the app could not start: starting it again would
    not help)."""
    sockets = listening_sockets(host, port, workers)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this one's
    ready: dict[int, EventType] = {}

    def start(i: int) -> BaseProcess:
        ready[i] = spawn.Event()
        process = spawn.Process(target=_serve_one, args=(sockets[i], ready[i]), name=f"serve-{i}")
        process.start()
        return process

    processes = {i: start(i) for i in range(workers)}
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            wait([p.sentinel for p in processes.values()], timeout=0.5)
            for i, process in list(processes.items()):
                if process.is_alive() or stopping:
                    continue
                if not ready[i].is_set():
                    raise RuntimeError(
                        f"a server process ended before it served (exit code {process.exitcode})"
                    )
                log.warning(
                    "server process %s ended (exit code %s); starting it again",
                    process.pid,
                    process.exitcode,
                )
                processes[i] = start(i)
    except KeyboardInterrupt:
        pass  # Ctrl-C reached the whole group: each process shuts down on its own
    finally:
        signal.signal(signal.SIGTERM, previous)
        _end(list(processes.values()))
        for sock in sockets:
            sock.close()


def _end(processes: list[BaseProcess]) -> None:
    """Ask each process to shut down (SIGTERM: uvicorn's graceful stop), kill the late."""
    for process in processes:
        if process.is_alive():
            with suppress(OSError):
                process.terminate()
    for process in processes:
        process.join(STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
