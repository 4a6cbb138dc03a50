"""The offline designer: evaluates the seed programs, then mutates the best ones' parameters.

This is the minimal search that lets campaigns run without an LLM: tournament selection
over finished experiments (lower BD-rate against x265 is better), one or two ``@param``
mutations per child, and duplicate rejection by normalised-code hash before evaluation.
Deterministic under ``seed``. The reasoning it records says exactly what it changed and why.
"""

from __future__ import annotations

import ast
import hashlib
import random
from dataclasses import dataclass
from importlib import resources

from codeclab.design.params import mutate_value, parse_params, set_params
from codeclab.record import ExperimentRecord, Reasoning

MAX_TRIES = 50


@dataclass(frozen=True)
class Proposal:
    source: str
    name: str
    parent_sha256: str | None
    reasoning: Reasoning


def program_sha256(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def normalised_sha256(source: str) -> str:
    """Hash of the program's syntax tree: comments, spacing and quotes do not make it new."""
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
    """Lower is better: BD-rate (PSNR-Y) against x265; ``None`` when it was not measured."""
    if record.status != "ok":
        return None
    return record.headline()["bd_rate_x265"]


class EvolveDesigner:
    name = "evolve"

    def __init__(self, seed: int = 0, seeds: dict[str, str] | None = None) -> None:
        self.seed = seed
        self.seeds = seeds if seeds is not None else seed_programs()

    def propose(
        self, history: list[ExperimentRecord], sources: dict[str, str], iteration: int = 0
    ) -> Proposal:
        """The next program to try, given every finished experiment and their sources by sha.

        The random stream is derived from the seed and the iteration, so a resumed campaign
        proposes exactly what an uninterrupted one would have.
        """
        self.rng = random.Random(f"{self.seed}:{iteration}")
        tried = {normalised_sha256(src) for src in sources.values()}
        for name, source in self.seeds.items():
            if normalised_sha256(source) not in tried:
                return Proposal(
                    source,
                    name,
                    None,
                    Reasoning(
                        text=f"Evaluate the seed program {name} as it is, to anchor the search.",
                        hypothesis="a baseline for the mutations that follow",
                    ),
                )
        for _ in range(MAX_TRIES):
            parent = self._select(history)
            parent_source = sources[parent.program_sha256]
            params = parse_params(parent_source)
            if not params:
                continue
            chosen = self.rng.sample(sorted(params), k=min(len(params), self.rng.choice([1, 2])))
            values = {n: mutate_value(params[n], self.rng) for n in chosen}
            child = set_params(parent_source, values)
            if normalised_sha256(child) in tried:
                continue
            changes = [f"{n}: {params[n].value!r} -> {values[n]!r}" for n in chosen]
            score = fitness(parent)
            standing = f"BD-rate vs x265 {score:+.1f}%" if score is not None else "unscored"
            return Proposal(
                child,
                parent.program_name.split("~")[0] + "~" + "+".join(chosen).lower(),
                parent.program_sha256,
                Reasoning(
                    text=(
                        f"Parent {parent.program_name} ({standing}) won a tournament of finished "
                        f"experiments; mutate {', '.join(changes)} to probe whether the RD "
                        "trade-off improves there."
                    ),
                    hypothesis="a nearby parameter setting codes the same pictures in fewer bits",
                    mutations=changes,
                ),
            )
        raise RuntimeError("the designer found no new program to try (search space exhausted)")

    def _select(self, history: list[ExperimentRecord]) -> ExperimentRecord:
        """Tournament of three among successful experiments; unscored ones still get a chance."""
        pool = [r for r in history if r.status == "ok"]
        if not pool:
            raise RuntimeError("no successful experiment to mutate: every seed program failed")
        contenders = [self.rng.choice(pool) for _ in range(3)]
        return min(contenders, key=lambda r: (fitness(r) is None, fitness(r) or 0.0))
