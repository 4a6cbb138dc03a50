"""Composition, operators and the evolve designer (no campaign: fast)."""

from __future__ import annotations

import numpy as np
import pytest

from codeclab.config import SAMPLE_CLIP
from codeclab.design import compose
from codeclab.design.components import SLOTS, choices
from codeclab.design.evolve import (
    P_COMBINE,
    P_EXTRAPOLATE,
    P_SWAP,
    EvolveDesigner,
    normalised_sha256,
    operator_odds,
    seed_programs,
)
from codeclab.design.memory import UNSEARCHED
from codeclab.design.params import parse_params
from codeclab.media import load_clip
from codeclab.record import ExperimentRecord
from codeclab.sandbox import isolate
from codeclab.sandbox.policy import check_program


@pytest.fixture(scope="module")
def frames() -> list:
    clip = load_clip(SAMPLE_CLIP, max_frames=3)
    return [
        (
            np.ascontiguousarray(y[64:112, 96:160]),
            np.ascontiguousarray(u[32:56, 48:80]),
            np.ascontiguousarray(v[32:56, 48:80]),
        )
        for y, u, v in clip.frames
    ]


def run(source: str) -> dict:
    scope: dict = {}
    exec(compile(source, "<composed>", "exec"), scope)  # noqa: S102 - our own composed program
    return scope


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def round_trip(
    source: str, frames: list, quality: int = 70, floor: float = 30.0
) -> tuple[bytes, list]:
    scope = run(source)
    bitstream = scope["encode"](frames, 30.0, quality)
    decoded = scope["decode"](bitstream)
    assert len(decoded) == len(frames)
    for (y, u, v), (dy, du, dv) in zip(frames, decoded, strict=True):
        assert dy.shape == y.shape and du.shape == u.shape and dv.shape == v.shape
        assert dy.dtype == np.uint8
        assert psnr(y, dy) > floor
    return bitstream, decoded


def variants() -> list[dict[str, str]]:
    """The defaults plus every component swapped into the default composition once."""
    out = [compose.DEFAULT, compose.INTRA_DEFAULT]
    for slot in SLOTS:
        out += [{slot: name} for name in choices(slot) if name != compose.DEFAULT[slot]]
    return out


@pytest.mark.parametrize("parts", variants(), ids=lambda p: "+".join(p.values()))
def test_every_composition_passes_the_policy_and_round_trips(parts, frames):
    source = compose.compose(parts)
    report = check_program(source)
    assert report.style == "native"
    assert compose.parse_components(source) == {**compose.DEFAULT, **parts}
    bitstream, decoded = round_trip(source, frames)
    again = run(source)
    assert again["encode"](frames, 30.0, 70) == bitstream  # deterministic
    low, _ = round_trip(source, frames, quality=30, floor=20.0)
    assert len(low) < len(bitstream)


