"""The soak bench's faults: the servers it stops and starts, and the processes it kills.

Everything here acts on loopback servers and processes of the bench's own:

- ``db``: the PostgreSQL server stopped (``pg_ctl stop -m fast``), started again later.
- ``s3``: the S3 server (moto, on a thread of the bench) stopped: its port refuses
  connections. moto keeps its buckets in this process's memory, so a restart on the same
  port finds every object again, as a persistent S3-compatible store (MinIO, R2) would; a
  separate ``moto_server`` process would come back empty, which no real store does.
- ``kill``: ``kill -9`` of the campaign process (the bench resumes it with ``--resume``).
- ``worker``: ``kill -9`` of one of the campaign's pool processes (``--workers 2``).
- ``disk``: the data directory (a tmpfs of its own) filled by a ballast file, later removed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

KINDS = ("db", "s3", "kill", "worker", "disk")
BUCKET = "soak-lab"
CREDENTIALS = {  # moto takes any; the lab gets them by its environment
    "AWS_ACCESS_KEY_ID": "soak-access-key",
    "AWS_SECRET_ACCESS_KEY": "soak-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class Fault:
    """One injected fault: when it began and ended (bench seconds) and what it did."""

    kind: str
    start: float
    end: float
    detail: str
    injected: bool = True


class S3Server:
    """moto's S3 server on a fixed loopback port, stopped and started by the bench."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._make = ThreadedMotoServer
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        self.port = self.server.get_host_and_port()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        wait_for_port(self.port)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = self._make(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        wait_for_port(self.port)

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


class Tmpfs:
    """A small tmpfs mounted as the lab's data directory, so filling it is quick and safe."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"cannot mount a tmpfs at {path} (root needed): {done.stderr}")
        self.ballast = path / "soak-ballast.bin"

    def fill(self) -> int:
        """Write the ballast until the disk is full; returns the bytes written."""
        written, chunk = 0, b"\0" * (1 << 20)
        with open(self.ballast, "wb", buffering=0) as out:
            while True:
                try:
                    written += out.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    return written + self._top_up(out)

    def _top_up(self, out) -> int:
        """The last partial megabyte, in small pieces, so not one byte is left."""
        written = 0
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            with contextlib.suppress(OSError):
                while True:
                    written += out.write(b"\0" * size)
        return written

    def empty(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if _stat(int(entry.name))[1] == pid:
                    found.append(int(entry.name))
    return found


def _stat(pid: int) -> tuple[str, int, int]:
    """(state, parent pid, session id) from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def pool_workers(lab_pid: int) -> list[int]:
    """The campaign's pool processes (spawned children), busiest first: one with its own
    children (a sandbox at work) is in the middle of an experiment."""
    workers = [
        pid
        for pid in children(lab_pid)
        if "multiprocessing" in cmdline(pid) and "resource_tracker" not in cmdline(pid)
    ]
    return sorted(workers, key=lambda pid: -len(children(pid)))


def session_processes(sessions: set[int]) -> list[int]:
    """Live processes in any of ``sessions`` (each lab starts a session of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                state, _, session = _stat(int(entry.name))
                if session in sessions and state != "Z":
                    found.append(int(entry.name))
    return found


def kill9(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True
