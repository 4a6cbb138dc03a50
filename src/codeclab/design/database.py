"""The program database both designers share: islands, a quality-diversity grid, lineage,
and duplicate rejection by normalised-code hash before anything is evaluated.

It holds no state of its own: :meth:`ProgramDatabase.rebuild` replays the campaign's history
(records in iteration order, plus sources by sha256), so a resumed campaign sees exactly the
database an uninterrupted one would have. The rules it replays:

* islands: the proposal of iteration ``i`` works on island ``i % islands``; its program
  joins that island. Seeds join the island of their iteration too.
* migration: after every ``migrate_every`` programs, each island's best is copied into the
  next island (a ring), so good material spreads while islands keep their own lineages.
* grid: every scored program falls in a cell (bitrate class = octave of its mean kbps,
  complexity class = source size in ``size_bucket`` byte steps); each cell keeps its best.
* parent selection: a tournament within the island (lower fitness wins; unscored ones rank
  after scored ones), and now and then the elite of a random grid cell whose elite is
  within ``rescue`` points of the best, to keep exploring.
  An island whose best trails the global best by more than ``rescue`` BD-rate points holds
  its tournaments over the whole database: a parameter step moves a BD-rate by about a point
  at most, so a family that far behind (a hopeless seed, or a hand-written program the
  composed ones have overtaken) will not catch up within a campaign, and polishing it would
  spend the iterations the leading material needs. (At 25 points, inter_mc 12 points
  behind took 13 of 27 iterations on the benchmark crop.)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from codeclab.record import ExperimentRecord

Fitness = Callable[[ExperimentRecord], "float | None"]


@dataclass(frozen=True)
class Entry:
    """One evaluated program as the database sees it."""

    record: ExperimentRecord
    source: str
    normalised: str
    fitness: float | None
    island: int
    cell: tuple[int, int] | None

    @property
    def sha256(self) -> str:
        return self.record.program_sha256

    @property
    def rank(self) -> tuple[bool, float]:
        return (self.fitness is None, self.fitness if self.fitness is not None else 0.0)


@dataclass
class ProgramDatabase:
    fitness: Fitness
    normaliser: Callable[[str], str]
    islands: int = 3
    migrate_every: int = 6
    size_bucket: int = 8192
    tournament: int = 3
    explore: float = 0.2
    rescue: float = 5.0
    entries: dict[str, Entry] = field(default_factory=dict)
    members: list[list[str]] = field(default_factory=list)
    grid: dict[tuple[int, int], str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    migrations: list[tuple[int, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.members:
            self.members = [[] for _ in range(self.islands)]

    # -- building -------------------------------------------------------------------------

    @classmethod
    def rebuild(
        cls,
        history: list[ExperimentRecord],
        sources: dict[str, str],
        fitness: Fitness,
        normaliser: Callable[[str], str],
        **options,
    ) -> ProgramDatabase:
        """The database after ``history``, replayed in iteration order (ties: as listed)."""
        db = cls(fitness, normaliser, **options)
        ordered = sorted(enumerate(history), key=lambda p: (p[1].iteration or 0, p[0]))
        for count, (_, record) in enumerate(ordered, start=1):
            db.add(record, sources.get(record.program_sha256, ""))
            if count % db.migrate_every == 0:
                db.migrate(count)
        for source in sources.values():  # pending proposals count as seen, too
            db.seen.add(normaliser(source))
        return db

    def island_of(self, iteration: int | None) -> int:
        return (iteration or 0) % self.islands

    def cell_of(self, record: ExperimentRecord) -> tuple[int, int] | None:
        """(bitrate class, complexity class), or ``None`` for programs without results."""
        if record.status != "ok" or not record.results:
            return None
        kbps = sum(r.kbps for r in record.results) / len(record.results)
        return (
            int(math.floor(math.log2(max(kbps, 1e-3)))),
            record.source_bytes // self.size_bucket,
        )

    def add(self, record: ExperimentRecord, source: str) -> Entry:
        normalised = self.normaliser(source) if source else record.program_sha256
        self.seen.add(normalised)
        entry = Entry(
            record,
            source,
            normalised,
            self.fitness(record),
            self.island_of(record.iteration),
            self.cell_of(record),
        )
        self.entries[entry.sha256] = entry
        if record.status == "ok" and entry.sha256 not in self.members[entry.island]:
            self.members[entry.island].append(entry.sha256)
        if entry.cell is not None and entry.fitness is not None:
            holder = self.grid.get(entry.cell)
            if holder is None or entry.rank < self.entries[holder].rank:
                self.grid[entry.cell] = entry.sha256
        return entry

    def migrate(self, when: int) -> None:
        """Copy each island's best (scored) program into the next island of the ring."""
        bests = [self.best(island) for island in range(self.islands)]
        for island, best in enumerate(bests):
            target = (island + 1) % self.islands
            if best is not None and best.sha256 not in self.members[target]:
                self.members[target].append(best.sha256)
                self.migrations.append((when, target, best.sha256))

    # -- queries --------------------------------------------------------------------------

    def is_duplicate(self, source: str) -> bool:
        """True when a program with the same normalised code was evaluated or is pending."""
        return self.normaliser(source) in self.seen

    def best(self, island: int | None = None) -> Entry | None:
        pool = [
            self.entries[s]
            for s in (self.members[island] if island is not None else list(self.entries))
            if self.entries[s].fitness is not None
        ]
        return min(pool, key=lambda e: e.rank) if pool else None

    def lineage(self, sha256: str) -> list[str]:
        """The chain of parent hashes from ``sha256`` back to its seed (nearest first)."""
        chain, current = [], self.entries.get(sha256)
        while current is not None and current.record.parent_sha256:
            parent = current.record.parent_sha256
            if parent in chain:
                break
            chain.append(parent)
            current = self.entries.get(parent)
        return chain

    def select(self, island: int, rng: random.Random) -> tuple[Entry, str]:
        """A parent for ``island`` and how it was picked ("tournament" or "grid cell ...")."""
        best = self.best()
        if self.grid and rng.random() < self.explore:
            cell = rng.choice(self.live_cells(best))
            return self.entries[self.grid[cell]], f"elite of random grid cell {cell}"
        pool = [self.entries[s] for s in self.members[island]]
        if not pool:
            pool = [e for e in self.entries.values() if e.record.status == "ok"]
        mine = self.best(island)
        if best and mine and mine.fitness - best.fitness > self.rescue:
            pool = [e for e in self.entries.values() if e.record.status == "ok"]
        if not pool:
            raise RuntimeError("no successful experiment to build on: every seed program failed")
        contenders = [rng.choice(pool) for _ in range(min(self.tournament, len(pool)))]
        return min(contenders, key=lambda e: e.rank), f"tournament of {len(contenders)}"

    def live_cells(self, best: Entry | None) -> list[tuple[int, int]]:
        """The grid cells worth exploring: those whose elite is within ``rescue`` points of
        the best program (by the same reasoning as the rescue of islands)."""
        cells = sorted(self.grid)
        if best is None or best.fitness is None:
            return cells
        return [
            c for c in cells if self.entries[self.grid[c]].fitness <= best.fitness + self.rescue
        ]

    def select_other(
        self, island: int, rng: random.Random, exclude: str, where: Callable[[Entry], bool]
    ) -> Entry | None:
        """A second parent (for crossover) satisfying ``where``, preferring other islands."""
        pool = [e for e in self.entries.values() if e.sha256 != exclude and e.record.status == "ok"]
        pool = [e for e in pool if where(e)]
        if not pool:
            return None
        contenders = [rng.choice(pool) for _ in range(min(self.tournament, len(pool)))]
        return min(contenders, key=lambda e: e.rank)
