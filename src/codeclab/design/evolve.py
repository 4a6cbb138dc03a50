"""The offline designer: a real program search over hand-written and composed codecs.

The seeds come first (the bundled hand-written programs, then the default composition of
:mod:`codeclab.design.compose`), each evaluated as it is. After that every proposal works on
one island of the shared :class:`~codeclab.design.database.ProgramDatabase` (iteration
``i`` -> island ``i % 3``) and picks a parent by tournament there (now and then the elite of
a random quality-diversity grid cell), then applies one operator:

* ``mutate``: one or two ``# @param`` values changed within their declared ranges;
* ``extrapolate``: when the parent beat its own parent by a parameter change, take the same
  step again (a cheap line search along a direction that just paid off);
* ``swap`` (composed programs): replace the component in one slot by another of that slot;
* ``crossover`` (composed programs): take some slots, with their parameter values, from a
  second composed parent (preferably from another island).

Children whose normalised code was already evaluated (or is pending) are rejected before
evaluation. Fitness is BD-rate (PSNR-Y) against x264, falling back to x265; lower is better.
The designer keeps no state between calls: everything is rebuilt from (seed, iteration,
history, sources), so a resumed campaign proposes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import random
import re
from dataclasses import dataclass
from importlib import resources

from codeclab.design import compose
from codeclab.design.components import SLOTS, choices
from codeclab.design.database import Entry, ProgramDatabase
from codeclab.design.params import mutate_value, parse_params, set_params
from codeclab.record import ExperimentRecord, Reasoning

MAX_TRIES = 50
ISLANDS = 3
MIGRATE_EVERY = 6
# Operator odds for composed parents (hand-written ones only mutate or extrapolate).
P_SWAP = 0.25
P_CROSSOVER = 0.15
P_EXTRAPOLATE = 0.5
_CHANGE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*): (?P<old>\S+) -> (?P<new>\S+)$")


@dataclass(frozen=True)
class Proposal:
    source: str
    name: str
    parent_sha256: str | None
    reasoning: Reasoning


def program_sha256(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def normalised_sha256(source: str) -> str:
    """Hash of the program's syntax tree: comments, spacing and quotes do not make it new.

    Cached: the designer rebuilds its database from the whole history at every proposal."""
    try:
        return hashlib.sha256(ast.dump(ast.parse(source)).encode()).hexdigest()
    except SyntaxError:
        return program_sha256(source)


def seed_programs() -> dict[str, str]:
    """The bundled seed programs, by name, in a stable order."""
    folder = resources.files("codeclab.programs")
    return {
        entry.name.removesuffix(".py"): entry.read_text()
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".py") and not entry.name.startswith("_")
    }


def fitness(record: ExperimentRecord) -> float | None:
    """Lower is better: BD-rate (PSNR-Y) against x264, else x265; ``None`` if unmeasured."""
    if record.status != "ok":
        return None
    # Train clips only: holdout scores are the leaderboard's, never the designer's. Records
    # made before test sets existed have only the all-clip average.
    train = record.bd_rate_train if record.test_set is not None else record.bd_rate
    for encoder in ("x264", "x265"):
        bd = train.get(encoder, {}).get("psnr_y")
        if bd is not None and bd.value is not None:
            return bd.value
    return None


def _standing(entry: Entry) -> str:
    score = entry.fitness
    return f"BD-rate vs x264 {score:+.1f}%" if score is not None else "unscored"


def _base_name(name: str) -> str:
    return name.split("~")[0]


class EvolveDesigner:
    name = "evolve"

    def __init__(self, seed: int = 0, seeds: dict[str, str] | None = None) -> None:
        self.seed = seed
        if seeds is None:
            seeds = {**seed_programs(), "composed": compose.compose()}
        self.seeds = seeds

    def database(self, history: list[ExperimentRecord], sources: dict[str, str]):
        return ProgramDatabase.rebuild(
            history,
            sources,
            fitness,
            normalised_sha256,
            islands=ISLANDS,
            migrate_every=MIGRATE_EVERY,
        )

    def propose(
        self, history: list[ExperimentRecord], sources: dict[str, str], iteration: int = 0
    ) -> Proposal:
        """The next program to try, given every finished experiment and their sources by sha.

        The random stream is derived from the seed and the iteration and the database from
        the history, so a resumed campaign proposes exactly what an uninterrupted one would.
        """
        rng = random.Random(f"{self.seed}:{iteration}")
        db = self.database(history, sources)
        for name, source in self.seeds.items():
            if not db.is_duplicate(source):
                return Proposal(
                    source,
                    name,
                    None,
                    Reasoning(
                        text=f"Evaluate the seed program {name} as it is, to anchor the search.",
                        hypothesis="a baseline for the operators that follow",
                    ),
                )
        island = db.island_of(iteration)
        for _ in range(MAX_TRIES):
            parent, how = db.select(island, rng)
            if not parent.source:
                continue
            made = self._operate(db, parent, island, rng)
            if made is None:
                continue
            child, operator, changes, other = made
            if db.is_duplicate(child):
                continue
            return self._proposal(child, parent, how, operator, changes, other, island)
        raise RuntimeError("the designer found no new program to try (search space exhausted)")

    # -- operators ------------------------------------------------------------------------

    def _operate(self, db: ProgramDatabase, parent: Entry, island: int, rng: random.Random):
        composed = compose.parse_components(parent.source)
        roll = rng.random()
        if composed is not None and roll < P_SWAP:
            slot = rng.choice([s for s in SLOTS if len(choices(s)) > 1])
            name = rng.choice([c for c in choices(slot) if c != composed[slot]])
            child = compose.swap(parent.source, slot, name)
            return child, "swap", [f"{slot}: {composed[slot]} -> {name}"], None
        if composed is not None and roll < P_SWAP + P_CROSSOVER:
            other = db.select_other(
                island,
                rng,
                parent.sha256,
                lambda e: (
                    compose.parse_components(e.source) not in (None, composed)
                    and e.fitness is not None
                ),
            )
            if other is not None:
                theirs = compose.parse_components(other.source)
                differ = [s for s in SLOTS if theirs[s] != composed[s]]
                taken = set(rng.sample(differ, k=rng.randint(1, len(differ))))
                child = compose.crossover(parent.source, other.source, taken)
                changes = [f"{s}: {composed[s]} -> {theirs[s]}" for s in SLOTS if s in taken]
                return child, "crossover", changes, other
        step = self._extrapolation(db, parent) if rng.random() < P_EXTRAPOLATE else None
        if step:
            child = set_params(parent.source, {n: new for n, (_, new) in step.items()})
            changes = [f"{n}: {old!r} -> {new!r}" for n, (old, new) in step.items()]
            return child, "extrapolate", changes, None
        params = parse_params(parent.source)
        if not params:
            return None
        chosen = rng.sample(sorted(params), k=min(len(params), rng.choice([1, 2])))
        values = {n: mutate_value(params[n], rng) for n in chosen}
        changes = [f"{n}: {params[n].value!r} -> {values[n]!r}" for n in chosen]
        return set_params(parent.source, values), "mutate", changes, None

    def _extrapolation(self, db: ProgramDatabase, parent: Entry) -> dict | None:
        """The parent's last parameter step taken once more, if that step improved fitness."""
        grand = db.entries.get(parent.record.parent_sha256 or "")
        if grand is None or parent.fitness is None or grand.fitness is None:
            return None
        if parent.fitness >= grand.fitness:
            return None
        params = parse_params(parent.source)
        step = {}
        for text in parent.record.reasoning.mutations:
            m = _CHANGE.match(text)
            if not m or m["name"] not in params:
                return None
            param = params[m["name"]]
            try:
                old, new = float(m["old"]), float(m["new"])
            except ValueError:
                return None
            if param.kind == "choice" or param.low is None or param.high is None:
                return None
            target = min(param.high, max(param.low, new + (new - old)))
            target = int(round(target)) if param.kind == "int" else round(target, 4)
            if target == param.value:
                return None
            step[param.name] = (param.value, target)
        return step or None

    # -- the record -----------------------------------------------------------------------

    def _proposal(self, child, parent, how, operator, changes, other, island) -> Proposal:
        tag = {
            "mutate": "+".join(c.split(":")[0] for c in changes).lower(),
            "extrapolate": "x" + "+".join(c.split(":")[0] for c in changes).lower(),
            "swap": changes[0].split(" -> ")[-1] if changes else "swap",
            "crossover": "cross",
        }[operator]
        parents = f"parent {parent.record.program_name} ({_standing(parent)}, {how})"
        if other is not None:
            parents += f" and second parent {other.record.program_name} ({_standing(other)})"
        why = {
            "mutate": "probe whether a nearby parameter setting improves the RD trade-off",
            "extrapolate": "the parent gained from this step over its own parent, so take the "
            "same step again",
            "swap": "try another component in that slot, keeping the evolved parameters",
            "crossover": "combine slots that worked in two different lineages",
        }[operator]
        comps = compose.parse_components(child)
        listing = (
            " Components: " + " ".join(f"{s}={n}" for s, n in comps.items()) + "." if comps else ""
        )
        return Proposal(
            child,
            f"{_base_name(parent.record.program_name)}~{tag}",
            parent.sha256,
            Reasoning(
                text=(
                    f"Operator {operator} on island {island}, grid cell {parent.cell}: "
                    f"{parents}; {', '.join(changes)}: {why}.{listing}"
                ),
                hypothesis="the changed program codes the same pictures in fewer bits at equal "
                "PSNR (lower BD-rate vs x264)",
                mutations=changes,
            ),
        )
