"""Intra mode coding: each block's mode in the context of its above and left neighbours'
modes (``code_modes``), and the encoder's RD choice paying each mode's bits in that context
(``intra_plane`` with ``mode_stats``)."""

from __future__ import annotations

import numpy as np
import pytest

from codeclab.config import SAMPLE_CLIP
from codeclab.design.compose import compose
from codeclab.media import load_clip


@pytest.fixture(scope="module")
def scope() -> dict:
    out: dict = {}
    exec(compile(compose(), "<composed>", "exec"), out)  # noqa: S102 - the lab's own source
    return out


def _coded(scope: dict, modes: np.ndarray, todo: np.ndarray) -> tuple[int, np.ndarray]:
    """Bytes of ``modes`` coded by code_modes, and what the decoder reads back."""
    cfg = scope["program_config"](40)
    coder = scope["EntropyCoder"](cfg)
    scope["code_modes"](coder, "m", modes, todo, 4)
    data = coder.finish()
    back = scope["code_modes"](scope["EntropyCoder"](cfg, data), "m", None, todo, 4)
    return len(data), back


def test_contexts_name_the_neighbours_modes_or_none(scope):
    grid = np.array([[0, 1, 2], [3, 1, 0]])
    todo = np.array([[True, False, True], [True, True, True]])
    ctx = scope["mode_contexts"](grid, todo, np.array([0, 0, 1, 1]), np.array([0, 2, 0, 1]), 4)
    # (above, left): (none, none), (none, not intra), (0, none), (not intra, 3)
    assert ctx.tolist() == [4 * 5 + 4, 4 * 5 + 4, 0 * 5 + 4, 4 * 5 + 3]


def test_modes_round_trip_and_neighbours_make_them_cheap(scope):
    """Modes that follow their neighbours (each row a run of one mode, a new mode every few
    rows) cost far fewer bits than the same modes shuffled; the decoder reads back exactly
    the coded blocks' modes, zero elsewhere."""
    rng = np.random.default_rng(4)
    modes = np.repeat(rng.integers(0, 4, 12)[:, None], 40, axis=1)
    modes[:, ::7] = rng.integers(0, 4, (12, 6))
    todo = rng.random(modes.shape) < 0.8
    size, back = _coded(scope, modes, todo)
    assert np.array_equal(back, np.where(todo, modes, 0))
    shuffled = rng.permutation(modes.ravel()).reshape(modes.shape)
    assert size < 0.6 * _coded(scope, shuffled, todo)[0]


def test_rd_choice_pays_for_unlikely_modes_and_counts_its_choices(scope):
    """With statistics that make mode 0 (DC) cheap and the others dear, more blocks choose
    it than without them, and each chosen mode is counted in its context; the decoder,
    given the levels and modes, reconstructs what the encoder did."""
    y = load_clip(SAMPLE_CLIP, max_frames=1).frames[0][0]
    src, b = y[32:96, 32:160].astype(np.float64), 8
    cfg = scope["program_config"](40)
    steps = scope["quant_steps"](b, cfg["STEP_Y"], cfg)
    plane = scope["intra_plane"]
    free = plane(src, None, None, src.shape, b, steps, cfg)
    stats = np.ones((25, 4))
    stats[:, 0] = 1000.0
    paid = plane(src, None, None, src.shape, b, steps, cfg, stats=stats)
    assert (paid[1] == 0).sum() > (free[1] == 0).sum() + 10
    assert stats.sum() == 25 * 1003 + paid[1].size
    again = plane(None, paid[0], paid[1], src.shape, b, steps, cfg)[2]
    assert np.array_equal(again, paid[2])
