"""The offline designer: a real program search over hand-written and composed codecs.

The seeds come first (the bundled hand-written programs, then the default composition of
:mod:`codeclab.design.compose`), each evaluated as it is. After that every proposal works on
one island of the shared :class:`~codeclab.design.database.ProgramDatabase` (iteration
``i`` -> island ``i % 3``) and picks a parent by tournament there (now and then the elite of
a random quality-diversity grid cell), then applies one operator:

* ``mutate``: one (now and then two) ``# @param`` values changed within their declared
  ranges, guided by :class:`~codeclab.design.memory.ParamMemory`: parameters are drawn by
  what their past changes did (untried first, paying ones favoured, inert ones rarely),
  moved the way their last informative change points, by a step that grows after gains and
  shrinks after losses; parameters whose "gains" would be measurement effects (the global
  quantiser scale, the chroma step ratio) are never searched, see
  :mod:`codeclab.design.memory`;
* ``combine``: improving parameter steps and component swaps that paid off, found in
  different lineages of the parent's family, applied together to a parent that has none of
  them yet;
* ``extrapolate``: when the parent beat its own parent by a parameter change, take the same
  step again (a cheap line search along a direction that just paid off);
* ``swap`` (composed programs): replace the component in one slot by another of that slot.
  While the family has *upgrades* it never tried (a more capable component of a slot, by
  :data:`~codeclab.design.components.TIERS`: adaptive transform sizes, partitions, B
  pictures...), it screens those first, at swap odds of at least ``P_SCREEN``: a library
  is the larger search space, and a tool either pays on this content or it does not; after
  that any component, untried ones first, ones whose swaps paid off favoured (the same
  memory);
* ``crossover`` (composed programs): take some slots, with their parameter values, from a
  second composed parent (preferably from another island).

The odds of ``swap``, ``crossover``, ``combine`` and ``extrapolate`` adapt to how often
each operator's children have beaten their parents so far (adaptive operator selection:
the base odds times twice the success rate, from a uniform prior), so operators that keep
failing on this problem give way to ``mutate`` and to those that pay.

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
from collections import Counter
from dataclasses import dataclass
from importlib import resources

from codeclab.design import compose
from codeclab.design.components import SLOTS, TIERS, choices
from codeclab.design.database import Entry, ProgramDatabase
from codeclab.design.memory import (
    INERT,
    UNSEARCHED,
    ParamMemory,
    parse_changes,
    parse_swaps,
)
from codeclab.design.params import parse_params, set_params
from codeclab.record import ExperimentRecord, Reasoning

MAX_TRIES = 50
ISLANDS = 3
MIGRATE_EVERY = 6
# Operator odds for composed parents (hand-written ones only mutate or extrapolate).
P_SWAP = 0.25
# Swap odds while a composed family still has upgrades it never tried (screening).
P_SCREEN = 0.6
P_CROSSOVER = 0.15
P_COMBINE = 0.35
P_EXTRAPOLATE = 0.5
# The fitness "gained" by a child that failed or went unscored, for the parameter memory.
FAILED_GAIN = -100.0
_OPERATOR = re.compile(r"^Operator (?P<name>\w+) on island")


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
    """Lower is better: BD-rate (PSNR-Y) against x264, else x265; ``None`` if unmeasured, or
    if the evaluation cascade stopped it after its screen (it was no match for its parent)."""
    if record.stage == "screen":
        return None
    return train_bd_rate(record)


def train_bd_rate(record: ExperimentRecord) -> float | None:
    """The mean BD-rate (PSNR-Y) of the train clips against x264, else x265."""
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


def operator_odds(db: ProgramDatabase) -> dict[str, float]:
    """Each optional operator's odds: its base odds times twice its success rate so far
    (children that beat their parent by more than noise, with a uniform prior)."""
    wins: Counter[str] = Counter()
    tries: Counter[str] = Counter()
    for entry in db.entries.values():
        parent = db.entries.get(entry.record.parent_sha256 or "")
        found = _OPERATOR.match(entry.record.reasoning.text)
        if parent is None or parent.fitness is None or not found:
            continue
        tries[found["name"]] += 1
        wins[found["name"]] += entry.fitness is not None and entry.fitness < parent.fitness - INERT
    base = {
        "swap": P_SWAP,
        "crossover": P_CROSSOVER,
        "combine": P_COMBINE,
        "extrapolate": P_EXTRAPOLATE,
    }
    return {op: p * 2 * (1 + wins[op]) / (2 + tries[op]) for op, p in base.items()}


def upgrades(parts: dict[str, str]) -> list[tuple[str, str]]:
    """The swaps that put a more capable component (a higher tier) into a slot of ``parts``."""
    return [
        (slot, name)
        for slot in SLOTS
        for name in choices(slot)
        if TIERS[slot][name] > TIERS[slot][parts[slot]]
    ]


def _listed(steps: dict[str, tuple]) -> list[str]:
    return [f"{n}: {old!r} -> {new!r}" for n, (old, new) in steps.items()]


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
        memory = self.memory(db)
        odds = operator_odds(db)
        for _ in range(MAX_TRIES):
            parent, how = db.select(island, rng)
            if not parent.source:
                continue
            made = self._operate(db, memory, odds, parent, island, rng)
            if made is None:
                continue
            child, operator, changes, other = made
            if db.is_duplicate(child):
                continue
            return self._proposal(child, parent, how, operator, changes, other, island)
        raise RuntimeError("the designer found no new program to try (search space exhausted)")

    # -- operators ------------------------------------------------------------------------

    def _operate(
        self,
        db: ProgramDatabase,
        memory: ParamMemory,
        odds: dict[str, float],
        parent: Entry,
        island: int,
        rng: random.Random,
    ):
        composed = compose.parse_components(parent.source)
        roll = rng.random()
        family = _base_name(parent.record.program_name)
        untried = []
        if composed is not None:
            known = memory.stats(family)
            untried = [o for o in upgrades(composed) if f"{o[0]}={o[1]}" not in known]
        swap_odds = max(odds["swap"], P_SCREEN) if untried else odds["swap"]
        if composed is not None and roll < swap_odds:
            options = untried or [(s, c) for s in SLOTS for c in choices(s) if c != composed[s]]
            slot, name = memory.choose_swap(family, options, rng)
            child = compose.swap(parent.source, slot, name)
            return child, "swap", [f"{slot}: {composed[slot]} -> {name}"], None
        if composed is not None and roll < swap_odds + odds["crossover"]:
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
        params = parse_params(parent.source)
        combining = rng.random() < odds["combine"]
        steps = memory.combinable(family, params) if combining else {}
        swaps = memory.paying_swaps(family, composed) if combining and composed else []
        if steps or swaps:
            base = parent.source
            for slot, name in swaps:
                base = compose.swap(base, slot, name)
            known = parse_params(base)
            steps = {n: step for n, step in steps.items() if n in known}
            child = set_params(base, {n: new for n, (_, new) in steps.items()})
            if len(steps) > 1 and db.is_duplicate(child):  # all together was tried: a part
                steps = dict(rng.sample(sorted(steps.items()), k=rng.randint(1, len(steps) - 1)))
                child = set_params(base, {n: new for n, (_, new) in steps.items()})
            changes = [f"{slot}: {composed[slot]} -> {name}" for slot, name in swaps]
            return child, "combine", changes + _listed(steps), None
        step = self._extrapolation(db, parent) if rng.random() < odds["extrapolate"] else None
        if step:
            child = set_params(parent.source, {n: new for n, (_, new) in step.items()})
            return child, "extrapolate", _listed(step), None
        chosen = memory.choose(family, params, rng)
        values = {n: memory.step(family, params[n], rng) for n in chosen}
        values = {n: v for n, v in values.items() if v != params[n].value}
        if not values:
            return None
        changes = [f"{n}: {params[n].value!r} -> {v!r}" for n, v in values.items()]
        return set_params(parent.source, values), "mutate", changes, None

    def memory(self, db: ProgramDatabase) -> ParamMemory:
        """Every parameter-only or swap-only child's gain over its parent, by family (the
        seed's name)."""
        memory = ParamMemory()
        for entry in sorted(db.entries.values(), key=lambda e: e.record.iteration or 0):
            parent = db.entries.get(entry.record.parent_sha256 or "")
            if parent is None or parent.fitness is None:
                continue
            gain = FAILED_GAIN if entry.fitness is None else parent.fitness - entry.fitness
            family = _base_name(entry.record.program_name)
            mutations = entry.record.reasoning.mutations
            changes = parse_changes(mutations)
            if changes is not None:
                memory.add(family, changes, gain)
            elif (swaps := parse_swaps(mutations)) is not None:
                memory.add_swaps(family, swaps, gain)
        return memory

    def _extrapolation(self, db: ProgramDatabase, parent: Entry) -> dict | None:
        """The parent's last parameter step taken once more, if that step improved fitness."""
        grand = db.entries.get(parent.record.parent_sha256 or "")
        if grand is None or parent.fitness is None or grand.fitness is None:
            return None
        if parent.fitness >= grand.fitness:
            return None
        changes = parse_changes(parent.record.reasoning.mutations)
        if changes is None:
            return None
        params = parse_params(parent.source)
        step = {}
        for name, (old, new) in changes.items():
            param = params.get(name)
            if param is None or param.kind == "choice" or name in UNSEARCHED:
                return None
            assert param.low is not None and param.high is not None
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
            "combine": "comb",
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
            "combine": "these changes each paid off in another lineage of this family; together "
            "they may add up",
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
