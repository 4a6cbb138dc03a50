"""A program's version history: its ancestors, from parent to parent, with their experiments.

Each step is two small store queries (the program's parent, the newest experiments that ran
it), never a read of every record; the walk stops at a seed, at a program the store does not
hold, or after :data:`MAX_GENERATIONS` (the page says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codeclab.record import ExperimentRecord
from codeclab.store.summary import ProgramRun

MAX_GENERATIONS = 30
RUNS_SHOWN = 5


@dataclass
class Ancestor:
    program_sha256: str
    name: str | None = None  # None: the store does not hold this program
    runs: list[ProgramRun] = field(default_factory=list)  # newest first, at most RUNS_SHOWN
    more: bool = False  # older runs exist


@dataclass
class Lineage:
    ancestors: list[Ancestor]
    truncated: bool  # the walk stopped at MAX_GENERATIONS, not at a seed


def lineage(store, record: ExperimentRecord) -> Lineage:
    """``record``'s program first, then its parent, its parent's parent, ..."""
    ancestors: list[Ancestor] = []
    current: str | None = record.program_sha256
    seen: set[str] = set()
    while current is not None and current not in seen:
        if len(ancestors) == MAX_GENERATIONS:
            return Lineage(ancestors, truncated=True)
        seen.add(current)
        program = store.program(current)
        runs = store.runs(current, RUNS_SHOWN + 1)
        ancestors.append(
            Ancestor(
                current,
                program.name if program else None,
                runs[:RUNS_SHOWN],
                more=len(runs) > RUNS_SHOWN,
            )
        )
        parent = record.parent_sha256 if len(ancestors) == 1 else None
        current = parent or (program.parent_sha256 if program else None)
    return Lineage(ancestors, truncated=False)
