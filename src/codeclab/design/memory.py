"""What the search has learned about parameters: which changes paid off, and by how much.

Every evaluated child records its parameter changes (``NAME: old -> new``) and has a parent
with a fitness, so the history holds one *trial* per change: the fitness the child gained
over its parent. :class:`ParamMemory` folds those trials, per program family (the seed a
lineage descends from), into what a blind mutation lacks:

* which parameters matter: one that never changed a result (an *inert* one, e.g. the GOP
  size on a clip shorter than the GOP) is rarely tried again; untried ones come first (a
  name inert in another family less so, one that paid off there more so), and ones that
  paid off are favoured;
* which way and how far to move one: the direction of its last informative trial (the same
  way after a gain, the other way after a loss) and a step that grows after gains and
  shrinks after losses (a per-parameter 1/5th-success-rule step size);
* what to combine: improving steps found in different lineages, applied together to a
  parent that has none of them yet (:meth:`ParamMemory.combinable`);
* which components to swap in: a swap is a trial of ``slot=component``, weighted like a
  parameter (untried ones first, ones that paid off favoured).

Some parameters are never searched (:data:`UNSEARCHED`), because what the fitness (BD-rate
of luma PSNR) would reward there is a measurement effect, not a better codec:

* the operating point (global quantiser scale, quality spacing) scales every rung's
  quantiser alike, which slides the ladder along the program's own RD curve: that changes
  the bitrate interval BD-rate integrates over, not how well the program codes;
* the chroma quantiser ratio trades chroma quality, which the luma fitness cannot see, for
  bits it does count: the search would starve chroma (on the benchmark clip, raising it
  from 1.2 to 2.8 "gained" 3.5 points of luma BD-rate while the BD-rate of PSNR-YUV got
  13 points worse).

Everything is rebuilt from the history, so the memory is as deterministic as the designer.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field

from codeclab.design.params import Param

UNSEARCHED = {
    "QP_SCALE": "operating point",
    "QUALITY_OCTAVE": "operating point",
    "CHROMA_QP_RATIO": "trades chroma, which the luma fitness cannot see",
}
# Fitness changes (BD-rate points) this small count as "no effect": below the noise of a
# BD-rate on a short clip, they teach neither a direction nor a combination.
INERT = 0.1
# Log2 step of float parameters before any trial, and its bounds.
FLOAT_STEP = 0.5
FLOAT_STEP_RANGE = (0.1, 1.5)
GROW, SHRINK = 1.5, 0.7

_CHANGE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*): (?P<old>\S+) -> (?P<new>\S+)$")
_SWAP = re.compile(r"^(?P<slot>[a-z]+): (?P<old>\S+) -> (?P<new>\S+)$")


def parse_changes(mutations: list[str]) -> dict[str, tuple[float, float]] | None:
    """``{name: (old, new)}`` of a record's parameter changes; ``None`` when it made other
    changes too (a component swap), so its fitness cannot be put down to parameters."""
    out = {}
    for text in mutations:
        m = _CHANGE.match(text)
        if not m:
            return None
        try:
            out[m["name"]] = (float(m["old"]), float(m["new"]))
        except ValueError:
            return None
    return out or None


def parse_swaps(mutations: list[str]) -> list[str] | None:
    """``["slot=component", ...]`` a child swapped in; ``None`` unless it only swapped."""
    found = [_SWAP.match(text) for text in mutations]
    if not found or not all(found):
        return None
    return [f"{m['slot']}={m['new']}" for m in found if m is not None]


@dataclass(frozen=True)
class Trial:
    """One parameter change and what it did (``gain`` > 0: the child beat its parent)."""

    name: str
    old: float
    new: float
    gain: float
    shared: int  # how many parameters the child changed at once


@dataclass
class Stats:
    wins: int = 0
    losses: int = 0
    inert: int = 0
    direction: int = 0  # +1 / -1: where the last informative trial says to go next
    tried: set[tuple[float, float]] = field(default_factory=set)

    @property
    def tries(self) -> int:
        return self.wins + self.losses + self.inert


@dataclass
class ParamMemory:
    """Per-family parameter statistics (see the module docstring)."""

    trials: dict[str, list[Trial]] = field(default_factory=dict)

    def add(self, family: str, changes: dict[str, tuple[float, float]], gain: float) -> None:
        for name, (old, new) in changes.items():
            self.trials.setdefault(family, []).append(Trial(name, old, new, gain, len(changes)))

    def add_swaps(self, family: str, swaps: list[str], gain: float) -> None:
        for key in swaps:
            self.trials.setdefault(family, []).append(Trial(key, 0.0, 0.0, gain, len(swaps)))

    def choose_swap(
        self, family: str, options: list[tuple[str, str]], rng: random.Random
    ) -> tuple[str, str]:
        """A (slot, component) to swap in, drawn by :meth:`weight` of ``slot=component``."""
        stats = self.stats(family)
        weights = [self.weight(stats.get(f"{slot}={name}")) for slot, name in options]
        return rng.choices(options, weights)[0]

    def stats(self, family: str) -> dict[str, Stats]:
        out: dict[str, Stats] = {}
        for t in self.trials.get(family, []):
            s = out.setdefault(t.name, Stats())
            s.tried.add((t.old, t.new))
            if t.shared > 1 and "=" in t.name:
                continue  # swapped in with other components: the gain is not its own
            if abs(t.gain) <= INERT:
                s.inert += 1
                continue
            moved = 1 if t.new >= t.old else -1
            if t.gain > 0:
                s.wins += 1
                s.direction = moved
            else:
                s.losses += 1
                s.direction = -moved
        return out

    def weight(self, stats: Stats | None) -> float:
        """Selection weight of a parameter: untried first, paying ones favoured, inert rare."""
        if stats is None or stats.tries == 0:
            return 2.0
        if stats.wins == stats.losses == 0:
            return 0.1
        return (1.0 + 2.0 * stats.wins) / (1.0 + stats.losses + stats.inert)

    def untried_weight(self, family: str, name: str) -> float:
        """Weight of a parameter this family has not tried, from what the same name did in
        other families (same clip, often the same role): inert there, probably inert here;
        paying there, worth trying first."""
        other = [self.stats(f).get(name) for f in self.trials if f != family]
        seen = [s for s in other if s is not None and s.tries]
        if not seen:
            return 2.0
        wins, losses = sum(s.wins for s in seen), sum(s.losses for s in seen)
        if wins == losses == 0:
            return 0.5
        return 3.0 if wins > losses else 2.0

    def choose(self, family: str, params: dict[str, Param], rng: random.Random) -> list[str]:
        """One parameter (now and then two) to change, drawn by :meth:`weight` (by
        :meth:`untried_weight` for one the family has not tried yet)."""
        stats = self.stats(family)
        names = sorted(n for n in params if n not in UNSEARCHED)
        if not names:
            return []
        weights = [
            self.weight(stats[n]) if n in stats else self.untried_weight(family, n) for n in names
        ]
        first = rng.choices(names, weights)[0]
        if len(names) > 1 and rng.random() < 0.2:
            rest = [n for n in names if n != first]
            return [first, rng.choices(rest, [weights[names.index(n)] for n in rest])[0]]
        return [first]

    def step(self, family: str, param: Param, rng: random.Random) -> int | float:
        """A new value for ``param``: the learned direction and step size, else a random one."""
        stats = self.stats(family).get(param.name, Stats())
        if param.kind == "choice":
            untried = [
                c for c in param.choices if c != param.value and (param.value, c) not in stats.tried
            ]
            others = untried or [c for c in param.choices if c != param.value]
            return rng.choice(others or list(param.choices))
        assert param.low is not None and param.high is not None
        scale = GROW**stats.wins * SHRINK**stats.losses
        direction = stats.direction or rng.choice([-1, 1])
        for sign in (direction, -direction):
            value = self._move(param, sign, scale)
            if value != param.value:
                return value
        return param.value

    @staticmethod
    def _move(param: Param, sign: int, scale: float) -> int | float:
        low, high = float(param.low), float(param.high)  # type: ignore[arg-type]
        if param.kind == "int":
            step = max(1, round((high - low) / 8 * scale))
            return int(min(high, max(low, param.value + sign * step)))
        lo, hi = FLOAT_STEP_RANGE
        log_step = min(hi, max(lo, FLOAT_STEP * scale))
        if param.value > 0:
            value = param.value * 2 ** (sign * log_step)
        else:  # a zero (off) value: switch on at a small fraction of the range
            value = low + (high - low) * 0.05 * 2**log_step if sign > 0 else low
        return round(min(high, max(low, value)), 4)

    def combinable(self, family: str, params: dict[str, Param]) -> dict[str, tuple[float, float]]:
        """Improving steps of ``family`` that a parent with ``params`` can still take (its
        value is the step's starting value), the best-gaining one per parameter whose
        changes gained more often than they lost: gains found in other lineages, to be tried
        together."""
        best: dict[str, Trial] = {}
        stats = self.stats(family)
        for t in self.trials.get(family, []):
            if t.gain <= INERT or t.name in UNSEARCHED:
                continue
            if stats[t.name].losses >= stats[t.name].wins:  # it failed as often: no evidence
                continue
            p = params.get(t.name)
            if p is None or not math.isclose(float(p.value), t.old):
                continue
            if t.name not in best or t.gain / t.shared > best[t.name].gain / best[t.name].shared:
                best[t.name] = t
        return {
            n: (params[n].value, _like(params[n].value, t.new)) for n, t in sorted(best.items())
        }

    def paying_swaps(self, family: str, parts: dict[str, str]) -> list[tuple[str, str]]:
        """Component swaps of ``family`` that gained more often than they lost and that a
        composition ``parts`` lacks, one per slot (the one with the most gains): components
        found good in different lineages, to be tried together."""
        best: dict[str, tuple[int, str]] = {}
        for key, stats in sorted(self.stats(family).items()):
            slot, _, name = key.partition("=")
            if not name or stats.wins <= stats.losses or parts.get(slot) == name:
                continue
            if slot not in best or stats.wins > best[slot][0]:
                best[slot] = (stats.wins, name)
        return [(slot, name) for slot, (_, name) in sorted(best.items())]


def _like(value: int | float, new: float) -> int | float:
    """``new`` as the same kind of number as ``value`` (an int parameter stays an int)."""
    return int(round(new)) if isinstance(value, int) else new
