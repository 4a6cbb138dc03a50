"""How fast is the dashboard on a lab with 10,000 experiments?

    .venv/bin/python benchmarks/bench_web.py [--experiments N] [--clients C] [--requests R]
                                             [--workers W] [--routes ROUTE ...] [--home DIR]
                                             [--json]

1. A real campaign (two iterations on a 96x64, 4-frame window of the sample clip, x265 as
   the baseline) fills a SQLite store; its records are then cloned, through ``store.save``
   (the rows a campaign writes, summaries included), with new ids, campaigns of 100
   iterations and one second apart, up to N experiments. ``--home`` keeps the filled lab
   for the next run (filling takes minutes; a lab that has N experiments is reused).
2. ``codeclab serve [--workers W]`` runs in its own process(es) on 127.0.0.1.
3. For each route (``/``, ``/blog``, ``/experiments/{id}`` with a random experiment each
   time, ``/compare`` with a random pair), C clients send R requests in all, concurrently,
   each over its own keep-alive connection, after a warm-up; each request's latency is
   measured by the client. The client is a minimal HTTP/1.1 one on asyncio streams in this
   process: on a small machine the clients share the server's cores, and a full HTTP client
   (httpx, asyncio) spent 1.8 to 2.2 ms of CPU a request, this one 0.1 ms.

Prints p50, p95 and max latency, the throughput, the CPU time per request of the server
processes and of the client, and how the clients' connections were spread over the server
processes, per route (the goal: p95 under 100 ms with 20 clients and two server processes),
and the machine; ``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from codeclab.config import SAMPLE_CLIP, Settings
from codeclab.evaluate.bench import machine
from codeclab.media import load_clip, write_y4m
from codeclab.store.db import ExperimentStore
from codeclab.store.factory import open_artifact_store, open_experiment_store

PER_CAMPAIGN = 100
ROUTES = ("/", "/blog", "/experiments/{id}", "/compare?a={id}&b={other}")


def small_clip(directory: Path) -> Path:
    """A 96x64 window of the sample's first four frames, where cars move."""
    sample = load_clip(SAMPLE_CLIP)
    x, y, w, h = 112, 96, 96, 64
    window = [
        (
            np.ascontiguousarray(luma[y : y + h, x : x + w]),
            np.ascontiguousarray(u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2]),
            np.ascontiguousarray(v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2]),
        )
        for luma, u, v in sample.frames[:4]
    ]
    return write_y4m(directory / "cars_96x64.y4m", window, sample.fps)


def seed(home: Path, store: ExperimentStore) -> None:
    """The two experiments of a real campaign that the clones copy."""
    # imported here: a filled lab needs none of the campaign's pipeline to be served
    from codeclab.campaign import run_campaign

    clip = small_clip(home)
    settings = Settings(
        home=home, clips=[clip], iterations=2, qualities=[30, 70], baselines=["x265"]
    )
    run_campaign(settings, [load_clip(clip)], store, open_artifact_store(settings))


def fill(home: Path, experiments: int) -> tuple[list[str], float]:
    """The lab's experiment ids (filled now unless ``home`` has enough) and the fill time."""
    settings = Settings(home=home, database_url=None)
    store = open_experiment_store(settings.db_url, outbox_dir=settings.outbox_dir)
    total, _ = store.page(limit=1)
    started = time.perf_counter()
    if total < experiments:
        if total == 0:
            seed(home, store)
        real = store.list()[:2]
        sources = {r.program_sha256: store.source(r.program_sha256) or "" for r in real}
        done, _ = store.page(limit=1)
        first = real[0].created_at
        for n in range(done, experiments):
            campaign = f"bench-{n // PER_CAMPAIGN:04d}"
            if n % PER_CAMPAIGN == 0:
                store.add_campaign(campaign, "evolve", n, PER_CAMPAIGN, {})
            original = real[n % len(real)]
            store.save(
                original.model_copy(
                    update={
                        "experiment_id": f"{n:08x}-0000-4000-8000-bench0000000",
                        "campaign_id": campaign,
                        "iteration": n % PER_CAMPAIGN + 1,
                        "created_at": first + timedelta(seconds=n + 1),
                    }
                ),
                sources[original.program_sha256],
            )
    seconds = time.perf_counter() - started
    ids = [s.experiment_id for s in store.page(limit=experiments + 10)[1]]
    return ids, seconds


