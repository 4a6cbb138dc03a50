"""Clean up after a kill: what a ``kill -9``ed lab left behind, and never anything else.

A campaign starts (or resumes) with a sweep, under its data directory's lock:

- the artifacts of experiments no record references: each process notes the experiment keys
  it writes in a journal before writing them (:class:`codeclab.store.artifacts.Journal`);
  the journals of dead processes (and this process's own, between campaigns) are read, and
  the keys of an experiment that is neither in the experiment store nor in the outbox
  (pending or set aside) are removed, with the half-written temporary files the dead process
  left beside them. Keys shared by content (``programs/``, decoders by program) are never
  removed: another lab may be writing the same one. An artifact store shared with labs in
  other data directories (S3) is safe: only keys this directory's dead processes wrote are
  considered, and an experiment id is used by one process only.
- the temporary directories of dead processes (sandbox work directories, VMAF and probe
  runs, rendered videos) in the lab's temporary root, and the baseline cache's unfinished
  entries; a live process's, of whichever data directory, stay.

When the experiment store cannot say whether an experiment exists, no artifact is removed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeclab import scratch
from codeclab.config import Settings
from codeclab.store.artifacts import (
    ArtifactError,
    ArtifactStore,
    Journal,
    experiment_of,
    journal_dir,
)
from codeclab.store.retry import remove_dead_waits

log = logging.getLogger(__name__)
SWEEPING = ".sweeping"  # a journal being swept (this process's own is renamed first)


@dataclass
class Swept:
    """What a sweep removed: files and directories, and their bytes."""

    count: int = 0
    bytes: int = 0

    def add(self, count: int, size: int) -> None:
        self.count += count
        self.bytes += size

    def line(self) -> str:
        return (
            f"swept {self.count} files and directories left by killed runs "
            f"({self.bytes / 1e6:.1f} MB)"
        )


def sweep(settings: Settings, store: Any, artifacts: ArtifactStore) -> Swept:
    """Remove what dead runs left (see the module's text); says so in one line if anything."""
    swept = Swept()
    swept.add(*_orphan_artifacts(journal_dir(settings.home), store, artifacts))
    swept.add(*scratch.remove_dead(scratch.root()))
    swept.add(*scratch.remove_dead(settings.cache_dir / "baselines", "."))
    remove_dead_waits(settings.home)  # killed while waiting for a store: not waiting now
    if swept.count:
        log.warning("%s", swept.line())
    return swept


def _orphan_artifacts(journals: Path, store: Any, artifacts: ArtifactStore) -> tuple[int, int]:
    """The journaled keys of experiments that no record references, removed."""
    count = size = 0
    local = getattr(artifacts, "root", None)  # a local store's directory (S3 has none)
    for journal in _sweepable(journals):
        keys = set(journal.read_text(encoding="utf-8").split())
        try:
            orphans = _unreferenced({experiment_of(k) for k in keys} - {None}, store)
        except Exception as exc:  # any store failure: cannot tell, so remove nothing
            log.warning("sweep skipped: cannot read the experiment store: %s", exc)
            return count, size
        for key in sorted(keys):
            if local is not None:  # the dead processes' half-written files beside it
                found, freed = scratch.remove_dead((local / key).parent, ".tmp")
                count, size = count + found, size + freed
            if experiment_of(key) in orphans:
                try:
                    freed = artifacts.delete(key)
                except ArtifactError as exc:
                    log.warning("sweep skipped: %s", exc)
                    return count, size  # the journal stays for the next sweep
                if freed is not None:
                    count, size = count + 1, size + freed
        journal.unlink()
    return count, size


def _sweepable(journals: Path) -> list[Path]:
    """Journals of dead processes, and this process's own (renamed aside first, so that
    what it writes from now on goes to a fresh journal)."""
    me = scratch.owner()
    found = []
    try:
        names = sorted(os.listdir(journals))
    except FileNotFoundError:
        return []
    for name in names:
        tag = name.split(Journal.SUFFIX)[0]
        path = journals / name
        if tag == me and not name.endswith(SWEEPING):
            aside = path.with_name(name + SWEEPING)
            os.replace(path, aside)
            found.append(aside)
        elif tag == me or scratch.is_dead(tag):
            found.append(path)
    return found


def _unreferenced(ids: set[str], store: Any) -> set[str]:
    """The experiments among ``ids`` that neither the store nor its outbox holds."""
    kept = _outbox_text(Path(store.outbox_dir))
    return {i for i in ids if i not in kept and store.get(i) is None}


def _outbox_text(outbox: Path) -> str:
    """Every entry of the outbox, pending or set aside, as raw text: an id found there is
    referenced (an entry cut short by a kill still names its experiment)."""
    texts = []
    for folder in (outbox, outbox / "rejected"):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
            except FileNotFoundError:
                continue  # written to the store meanwhile
    return "\n".join(texts)
