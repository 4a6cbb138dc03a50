from __future__ import annotations

import random

import pytest

from codeclab.design.evolve import EvolveDesigner, normalised_sha256, seed_programs
from codeclab.design.memory import UNSEARCHED, ParamMemory, parse_changes, parse_swaps
from codeclab.design.params import Param, parse_params, set_params
from codeclab.record import ExperimentRecord

PROGRAM = """import numpy as np

STEP = 8  # @param int 2..32
SCALE = 1.0  # @param float 0.25..4.0
BLOCK = 8  # @param choice 4,8,16
FIXED = 3


def encode(frames, fps, quality):
    return bytes([STEP])


def decode(bitstream):
    return []
"""


def test_params_are_parsed_with_ranges():
    params = parse_params(PROGRAM)
    assert set(params) == {"STEP", "SCALE", "BLOCK"}
    assert (params["STEP"].low, params["STEP"].high, params["STEP"].value) == (2, 32, 8)
    assert params["BLOCK"].choices == (4, 8, 16)


def test_mutations_stay_in_range_and_change_only_that_line():
    rng = random.Random(0)
    params = parse_params(PROGRAM)
    memory = ParamMemory()
    for _ in range(200):
        for param in params.values():
            value = memory.step("toy", param, rng)
            memory.add("toy", {param.name: (float(param.value), float(value))}, rng.gauss(0, 1))
            if param.kind == "choice":
                assert value in param.choices and value != param.value
            else:
                assert param.low <= value <= param.high and value != param.value
    child = set_params(PROGRAM, {"STEP": 31})
    changed = [
        (a, b) for a, b in zip(PROGRAM.splitlines(), child.splitlines(), strict=True) if a != b
    ]
    assert changed == [("STEP = 8  # @param int 2..32", "STEP = 31  # @param int 2..32")]
    with pytest.raises(KeyError):
        set_params(PROGRAM, {"FIXED": 4})


def test_normalised_hash_ignores_comments_and_spacing():
    assert normalised_sha256(PROGRAM) == normalised_sha256(PROGRAM.replace("\n\n\n", "\n# note\n"))
    assert normalised_sha256(PROGRAM) != normalised_sha256(set_params(PROGRAM, {"STEP": 9}))


def _record(sha: str, name: str, bd: float | None, status: str = "ok") -> ExperimentRecord:
    bd_rate = {"x265": {"psnr_y": {"value": bd}}} if bd is not None else {}
    return ExperimentRecord(
        experiment_id=sha,
        status=status,
        program_sha256=sha,
        program_name=name,
        designer="evolve",
        isolation="weak",
        source_bytes=1,
        qualities=[1],
        bd_rate=bd_rate,
    )


def test_designer_seeds_first_then_mutates_without_duplicates():
    designer = EvolveDesigner(seed=1, seeds={"toy": PROGRAM})
    first = designer.propose([], {})
    assert first.source == PROGRAM and first.parent_sha256 is None
    history, sources = [_record("a", "toy", 50.0)], {"a": PROGRAM}
    seen = {normalised_sha256(PROGRAM)}
    for index in range(20):
        proposal = designer.propose(history, sources)
        assert proposal.parent_sha256 in sources
        assert normalised_sha256(proposal.source) not in seen
        assert proposal.reasoning.mutations and "->" in proposal.reasoning.mutations[0]
        seen.add(normalised_sha256(proposal.source))
        sources[str(index)] = proposal.source
        history.append(_record(str(index), proposal.name, 40.0 - index))


