"""Interchangeable codec components: small pieces of program source that fill one slot each.

A component is source text (top-level functions and ``# @param`` tunables, nothing else)
that uses only the allowed imports. Every component of a slot defines the same interface,
so :mod:`codeclab.design.compose` can paste any combination of them, one per slot, around
the shared core into one self-contained program. The interfaces, by slot:

``transform``   ``transform_config() -> dict`` (``BLOCK_SIZE``), ``transform_matrix(n)``: an
                orthonormal n x n basis (rows), so coefficient SSD equals pixel SSD.
``intra``       ``intra_config()``, ``intra_predictors(top, left, corner, b, cfg)``: the
                candidate predictions (n, modes, b, b) of a batch of n blocks from their
                reconstructed top rows (n, b), left columns (n, b) and corners (n,); a
                side the batch's blocks lack is None (both: one block, 128 everywhere).
``motion``      ``motion_config()``, ``motion_search(cur, ref, mb, rng, lam)``: whole-pel
                vectors (rows, cols, 2) as (dy, dx).
``subpel``      ``subpel_config()`` (``MV_SCALE``), ``interpolate(p, s)``: the luma
                reference at 1/s pel (both sides), ``subpel_refine(cur, ref, mv, mb, lam,
                cfg)``: vectors in 1/MV_SCALE pel.
``quant``       ``quant_config()``, ``quant_steps(b, step, cfg)``, ``quantise(coef, steps,
                intra, cfg)``, ``dequantise(levels, steps)``.
``mode``        ``mode_config()`` (``SKIP``, ``SPLIT``, ``INTRA_MB``), ``mode_decide(src,
                ref, mv, cfg)``: which macroblocks of a P picture are skipped; with SPLIT,
                ``split_decide(src, ref, mv, half, skip, cfg)`` -> (split, skip, intra)
                macroblocks (encoder side; with INTRA_MB, B pictures get intra too).
``entropy``     ``entropy_config()``, ``EntropyCoder(cfg, data=None)``: one per bitstream,
                ``levels(kind, levels, count, n, row, mask)``, ``ints(kind, values, count,
                ctx, n_ctx)`` (signed), ``symbols(kind, values, count, ctx, n_sym, n_ctx)``
                (0..n_sym-1 in context ``ctx`` < n_ctx, by default another such symbol;
                intra modes: their neighbours' modes), given values when encoding, ``None``
                when decoding: all return the values; ``finish() -> bytes``.
``loopfilter``  ``loopfilter_config()``, ``loop_filter(plane, b, step, cfg, coded)``
                (``coded``: which blocks carry a residual; ``None``: all).
``gop``         ``gop_config()``, ``gop_plan(frames, cfg)``: (display index, type) in
                coding order; type 0 intra, 1 P, 2 B, 3 B that later pictures reference
                (its step ratio ``REF_B_QP_RATIO``; B pictures use ``B_QP_RATIO``).

Each ``*_config()`` returns the numbers its decoder side needs; encoder and decoder both
build them with ``program_config(quality)`` and the header's CRC-32 of them makes sure
they agree.
"""

from __future__ import annotations

from codeclab.design.components.base import PRELUDE, SLOTS, Component, component

__all__ = ["PRELUDE", "SLOTS", "Component", "component", "REGISTRY", "TIERS", "get", "choices"]


def _registry() -> dict[str, dict[str, Component]]:
    from codeclab.design.components import (
        entropy,
        gop,
        intra,
        loopfilter,
        mode,
        motion,
        quant,
        subpel,
        transform,
    )

    table: dict[str, dict[str, Component]] = {slot: {} for slot in SLOTS}
    for module in (transform, intra, motion, subpel, mode, quant, entropy, loopfilter, gop):
        for item in module.COMPONENTS:
            table[item.slot][item.name] = item
    return table


REGISTRY = _registry()


# Capability order within each slot, from the designer's prior knowledge of codecs: a higher
# tier adds or strengthens coding tools (adaptive transform sizes, partitions, B pictures,
# RD quantisation...), a lower one is a simplification. The evolve designer tries swaps up
# the order before anything else (:func:`codeclab.design.evolve.upgrades`); every component
# must be placed here.
TIERS: dict[str, dict[str, int]] = {
    "transform": {"wht": 0, "int4": 0, "dct": 1, "adaptive_dct": 2},
    "intra": {"dc": 0, "directional": 1, "angular": 2},
    "motion": {"diamond": 0, "hierarchical": 1, "full_search": 1, "predictive": 2},
    "subpel": {"none": 0, "bilinear": 1, "sixtap": 2},
    "mode": {"coded": 0, "skip": 1, "split": 2, "intra": 3},
    "quant": {"deadzone": 0, "rdo": 1, "rdoq": 2},
    "entropy": {"expgolomb": 0, "adaptive_range": 1, "lean_range": 2},
    "loopfilter": {"none": 0, "deblock": 1},
    "gop": {"intra_only": 0, "ippp": 1, "ibp": 2, "pyramid": 2},
}


def get(slot: str, name: str) -> Component:
    try:
        return REGISTRY[slot][name]
    except KeyError:
        raise KeyError(f"no component {name!r} in slot {slot!r}") from None


def choices(slot: str) -> list[str]:
    """The component names of a slot, in a stable order."""
    return sorted(REGISTRY[slot])
