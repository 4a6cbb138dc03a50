"""`codeclab serve --workers N`: a listening socket per server process, so the kernel spreads
connections over them; a taken port refused; a process that dies started again; SIGTERM ends
them all. Real processes, real sockets, read back from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CODECLAB


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children(pid: int) -> set[int]:
    """The live server processes ``pid`` started, from /proc (zombies and multiprocessing's
    resource tracker excepted)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in command:
            found.add(int(stat.parent.name))
    return found


def sockets_on(port: int, state: str) -> set[str]:
    """Inodes of the TCP sockets on local ``port`` in ``state`` ("0A": listening,
    "01": established)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(fields[9])
    return inodes


def held(pid: int, inodes: set[str]) -> set[str]:
    """Which of ``inodes`` the process ``pid`` has open."""
    mine = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            mine.add(link[8:-1])
    return mine


def until(check: Callable[[], object], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/experiments", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture()
def server(home: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """``codeclab serve --workers 2`` on a free port, answering; ended (and checked) after."""
    port = free_port()
    process = subprocess.Popen(
        [*CODECLAB, "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        until(lambda: answers(port) or process.poll() is not None, "the dashboard did not start")
        assert process.poll() is None, process.stderr.read().decode()
        yield process, port
    finally:
        workers = children(process.pid)
        process.terminate()
        process.wait(timeout=30)
        until(lambda: not any(Path(f"/proc/{p}").exists() for p in workers), "workers lived on")


def test_each_server_process_listens_on_its_own_socket_and_gets_connections(server) -> None:
    process, port = server
    workers = children(process.pid)
    listening = sockets_on(port, "0A")
    assert len(listening) == 2  # uvicorn's own workers share one
    until(lambda: all(held(p, listening) for p in workers), "a worker without a socket")
    first, second = sorted(workers)
    assert held(first, listening).isdisjoint(held(second, listening))  # a socket each
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        for client in clients:  # a request each, so every connection has been accepted
            client.sendall(b"GET /api/experiments HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(12).startswith(b"HTTP/1.1 200")
        established = sockets_on(port, "01")
        spread = sorted(len(held(p, established)) for p in workers)
        assert sum(spread) == 20 and spread[0] > 0, spread  # all 20 on one: about 2 in 10^6
    finally:
        for client in clients:
            client.close()


def test_a_server_process_that_dies_is_started_again(server) -> None:
    process, port = server
    before = children(process.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    until(lambda: len(children(process.pid) - {victim}) == 2, "no process started again")
    until(lambda: answers(port), "the dashboard stopped answering")
    listening = sockets_on(port, "0A")
    until(lambda: all(held(p, listening) for p in children(process.pid)), "new worker idle")


def test_a_taken_port_refuses_to_serve_even_one_shared_with_so_reuseport(home, tmp_path) -> None:
    """Binding with SO_REUSEPORT alone would share the port with another program of the same
    user, which would then get half of the dashboard's connections."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = subprocess.run(
            [*CODECLAB, "serve", "--port", str(port), "--workers", "2"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr
