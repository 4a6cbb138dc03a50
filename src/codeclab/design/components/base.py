"""What a component is: the slots, the prelude every composed program starts with, and
:class:`Component`. Kept apart from the registry so each component module imports this and
nothing imports back."""

from __future__ import annotations

from dataclasses import dataclass, field

from codeclab.design.params import Param, parse_params

SLOTS = (
    "transform",
    "intra",
    "motion",
    "subpel",
    "mode",
    "quant",
    "entropy",
    "loopfilter",
    "gop",
)

PRELUDE = """import math
import struct
import zlib

import constriction
import numpy as np
"""


@dataclass(frozen=True)
class Component:
    """One slot filler: its source text and what it declares."""

    slot: str
    name: str
    source: str
    summary: str
    params: dict[str, Param] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.slot}={self.name}"


def component(slot: str, name: str, summary: str, source: str) -> Component:
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}")
    text = source.strip("\n") + "\n"
    return Component(slot, name, text, summary, parse_params(text))
