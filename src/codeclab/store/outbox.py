"""A durable outbox for finished experiments a store could not take, whatever the store.

One JSON file per experiment (``{id}.json``, written atomically), holding the record and
its program's source. The store keeps an experiment here when it is down or refuses the
write, and flushes the outbox when it is back: each kept experiment is written once (the
stores' writes are idempotent by experiment id), then its file is removed. An experiment
the store rejects for good moves to ``rejected/`` and stays there for a person to look at.

Nothing here knows a backend: the store passes its write and says which of its errors
mean "down".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from codeclab import scratch
from codeclab.errors import one_line
from codeclab.record import ExperimentRecord

log = logging.getLogger(__name__)


def default_outbox_dir() -> Path:
    """``$CODECLAB_HOME/outbox`` (``codeclab-data/outbox`` without the variable)."""
    return Path(os.environ.get("CODECLAB_HOME", "codeclab-data")) / "outbox"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one.

    The temporary file is named for this process (:func:`scratch.make_file`): what a kill
    leaves of it, a later :class:`Outbox` removes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = scratch.make_file(path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Outbox:
    """Experiments kept in ``directory`` until their store takes them.

    ``store`` names the store (safe to print); it is recorded with each entry. Opening it
    removes the temporary files of dead processes: entries a kill cut short, which never
    became entries (the experiment was not kept: its campaign runs it again).
    """

    def __init__(self, directory: Path | str, store: str = "") -> None:
        self.directory = Path(directory)
        self.store = store
        scratch.remove_dead(self.directory, ".tmp")

    def keep(self, record: ExperimentRecord, source: str, reason: str) -> Path:
        """Keep one experiment (replacing an earlier copy of it); raises OSError."""
        path = self.directory / f"{record.experiment_id}.json"
        entry = {
            "record": record.model_dump(mode="json"),
            "source": source,
            "url": self.store,
            "error": reason,
        }
        write_atomically(path, json.dumps(entry))
        return path

    def pending(self) -> list[Path]:
        """The kept experiments, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("[!.]*.json"), key=_age)  # not a file being written

    def flush(
        self,
        write: Callable[[ExperimentRecord, str], None],
        *,
        failures: type[BaseException] | tuple[type[BaseException], ...],
        is_down: Callable[[BaseException], bool],
        rejected: type[BaseException] | tuple[type[BaseException], ...] = (),
        describe: Callable[[BaseException], str] = one_line,
    ) -> int:
        """Write the kept experiments with ``write(record, source)``; returns how many.

        ``write`` must be idempotent (an experiment already stored is no error: another
        process may have flushed it). When it raises one of ``rejected`` the store refuses
        the experiment for good: the entry moves to ``rejected/``. One of ``failures`` for
        which ``is_down`` holds stops the flush quietly (the store is still away; the
        caller's own read or write reports it); another failure leaves that entry for later
        and goes on with the rest. Anything else propagates. Warnings give ``describe(exc)``:
        one line, never a statement with its parameters (the program's source).
        """
        written = 0
        for path in self.pending():
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
                record = ExperimentRecord.model_validate(entry["record"])
                source = entry["source"]
            except FileNotFoundError:
                continue  # another process flushed it
            except (OSError, ValueError, KeyError) as exc:
                log.warning("unreadable outbox entry %s: %s", path, one_line(exc))
                continue
            try:
                write(record, source)
            except rejected as exc:
                self._set_aside(path, describe(exc))
                continue
            except failures as exc:
                if is_down(exc):
                    return written  # the store is still away: keep the rest for later
                log.warning("outbox entry %s not written yet: %s", path.name, describe(exc))
                continue  # this one is refused (for now); the others may go through
            path.unlink(missing_ok=True)
            written += 1
        return written

    def _set_aside(self, path: Path, reason: str) -> None:
        target = self.directory / "rejected"
        target.mkdir(exist_ok=True)
        try:
            os.replace(path, target / path.name)
        except FileNotFoundError:
            return  # another process dealt with it
        log.warning("outbox entry %s rejected by the store: %s", path.name, reason)


def _age(path: Path) -> tuple[float, str]:
    try:
        return path.stat().st_mtime, path.name
    except FileNotFoundError:  # flushed by another process while listing
        return 0.0, path.name
