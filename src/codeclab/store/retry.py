"""Waiting out a store outage instead of ending the campaign.

When the experiment store cannot be reached (:class:`StoreUnavailable`: server down,
connection lost, a read-only database; a finished experiment is then already kept in the
outbox) or the artifact store cannot be reached (:class:`ArtifactUnavailable`), the call is
tried again after 1 s, 2 s, 4 s, ... at most ``store_retry_cap_s`` apart, until it goes
through or ``store_give_up_s`` have passed since the outage began: then :class:`GaveUp`, in
one line, the finished experiments kept for ``--resume``. An outage is never recorded as
the program failing: the running experiment waits with it.

One line says that the lab waits (once per outage, not per try) and one that the store is
back. Meanwhile ``home/store-wait/{PID.STARTTIME}.json`` says since when, so the dashboard
can show it without the database, which may be what is down. A campaign wraps its stores in
:class:`WaitingStore`, so every call of theirs waits, in this one place. Pool workers wait
silently: the campaign's process, which has the console, says it for them
(:meth:`StoreWait.relay`), so an outage is one line however many workers meet it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from codeclab import scratch
from codeclab.config import Settings
from codeclab.errors import one_line
from codeclab.store.artifacts import ArtifactUnavailable
from codeclab.store.db import StoreUnavailable
from codeclab.store.outbox import write_atomically

WAIT_DIR = "store-wait"
FIRST_DELAY_S = 1.0
OUTAGES = (StoreUnavailable, ArtifactUnavailable)
T = TypeVar("T")


class GaveUp(RuntimeError):
    """A store stayed unreachable for longer than ``store_give_up_s``."""


class Wait(BaseModel):
    """What a waiting process writes for the dashboard: since when, and why."""

    since: datetime
    reason: str
    pid: int
    owner: str = ""  # PID.STARTTIME (codeclab.scratch.owner): a reused pid is not taken for it


def say_on_stderr(message: str) -> None:
    """Where a process without a console of its own says it waits."""
    print(message, file=sys.stderr, flush=True)


def say_nothing(message: str) -> None:
    """A pool worker's voice: the campaign's process says it for the worker (relay)."""


class StoreWait:
    """Retries the calls that meet an outage; shared by the threads of one process."""

    def __init__(
        self,
        home: Path | str,
        *,
        cap_s: float,
        give_up_s: float,
        say: Callable[[str], None] = say_on_stderr,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.home = Path(home)
        self.path = self.home / WAIT_DIR / f"{scratch.owner()}.json"
        self.cap_s = cap_s
        self.give_up_s = give_up_s
        self.say = say
        self.sleep = sleep
        self._lock = threading.Lock()
        self._waiting = 0  # calls of this process waiting now: the first says so, the last ends
        self._began = 0.0
        self._relayed = False  # another process's wait said (see relay)

    @classmethod
    def for_settings(
        cls, settings: Settings, say: Callable[[str], None] = say_on_stderr
    ) -> StoreWait:
        return cls(
            settings.home,
            cap_s=settings.store_retry_cap_s,
            give_up_s=settings.store_give_up_s,
            say=say,
        )

    def call(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``action(*args, **kwargs)``, tried again while its store is unreachable."""
        began: float | None = None
        delay = min(FIRST_DELAY_S, self.cap_s)
        try:
            while True:
                try:
                    result = action(*args, **kwargs)
                except OUTAGES as exc:
                    if began is None:
                        began = time.monotonic()
                        self._begin(exc)
                    waited = time.monotonic() - began
                    if waited >= self.give_up_s:
                        raise GaveUp(
                            f"gave up waiting for the store after {_duration(waited)} "
                            f"(store_give_up_s): {_reason(exc)}; `codeclab run --resume` "
                            "continues when the store is back"
                        ) from exc
                    self.sleep(min(delay, self.give_up_s - waited))
                    delay = min(2 * delay, self.cap_s)
                    continue
                if began is not None:
                    self._end(back=True)
                    began = None
                return result
        finally:
            if began is not None:
                self._end(back=False)

    def _begin(self, exc: BaseException) -> None:
        with self._lock:
            self._waiting += 1
            if self._waiting > 1:
                return  # another call of this process said so already
            self._began = time.monotonic()
            since = datetime.now(UTC)
            wait = Wait(since=since, reason=_reason(exc), pid=os.getpid(), owner=scratch.owner())
            with contextlib.suppress(OSError):  # the status is for the dashboard only
                write_atomically(self.path, wait.model_dump_json())
        self.say(self._waiting_line(wait))

    def _waiting_line(self, wait: Wait) -> str:
        return (
            f"waiting for the store since {wait.since:%H:%M:%S} UTC, retrying for up to "
            f"{_duration(self.give_up_s)}: {wait.reason}"
        )

    def relay(self) -> None:
        """Say that another process of this lab (a pool worker, which says nothing itself)
        waits for the store: once while any does, unless this process waits too (it said
        so already). The workers' end of the wait shows in their next finished experiment."""
        if self._waiting:
            return
        other = current_wait(self.home, besides=os.getpid())
        if other is not None and not self._relayed:
            self.say(self._waiting_line(other))
        self._relayed = other is not None

    def _end(self, *, back: bool) -> None:
        with self._lock:
            self._waiting -= 1
            if self._waiting:
                return
            self.path.unlink(missing_ok=True)
            waited = time.monotonic() - self._began
        if back:
            self.say(f"the store is back after {_duration(waited)}: the campaign goes on")


class WaitingStore:
    """An experiment or artifact store whose every call waits out an outage."""

    def __init__(self, store: Any, wait: StoreWait) -> None:
        self._store = store
        self._wait = wait

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not the store's private parts (nor copy's probes)
            raise AttributeError(name)
        value = getattr(self._store, name)
        if not callable(value):
            return value
        return functools.partial(self._wait.call, value)


def current_wait(home: Path | str, *, besides: int | None = None) -> Wait | None:
    """The longest wait of a live process of ``home`` (a killed one's file is ignored), or
    of one other than ``besides``."""
    waits = []
    for path in (Path(home) / WAIT_DIR).glob("[!.]*.json"):
        try:
            wait = Wait.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours
        if wait.pid != besides and wait.owner and not scratch.is_dead(wait.owner):
            waits.append(wait)
    return min(waits, key=lambda w: w.since, default=None)


def remove_dead_waits(home: Path | str) -> None:
    """Remove the status files of processes killed while they waited (a sweep's job)."""
    for path in (Path(home) / WAIT_DIR).glob("[!.]*.json"):
        if scratch.is_dead(path.stem):
            path.unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    """The failure in one line, saying what is kept (a failed save names its outbox file)."""
    kept = "" if getattr(exc, "kept", None) else "; finished experiments are kept"
    return one_line(exc) + kept


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
