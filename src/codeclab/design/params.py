"""Tunable parameters declared in a program's source, and rewriting them.

A program marks a tunable as a top-level assignment with a trailing comment::

    SEARCH_RANGE = 8  # @param int 2..32
    QP_SCALE = 1.0  # @param float 0.25..4.0
    BLOCK_SIZE = 8  # @param choice 4,8,16

The designer changes only the value text on such a line, so the rest of the program,
comments included, stays exactly as written and the diff against the parent is one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(
    r"^(?P<name>[A-Z][A-Z0-9_]*)(?P<eq>\s*=\s*)(?P<value>[^#\s]+)"
    r"(?P<gap>\s*#\s*@param\s+)(?P<kind>int|float|choice)\s+(?P<spec>\S+)(?P<rest>.*)$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    value: int | float
    low: float | None = None
    high: float | None = None
    choices: tuple[int | float, ...] = ()


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_params(source: str) -> dict[str, Param]:
    """Every ``# @param`` declaration in ``source``, by name."""
    params = {}
    for m in _LINE.finditer(source):
        kind, spec, value = m["kind"], m["spec"], _number(m["value"])
        if kind == "choice":
            params[m["name"]] = Param(
                m["name"], kind, value, choices=tuple(map(_number, spec.split(",")))
            )
        else:
            low, high = (float(x) for x in spec.split(".."))
            params[m["name"]] = Param(m["name"], kind, value, low, high)
    return params


def set_params(source: str, values: dict[str, int | float]) -> str:
    """``source`` with the named parameters' values replaced; unknown names are an error."""
    unknown = set(values) - set(parse_params(source))
    if unknown:
        raise KeyError(f"no @param named {sorted(unknown)}")

    def replace(m: re.Match[str]) -> str:
        if m["name"] not in values:
            return m[0]
        return (
            f"{m['name']}{m['eq']}{values[m['name']]!r}{m['gap']}{m['kind']} {m['spec']}{m['rest']}"
        )

    return _LINE.sub(replace, source)