def test_decode_works_in_a_fresh_sandboxed_process(frames):
    source = compose.compose()
    limits = isolate.Limits.for_clip(64, 48, len(frames))
    encoded = isolate.run_encode(source, frames, 30.0, 60, limits)
    decoded = isolate.run_decode(source, encoded.bitstream, limits)
    local = run(source)["decode"](encoded.bitstream)
    for mine, theirs in zip(local, decoded.frames, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert np.array_equal(a, b)


def test_header_is_small_and_a_decoder_with_other_constants_refuses(frames):
    source = compose.compose(values={"DEBLOCK": 0.5, "BLOCK_SIZE": 4})
    bitstream = run(source)["encode"](frames, 30.0, 60)
    assert len(run(source)["decode"](bitstream)) == len(frames)
    # the header holds the quality and a CRC of the derived numbers, not the numbers
    header = run(source)["HEADER"].size
    assert header < 48
    # a decoder whose constants differ would misread the stream: it must refuse it
    other = compose.compose(values={"DEBLOCK": 2.0, "BLOCK_SIZE": 4})
    with pytest.raises(ValueError, match="other parameters"):
        run(other)["decode"](bitstream)


def test_swap_keeps_evolved_values_and_changes_one_slot():
    parent = compose.compose(values={"QP_SCALE": 1.7, "DEBLOCK": 0.9})
    child = compose.swap(parent, "entropy", "expgolomb")
    check_program(child)
    assert compose.parse_components(child) == {**compose.DEFAULT, "entropy": "expgolomb"}
    params = parse_params(child)
    assert params["QP_SCALE"].value == 1.7 and params["DEBLOCK"].value == 0.9
    assert "ESCAPE" not in params and "EG_ORDER" in params
    assert normalised_sha256(child) != normalised_sha256(parent)
    with pytest.raises(ValueError):
        compose.swap(seed_programs()["inter_mc"], "entropy", "expgolomb")


def test_crossover_takes_slots_and_their_values_from_the_second_parent():
    first = compose.compose(values={"QP_SCALE": 1.5, "DEBLOCK": 0.4})
    second = compose.compose(
        {"loopfilter": "deblock", "transform": "wht", "entropy": "expgolomb"},
        {"QP_SCALE": 0.6, "DEBLOCK": 2.0, "BLOCK_SIZE": 4},
    )
    child = compose.crossover(first, second, {"loopfilter", "transform"})
    check_program(child)
    parts = compose.parse_components(child)
    assert parts["transform"] == "wht" and parts["entropy"] == compose.DEFAULT["entropy"]
    params = parse_params(child)
    assert params["DEBLOCK"].value == 2.0 and params["BLOCK_SIZE"].value == 4
    assert params["QP_SCALE"].value == 1.5  # the skeleton's values come from the first
    assert len({normalised_sha256(s) for s in (first, second, child)}) == 3


def _record(sha: str, name: str, bd: float | None, iteration: int, parent=None, reasoning=None):
    return ExperimentRecord(
        experiment_id=sha,
        iteration=iteration,
        status="ok",
        program_sha256=sha,
        program_name=name,
        parent_sha256=parent,
        designer="evolve",
        reasoning=reasoning or {},
        isolation="weak",
        source_bytes=1000,
        qualities=[1],
        bd_rate={"x264": {"psnr_y": {"value": bd}}} if bd is not None else {},
    )


def _campaign(designer: EvolveDesigner, steps: int, score) -> tuple[list, dict]:
    history, sources = [], {}
    for iteration in range(1, steps + 1):
        proposal = designer.propose(history, sources, iteration)
        sha = f"sha{iteration}"
        assert normalised_sha256(proposal.source) not in {
            normalised_sha256(s) for s in sources.values()
        }
        sources[sha] = proposal.source
        history.append(
            _record(
                sha,
                proposal.name,
                score(proposal.source),
                iteration,
                proposal.parent_sha256,
                proposal.reasoning,
            )
        )
    return history, sources


def _score(source: str) -> float:
    params = parse_params(source)
    value = params["DEBLOCK"].value if "DEBLOCK" in params else 1.0
    return 10.0 + 5 * abs(value - 0.5) + len(source) % 7


def test_designer_evaluates_seeds_then_uses_every_operator_without_duplicates():
    designer = EvolveDesigner(seed=3)
    history, _ = _campaign(designer, 40, _score)
    seeds = [r for r in history if r.parent_sha256 is None]
    assert [r.program_name for r in seeds] == [*seed_programs(), "composed"]
    texts = [r.reasoning.text for r in history if r.parent_sha256]
    operators = {t.split()[1] for t in texts}
    assert {"mutate", "swap"} <= operators and operators <= {
        "mutate",
        "swap",
        "crossover",
        "extrapolate",
        "combine",
    }
    assert all("island" in t and "grid cell" in t and "BD-rate vs x264" in t for t in texts)


def test_designer_is_deterministic_given_seed_iteration_and_history():
    history, sources = _campaign(EvolveDesigner(seed=5), 12, _score)
    a = EvolveDesigner(seed=5).propose(history, sources, 13)
    b = EvolveDesigner(seed=5).propose(list(history), dict(sources), 13)
    assert a == b
    replay, _ = _campaign(EvolveDesigner(seed=5), 12, _score)
    assert [r.program_name for r in replay] == [r.program_name for r in history]
    c = EvolveDesigner(seed=6).propose(history, sources, 13)
    d = EvolveDesigner(seed=5).propose(history, sources, 14)
    assert a.source != c.source or a.source != d.source


def test_duplicates_are_rejected_before_evaluation_including_pending_ones():
    designer = EvolveDesigner(seed=0, seeds={"composed": compose.compose()})
    history, sources = _campaign(designer, 3, _score)
    first = designer.propose(history, sources, 4)
    pending = {**sources, "pending-4": first.source}
    second = designer.propose(history, pending, 4)
    assert normalised_sha256(second.source) != normalised_sha256(first.source)
    # a cosmetic change (comment) is still the same program
    assert designer.database(history, pending).is_duplicate(first.source + "\n# note\n")


def test_extrapolate_repeats_a_step_that_paid_off():
    designer = EvolveDesigner(seed=0, seeds={"composed": compose.compose()})
    base = compose.compose()
    better = compose.compose(values={"DEBLOCK": 1.2})
    history = [
        _record("a", "composed", 10.0, 1),
        _record("b", "composed~x", 8.0, 2, "a", {"mutations": ["DEBLOCK: 1.5 -> 1.2"]}),
    ]
    db = designer.database(history, {"a": base, "b": better})
    step = designer._extrapolation(db, db.entries["b"])
    assert step == {"DEBLOCK": (1.2, 0.9)}


def test_measurement_effect_parameters_are_never_searched():
    history, _ = _campaign(EvolveDesigner(seed=2), 40, _score)
    changed = [m.split(":")[0] for r in history for m in r.reasoning.mutations]
    assert changed and not set(changed) & set(UNSEARCHED)
    assert {"QP_SCALE", "QUALITY_OCTAVE", "CHROMA_QP_RATIO"} <= set(UNSEARCHED)


def test_combine_brings_gains_of_two_lineages_together():
    designer = EvolveDesigner(seed=0, seeds={"composed": compose.compose()})
    base = compose.compose()
    one = compose.compose(values={"DEBLOCK": 1.0})
    two = compose.compose(values={"I_QP_RATIO": 1.0})
    history = [
        _record("a", "composed", 10.0, 1),
        _record("b", "composed~d", 9.0, 2, "a", {"mutations": ["DEBLOCK: 1.5 -> 1.0"]}),
        _record("c", "composed~c", 8.5, 3, "a", {"mutations": ["I_QP_RATIO: 0.75 -> 1.0"]}),
    ]
    sources = {"a": base, "b": one, "c": two}
    db = designer.database(history, sources)
    memory = designer.memory(db)
    assert memory.combinable("composed", parse_params(one)) == {"I_QP_RATIO": (0.75, 1.0)}
    assert memory.combinable("composed", parse_params(base)) == {
        "DEBLOCK": (1.5, 1.0),
        "I_QP_RATIO": (0.75, 1.0),
    }
    proposals = [designer.propose(history, sources, i) for i in range(4, 40)]
    combined = [p for p in proposals if p.reasoning.text.startswith("Operator combine")]
    assert combined
    for p in combined:
        params = parse_params(p.source)
        assert params["DEBLOCK"].value == 1.0 and params["I_QP_RATIO"].value == 1.0


def test_operator_odds_follow_each_operators_success():
    designer = EvolveDesigner(seed=0, seeds={"composed": compose.compose()})
    base = compose.compose()
    history, sources = [_record("a", "composed", 10.0, 1)], {"a": base}
    for i, (operator, bd) in enumerate([("swap", 12.0), ("swap", 11.0), ("combine", 8.0)]):
        sha = f"c{i}"
        sources[sha] = compose.compose(values={"DEBLOCK": 0.1 * (i + 1)})
        text = f"Operator {operator} on island 0, grid cell None: ..."
        history.append(_record(sha, "composed~x", bd, i + 2, "a", {"text": text}))
    odds = operator_odds(designer.database(history, sources))
    assert odds["swap"] == pytest.approx(P_SWAP * 2 * 1 / 4)
    assert odds["combine"] == pytest.approx(P_COMBINE * 2 * 2 / 3)
    assert odds["extrapolate"] == pytest.approx(P_EXTRAPOLATE)  # untried: the base odds


def b_modes(source: str, frames: list, quality: int) -> tuple[bytes, list]:
    """The bitstream and the macroblock modes its B pictures coded (spied on the way)."""
    scope = run(source)
    coded, original = [], scope["code_rows"]

    def spy(coder, kind, values, shape, limit):
        out = original(coder, kind, values, shape, limit)
        if kind == "b_mode":
            coded.append(out.copy())
        return out

    scope["code_rows"] = spy
    return scope["encode"](frames, 30.0, quality), coded


def test_b_pictures_take_direct_macroblocks_where_they_pay(frames):
    """DIRECT: both vectors inherited from the neighbours, no residual. At a low quality
    some macroblocks of the B picture take it; with its lambda at 0 none does; both
    streams decode."""
    with_direct = compose.compose({"gop": "ibp"}, {"B_MODE_LAMBDA": 0.5})
    without = compose.compose({"gop": "ibp"}, {"B_MODE_LAMBDA": 0.0})
    stream, modes = b_modes(with_direct, frames, 35)
    assert len(modes) == 1 and (modes[0] == 3).any()
    assert not any((m == 3).any() for m in b_modes(without, frames, 35)[1])
    for source in (with_direct, without):
        round_trip(source, frames, quality=35, floor=24.0)
    assert run(with_direct)["decode"](stream)[1][0].shape == frames[1][0].shape


def test_adaptive_transform_takes_small_blocks_where_they_pay(frames):
    """adaptive_dct: each coded macroblock's residual luma in 8x8 or 4x4 transforms by RD
    cost. At a high quality some macroblocks take 4x4, with TX_LAMBDA at 1 (bits dear)
    fewer do; the streams decode, and the P picture's flags are in the stream."""

    def small_count(tx_lambda: float) -> int:
        source = compose.compose({"transform": "adaptive_dct"}, {"TX_LAMBDA": tx_lambda})
        scope = run(source)
        chosen, original = [], scope["small_transform_choice"]

        def spy(cfg, res, coded, step):
            out = original(cfg, res, coded, step)
            chosen.append(int(out.sum()))
            return out

        scope["small_transform_choice"] = spy
        stream = scope["encode"](frames, 30.0, 85)
        decoded = run(source)["decode"](stream)
        assert psnr(frames[2][0], decoded[2][0]) > 40
        return sum(chosen)

    cheap, dear = small_count(0.0), small_count(1.0)
    assert cheap > 0 and dear < cheap


def test_split_macroblocks_take_four_vectors_where_they_pay(frames):
    """mode split: a coded macroblock may carry four half-size vectors. At a high quality
    some do; with the mode lambda at its top fewer; every stream decodes as encoded."""

    def splits(mode_lambda: float) -> int:
        source = compose.compose({"mode": "split", "gop": "ippp"}, {"MODE_LAMBDA": mode_lambda})
        scope = run(source)
        chosen, original = [], scope["split_decide"]

        def spy(src, ref, mv, half, skip, cfg):
            split, skip, intra = original(src, ref, mv, half, skip, cfg)
            assert not (split & skip).any()  # a skipped macroblock has no vectors to split
            assert not intra.any()  # mode split codes no intra macroblocks
            chosen.append(int(split.sum()))
            return split, skip, intra

        scope["split_decide"] = spy
        stream = scope["encode"](frames, 30.0, 80)
        decoded = run(source)["decode"](stream)
        assert min(psnr(f[0], d[0]) for f, d in zip(frames, decoded, strict=True)) > 38
        return sum(chosen)

    cheap, dear = splits(0.02), splits(1.0)
    assert cheap > 0 and dear < cheap


def test_untried_upgrades_are_screened_before_other_swaps():
    """A composed family first tries each more capable component (a higher tier) once; a
    simplification (a lower tier) is only swapped in after every upgrade was tried."""
    from codeclab.design.components import TIERS
    from codeclab.design.evolve import upgrades

    default_upgrades = set(upgrades(compose.DEFAULT))
    assert ("intra", "angular") in default_upgrades
    assert not any(TIERS[s][c] <= TIERS[s][compose.DEFAULT[s]] for s, c in default_upgrades)
    designer = EvolveDesigner(seed=1, seeds={"composed": compose.compose()})
    history, _ = _campaign(designer, 60, lambda source: 10.0 + len(source) % 5)
    swaps = [
        r.reasoning.mutations[0] for r in history if r.reasoning.text.startswith("Operator swap")
    ]
    firsts = []
    for change in swaps:
        slot, rest = change.split(": ")
        old, new = rest.split(" -> ")
        firsts.append(TIERS[slot][new] > TIERS[slot][old])
    assert len(swaps) >= len(default_upgrades) + 1
    # the first swaps are the upgrades, each once; a downgrade appears only after them
    n = len(default_upgrades)
    assert all(firsts[:n]) and len(set(swaps[:n])) == n
    assert False in firsts


def test_every_component_has_a_capability_tier():
    from codeclab.design.components import REGISTRY, TIERS

    assert {s: set(t) for s, t in TIERS.items()} == {s: set(c) for s, c in REGISTRY.items()}


def test_combine_brings_swaps_that_paid_in_two_lineages_together():
    base = compose.compose({"mode": "skip", "gop": "ippp"})
    designer = EvolveDesigner(seed=0, seeds={"composed": base})
    split = compose.swap(base, "mode", "split")
    ibp = compose.swap(base, "gop", "ibp")
    worse = compose.swap(base, "loopfilter", "none")
    history = [
        _record("a", "composed", 10.0, 1),
        _record("b", "composed~split", 7.0, 2, "a", {"mutations": ["mode: skip -> split"]}),
        _record("c", "composed~ibp", 8.0, 3, "a", {"mutations": ["gop: ippp -> ibp"]}),
        _record("d", "composed~none", 11.0, 4, "a", {"mutations": ["loopfilter: deblock -> none"]}),
    ]
    sources = {"a": base, "b": split, "c": ibp, "d": worse}
    memory = designer.memory(designer.database(history, sources))
    parts = compose.parse_components(base)
    assert memory.paying_swaps("composed", parts) == [("gop", "ibp"), ("mode", "split")]
    assert memory.paying_swaps("composed", compose.parse_components(split)) == [("gop", "ibp")]
    proposals = [designer.propose(history, sources, i) for i in range(5, 60)]
    combined = [p for p in proposals if p.reasoning.text.startswith("Operator combine")]
    assert combined
    for p in combined:
        parts = compose.parse_components(p.source)
        assert parts["mode"] == "split" and parts["gop"] == "ibp"
        assert parts["loopfilter"] == "deblock"  # the losing swap is not taken


def test_a_swap_made_with_others_neither_wins_nor_loses_on_its_own():
    """A crossover that brought a good component in together with worse ones lost as a
    whole; that loss is not charged to the good one, which stays a paying swap to combine."""
    base = compose.compose({"mode": "skip", "entropy": "adaptive_range"})
    designer = EvolveDesigner(seed=0, seeds={"composed": base})
    lean = compose.swap(base, "entropy", "lean_range")
    split = compose.swap(base, "mode", "split")
    mixed = compose.swap(compose.swap(split, "entropy", "lean_range"), "loopfilter", "none")
    together = {
        "mutations": ["entropy: adaptive_range -> lean_range", "loopfilter: deblock -> none"]
    }
    history = [
        _record("a", "composed", 10.0, 1),
        _record(
            "b",
            "composed~lean",
            7.0,
            2,
            "a",
            {"mutations": ["entropy: adaptive_range -> lean_range"]},
        ),
        _record("c", "composed~split", 8.0, 3, "a", {"mutations": ["mode: skip -> split"]}),
        _record("d", "composed~cross", 12.0, 4, "c", together),
    ]
    sources = {"a": base, "b": lean, "c": split, "d": mixed}
    memory = designer.memory(designer.database(history, sources))
    stats = memory.stats("composed")
    assert (stats["entropy=lean_range"].wins, stats["entropy=lean_range"].losses) == (1, 0)
    assert "loopfilter=none" in stats and stats["loopfilter=none"].tries == 0
    assert ("entropy", "lean_range") in memory.paying_swaps(
        "composed", compose.parse_components(split)
    )