def serve(home: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {"CODECLAB_HOME": str(home), "CODECLAB_CONFIG": os.devnull}
    server = subprocess.Popen(
        [sys.executable, "-m", "codeclab", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/api/campaigns/current", timeout=5)
            return server, base
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the dashboard did not start") from None
            time.sleep(0.1)


class Connection:
    """One keep-alive HTTP/1.1 connection: a GET, its status and body, and nothing more."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base: str) -> Connection:
        host, port = urlsplit(base).hostname, urlsplit(base).port
        return cls(*await asyncio.open_connection(host, port))

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        if fields.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            body = await self.reader.readexactly(int(fields.get("content-length", 0)))
        return int(head[0].split()[1]), body

    def close(self) -> None:
        self.writer.close()


def server_processes(pid: int) -> dict[int, list[str]]:
    """The /proc stat fields (after the name) of the process ``pid`` and of its children
    (uvicorn's workers), by process id."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent
            found[int(stat.parent.name)] = fields
    return found


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by the process ``pid`` and its children."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum(
        (int(f[11]) + int(f[12])) / tick  # utime, stime
        for f in server_processes(pid).values()
    )


def connections_by_process(pid: int, port: int) -> list[int]:
    """How many established connections to ``port`` each of the server's processes holds,
    most first: the kernel spreads them over the processes' own listening sockets
    (``codeclab.web.serving``); with uvicorn's shared socket, the process that woke first
    accepted every connection waiting (20 of 20 in most runs here)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()  # local address, remote, state ("01": established), ...
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                established.add(f"socket:[{fields[9]}]")  # fields[9]: the socket's inode
    held = []
    for process in server_processes(pid):
        with contextlib.suppress(OSError):  # gone meanwhile
            fds = list(Path(f"/proc/{process}/fd").iterdir())
            held.append(sum(1 for fd in fds if _link(fd) in established))
    return sorted((n for n in held if n), reverse=True)


def _link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile
        return ""


async def load(
    base: str, route: str, ids: list[str], clients: int, requests: int, server: int
) -> dict:
    """``requests`` requests of ``route`` by ``clients`` concurrent clients: latencies, and
    the CPU time the server (process ``server``) and this client spent per request."""
    latencies: list[float] = []
    failures = 0
    queue = iter(range(requests))
    connections = [await Connection.open(base) for _ in range(clients)]

    async def one_client(connection: Connection) -> None:
        nonlocal failures
        for _ in queue:
            path = route.format(id=random.choice(ids), other=random.choice(ids))
            started = time.perf_counter()
            status, _ = await connection.get(path)
            latencies.append(time.perf_counter() - started)
            failures += status != 200

    for connection in connections:  # warm-up: templates, caches, each connection's worker
        await connection.get(route.format(id=ids[0], other=ids[1]))
    cpu = (server_cpu(server), time.process_time())
    started = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in connections))
    wall = time.perf_counter() - started
    server_s, client_s = server_cpu(server) - cpu[0], time.process_time() - cpu[1]
    spread = connections_by_process(server, urlsplit(base).port or 80)
    for connection in connections:
        connection.close()
    ms = sorted(1000 * t for t in latencies)
    return {
        "route": route,
        "requests": len(ms),
        "failures": failures,
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
        "per_second": round(len(ms) / wall, 1),
        "server_cpu_ms": round(1000 * server_s / len(ms), 2),
        "client_cpu_ms": round(1000 * client_s / len(ms), 2),
        "connections_by_process": spread,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=1000, help="per route")
    parser.add_argument("--routes", nargs="+", default=ROUTES, help=f"default: {' '.join(ROUTES)}")
    parser.add_argument("--home", type=Path, help="keep (and reuse) the filled lab here")
    parser.add_argument("--workers", type=int, default=2, help="codeclab serve --workers")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="codeclab-bench-web-")) / "lab"
    home.mkdir(parents=True, exist_ok=True)
    ids, fill_s = fill(home.resolve(), args.experiments)
    server, base = serve(home.resolve(), args.workers)
    try:
        results = [
            asyncio.run(load(base, route, ids, args.clients, args.requests, server.pid))
            for route in args.routes
        ]
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {
        "experiments": len(ids),
        "clients": args.clients,
        "server_workers": args.workers,
        "fill_seconds": round(fill_s, 1),
        "routes": results,
        "goal_p95_ms": 100,
        "machine": machine(),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"{len(ids)} experiments (filled in {fill_s:.0f} s), {args.clients} clients, "
        f"{args.workers} server processes"
    )
    for r in results:
        print(
            f"{r['route']:<26} p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  "
            f"max {r['max_ms']:7.1f} ms  {r['per_second']:6.1f}/s  "
            f"CPU/request: server {r['server_cpu_ms']:5.2f} ms, "
            f"client {r['client_cpu_ms']:5.2f} ms  "
            f"({r['requests']} requests, {r['failures']} failed; connections by server "
            f"process {'/'.join(map(str, r['connections_by_process']))})"
        )
    print(f"machine: {report['machine']}")


if __name__ == "__main__":
    main()
