"""A campaign started from the dashboard: ``codeclab run`` as a child process.

The child runs with the dashboard's settings (passed as ``CODECLAB_*`` variables, with no
configuration file of its own to read) and the dashboard's data directory, so it takes the
same campaign lock a campaign started in a terminal takes. The admin token never reaches it:
it is removed from the child's environment and is not among the settings passed. Stopping
sends SIGTERM to the child's process group (the campaign and its workers); the kernel then
releases the lock, and the campaign continues with ``--resume``. A campaign started
elsewhere (a terminal, or this dashboard before a restart) is reported from the lock file,
and left for whoever started it to stop. While a running campaign waits for a store it
cannot reach, the state says since when, from the campaign's status file (not the
database, which may be what is down).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from codeclab.config import Settings
from codeclab.store.retry import current_wait

ENV_PREFIX = "CODECLAB_"
NOT_PASSED = frozenset({"admin_token"})
STOP_GRACE_S = 20.0  # after SIGTERM, before SIGKILL


class CampaignState(BaseModel):
    """Whether a campaign holds the data directory, and who started it."""

    running: bool
    pid: int | None = None
    started_by: str | None = Field(
        None, description="'dashboard', or 'another process' (a terminal, another dashboard)"
    )
    started_at: datetime | None = None
    iterations: int | None = None
    resume: bool | None = None
    exit_code: int | None = Field(None, description="of the dashboard's last campaign, once over")
    log: str | None = Field(None, description="where the dashboard's campaign writes its output")
    waiting_since: datetime | None = Field(
        None, description="the campaign waits for a store it cannot reach, since then"
    )
    waiting_for: str | None = Field(None, description="why it waits, in one line")


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of ``codeclab run``: this one, with every setting of the dashboard
    as a ``CODECLAB_*`` variable (lists and maps as JSON) in place of the variables of the
    same names, and no admin token."""
    names = {f"{ENV_PREFIX}{name}".upper() for name in [*Settings.model_fields, "config"]}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    dumped = settings.model_dump(mode="json", exclude=set(NOT_PASSED))
    for name, value in dumped.items():
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr):  # dumped as stars
            value = secret.get_secret_value()
        if name == "home":
            value = str(settings.home.resolve())
        if value is not None:
            text = value if isinstance(value, str) else json.dumps(value)
            env[f"{ENV_PREFIX}{name.upper()}"] = text
    env[f"{ENV_PREFIX}CONFIG"] = os.devnull  # read no codeclab.toml: the settings are here
    return env


def lock_holder(home: Path) -> int | None:
    """The live process named in ``home/campaign.lock`` (the campaign writes its pid there
    while it holds the lock), or None. Read only: taking the lock to test it could make a
    campaign starting at that moment fail."""
    try:
        text = (home / "campaign.lock").read_text().strip()
    except OSError:
        return None
    if not text.startswith("pid "):
        return None
    try:
        pid = int(text.removeprefix("pid "))
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid


class CampaignProcess:
    """The dashboard's campaign: at most one at a time, and none while another holds home."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.log = self.home / "dashboard-campaign.log"
        self._child: subprocess.Popen[bytes] | None = None
        self._started: dict[str, Any] = {}
        self._lock = threading.Lock()

    def state(self) -> CampaignState:
        with self._lock:
            return self._state()

    def _state(self) -> CampaignState:
        child = self._child
        if child is not None and child.poll() is None:
            return CampaignState(
                running=True,
                pid=child.pid,
                started_by="dashboard",
                log=str(self.log),
                **self._started,
                **self._waiting(),
            )
        holder = lock_holder(self.home)
        if holder is not None:
            return CampaignState(
                running=True, pid=holder, started_by="another process", **self._waiting()
            )
        if child is not None:
            return CampaignState(
                running=False, exit_code=child.returncode, log=str(self.log), **self._started
            )
        return CampaignState(running=False)

    def _waiting(self) -> dict[str, Any]:
        wait = current_wait(self.home)
        return {"waiting_since": wait.since, "waiting_for": wait.reason} if wait else {}

    def start(self, iterations: int, resume: bool) -> CampaignState:
        """Start ``codeclab run``; raises :class:`Busy` while a campaign runs."""
        with self._lock:
            current = self._state()
            if current.running:
                raise Busy(
                    f"a campaign is already running (pid {current.pid}, {current.started_by})"
                )
            command = [sys.executable, "-m", "codeclab", "run"]
            command += ["--resume"] if resume else ["--iterations", str(iterations)]
            self.home.mkdir(parents=True, exist_ok=True)
            with open(self.log, "ab") as log:
                self._child = subprocess.Popen(
                    command,
                    env=child_environment(self.settings),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop reaches its workers
                )
            self._started = {
                "started_at": datetime.now(UTC),
                "iterations": None if resume else iterations,
                "resume": resume,
            }
            return self._state()

    def stop(self) -> CampaignState:
        """SIGTERM to the dashboard's campaign (SIGKILL after a grace period); raises
        :class:`Busy` for a campaign the dashboard did not start, and :class:`Idle`."""
        with self._lock:
            child = self._child
            if child is None or child.poll() is not None:
                holder = lock_holder(self.home)
                if holder is not None:
                    raise Busy(
                        f"the running campaign (pid {holder}) was not started by this dashboard: "
                        "stop it where it runs"
                    )
                raise Idle("no campaign is running")
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(child.pid, signal.SIGKILL)
                child.wait()
            deadline = time.monotonic() + 5  # its workers exit with it; the lock goes with them
            while lock_holder(self.home) is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            return self._state()


def _signal_group(pid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, signal_number)


class Busy(RuntimeError):
    """A campaign runs that this request cannot start over or stop."""


class Idle(RuntimeError):
    """No campaign runs."""
