from __future__ import annotations

import random

import pytest

from codeclab.design.evolve import EvolveDesigner, normalised_sha256, seed_programs
from codeclab.design.params import mutate_value, parse_params, set_params
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
    for _ in range(200):
        for param in params.values():
            value = mutate_value(param, rng)
            if param.kind == "choice":
                assert value in param.choices and value != param.value
            else:
                assert param.low <= value <= param.high
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