def test_designer_is_deterministic_under_seed():
    history, sources = [_record("a", "toy", 10.0)], {"a": PROGRAM}
    runs = [
        [
            EvolveDesigner(seed=7, seeds={"toy": PROGRAM}).propose(history, sources).source
            for _ in range(1)
        ]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_designer_refuses_when_every_seed_failed():
    designer = EvolveDesigner(seed=0, seeds={"toy": PROGRAM})
    with pytest.raises(RuntimeError, match="every seed program failed"):
        designer.propose([_record("a", "toy", None, status="failed")], {"a": PROGRAM})


def test_bundled_seed_programs_declare_params():
    seeds = seed_programs()
    assert {"intra_dct", "inter_mc"} <= set(seeds)
    for source in seeds.values():
        assert parse_params(source), "a seed program without @param gives the designer nothing"


# -- the parameter memory: what past changes teach the next mutation

DEPTH = Param("DEPTH", "float", 1.0, 0.25, 4.0)
GOP = Param("GOP", "int", 60, 1, 300)
SIZE = Param("SIZE", "choice", 8, choices=(4, 8, 16))


def test_changes_are_parsed_only_when_every_one_is_a_parameter():
    assert parse_changes(["DEPTH: 1.0 -> 1.5", "GOP: 60 -> 30"]) == {
        "DEPTH": (1.0, 1.5),
        "GOP": (60.0, 30.0),
    }
    assert parse_changes(["entropy: adaptive_range -> expgolomb"]) is None
    assert parse_changes([]) is None


def test_untried_first_inert_rarely_paying_ones_favoured():
    memory = ParamMemory()
    memory.add("f", {"GOP": (60, 30)}, 0.0)  # no effect at all
    memory.add("f", {"DEPTH": (1.0, 1.4)}, 2.0)
    stats = memory.stats("f")
    assert memory.weight(stats.get("SIZE")) == 2.0
    assert memory.weight(stats["GOP"]) == 0.1
    assert memory.weight(stats["DEPTH"]) > memory.weight(None) > memory.weight(stats["GOP"])
    params = {"GOP": GOP, "DEPTH": DEPTH, "QP_SCALE": Param("QP_SCALE", "float", 1.0, 0.25, 4.0)}
    drawn = [memory.choose("f", params, random.Random(i))[0] for i in range(300)]
    assert drawn.count("DEPTH") > 5 * drawn.count("GOP") and not set(drawn) & set(UNSEARCHED)


def test_what_a_name_did_in_another_family_orders_the_untried():
    memory = ParamMemory()
    memory.add("other", {"GOP": (60, 30)}, 0.0)
    memory.add("other", {"DEPTH": (1.0, 2.0)}, 1.5)
    assert memory.untried_weight("f", "GOP") == 0.5
    assert memory.untried_weight("f", "DEPTH") == 3.0
    assert memory.untried_weight("f", "SIZE") == 2.0
    assert memory.untried_weight("other", "GOP") == 2.0  # only other families count


def test_steps_follow_the_last_lesson_and_adapt_their_size():
    memory = ParamMemory()
    rng = random.Random(0)
    memory.add("f", {"DEPTH": (1.0, 1.4)}, -1.0)  # going up hurt: go down next
    assert all(memory.step("f", DEPTH, rng) < 1.0 for _ in range(10))
    small = 1.0 - memory.step("f", DEPTH, rng)
    memory.add("f", {"DEPTH": (1.0, 0.8)}, 1.0)
    memory.add("f", {"DEPTH": (0.8, 0.6)}, 1.0)  # two gains downwards: bigger steps
    assert 1.0 - memory.step("f", DEPTH, rng) > small
    memory.add("f", {"SIZE": (8, 4)}, -1.0)
    assert memory.step("f", SIZE, rng) == 16  # the untried choice
    assert memory.step("g", GOP, rng) in (60 - 37, 60 + 37)  # a fresh family: span / 8


def test_swaps_are_remembered_and_weighted_like_parameters():
    assert parse_swaps(["entropy: adaptive_range -> expgolomb"]) == ["entropy=expgolomb"]
    assert parse_swaps(["DEBLOCK: 1.5 -> 1.0"]) is None and parse_swaps([]) is None
    memory = ParamMemory()
    memory.add_swaps("c", ["entropy=expgolomb"], -5.0)
    memory.add_swaps("c", ["gop=ibp"], 3.0)
    options = [("entropy", "expgolomb"), ("gop", "ibp"), ("subpel", "none")]
    drawn = [memory.choose_swap("c", options, random.Random(i)) for i in range(600)]
    counts = [drawn.count(o) for o in options]
    assert counts[1] > counts[2] > counts[0] > 0
    assert memory.combinable("c", {"GOP": GOP}) == {}  # swaps are no parameter steps
