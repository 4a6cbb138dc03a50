"""Published artifacts that outlive the lab: the standalone decoder file.

A decoder file holds the program's text verbatim as a string, with its sha256, and loads it
into a module of its own after checking that hash: the program's names cannot collide with
the wrapper's, its ``from __future__`` imports stay valid, and an altered file refuses to run.
That module is named ``program``, as in the lab's sandbox, so ``__name__`` reads the same.
After it come the seed adapter (for seed-style programs and the BGR interface) and the entry
points: ``decode``, ``decompress_video_frame`` and ``python decoder.py IN.bin -o OUT.y4m``.
It needs numpy and the program's own imports, never codeclab.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from importlib import resources

from codeclab.contract import detect_style
from codeclab.frames import Frame
from codeclab.record import ExperimentRecord
from codeclab.sandbox import isolate
from codeclab.sandbox.bwrap import best_launcher
from codeclab.sandbox.isolate import Limits

HEADER = """#!/usr/bin/env python3
# Standalone decoder published by codeclab.
#
# experiment:     {experiment_id}
# program:        {program_name}
# program sha256: {program_sha256}
# published:      {date}
# requirements:   Python 3.11+, {requirements}
#
# Usage:
#     python {experiment_id}_decoder.py IN.bin -o OUT.y4m [--fps {fps}]
#     import it, then decode(bitstream) -> [(Y, U, V), ...] or
#     decompress_video_frame(bitstream, frame_index, config) -> (H, W, 3) BGR
"""


def requirements(source: str) -> list[str]:
    """Third-party top-level packages the program imports (numpy is always needed)."""
    names = {"numpy"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return sorted(name for name in names if name not in sys.stdlib_module_names)


def _string_literal(source: str) -> str:
    """The program as a readable raw triple-quoted string, or repr() when it cannot be."""
    if "'''" not in source and not source.endswith("\\"):
        return "r'''" + source + "'''"
    return repr(source)


def decoder_file(source: str, record: ExperimentRecord) -> str:
    """The text of ``decoders/{id}_decoder.py`` for a verified experiment."""
    fps = record.clips[0].fps if record.clips else 30.0
    header = HEADER.format(
        experiment_id=record.experiment_id,
        program_name=record.program_name,
        program_sha256=record.program_sha256,
        date=record.created_at.date().isoformat(),
        requirements=", ".join(requirements(source)),
        fps=fps,
    )
    package = resources.files("codeclab")
    seedcompat = package.joinpath("sandbox/seedcompat.py").read_text()
    main = package.joinpath("store/decoder_main.py").read_text()
    return (
        f"{header}\n"
        f"PROGRAM_SHA256 = {record.program_sha256!r}\n"
        f"PROGRAM_STYLE = {detect_style(ast.parse(source))!r}\n"
        f"CODECLAB_FPS = {fps!r}\n"
        f"PROGRAM = {_string_literal(source)}\n\n"
        f"# ---- codeclab: seed adapter (codeclab/sandbox/seedcompat.py) ----\n{seedcompat}\n\n"
        f"{main}"
    )


def program_from_decoder(text: str) -> str:
    """The program inside a published decoder, after checking it against the header's sha256.

    A file that is not a published decoder is returned as it is: it is a program itself.
    """
    constants = {
        node.targets[0].id: node.value.value
        for node in ast.parse(text).body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }
    if "PROGRAM" not in constants or "PROGRAM_SHA256" not in constants:
        return text
    program = constants["PROGRAM"]
    digest = hashlib.sha256(program.encode()).hexdigest()
    if digest != constants["PROGRAM_SHA256"]:
        raise ValueError(
            f"the decoder's program has sha256 {digest[:12]}…, its header says "
            f"{constants['PROGRAM_SHA256'][:12]}…: the file was altered"
        )
    return program


# ---- running the published decoder -------------------------------------------------------------


class DecoderMismatch(RuntimeError):
    """The published decoder failed, or did not reproduce the lab's decode."""


def decode_published(decoder_text: str, bitstream: bytes, limits: Limits) -> list[Frame]:
    """Decode with the decoder file itself (its ``decode``, which checks the program's hash),
    in the sandbox: the program inside is still untrusted code, whoever published it."""
    try:
        return isolate.run_decode(decoder_text, bitstream, limits, best_launcher(), "native").frames
    except isolate.SandboxError as exc:
        raise DecoderMismatch(f"the published decoder failed: {exc}") from None


# ---- publish policy ---------------------------------------------------------------------------


def publish_decision(
    policy: str, record: ExperimentRecord, previous: list[ExperimentRecord]
) -> tuple[bool, str]:
    """Whether a verified experiment is published under ``policy``, and why (or why not).

    ``previous``: the campaign's earlier experiments; "improved" compares leaderboard
    BD-rates (holdout, PSNR-Y; lower is better).
    """
    from codeclab.ranking import leaderboard

    if policy == "all":
        return True, "publish policy 'all': every verified experiment is published"
    if policy == "target":
        target = record.target
        if target is None:
            return False, "publish policy 'target': no target check (no x265 baseline)"
        if target.achieved:
            return (
                True,
                f"publish policy 'target': the {target.target_kbps:g} kbps target is achieved",
            )
        return (
            False,
            f"publish policy 'target': the {target.target_kbps:g} kbps target is not achieved",
        )
    mine = leaderboard(record)
    if mine is None:
        return False, "publish policy 'improved': this experiment has no BD-rate to compare"
    scored = [value for r in previous if (value := leaderboard(r)) is not None]
    if not scored:
        return True, f"publish policy 'improved': first scored experiment (BD-rate {mine:+.2f}%)"
    best = min(scored)
    if mine < best:
        return (
            True,
            f"publish policy 'improved': BD-rate {mine:+.2f}% beats the previous best {best:+.2f}%",
        )
    return (
        False,
        f"publish policy 'improved': BD-rate {mine:+.2f}% does not beat the previous best "
        f"{best:+.2f}%",
    )


# ---- decoder history ----------------------------------------------------------------------------


def by_program_key(program_sha256: str) -> str:
    return f"decoders/by-program/{program_sha256}.py"


def decoder_history(records: list[ExperimentRecord], program_sha256: str) -> list[dict]:
    """The program's lineage, newest first: each ancestor's sha256, the experiments that
    published a decoder for it, and its decoder's key (``decoders/by-program/{sha256}.py``)."""
    by_program: dict[str, list[ExperimentRecord]] = {}
    for record in records:
        by_program.setdefault(record.program_sha256, []).append(record)
    history, seen, current = [], set(), program_sha256
    while current and current not in seen:
        seen.add(current)
        mine = by_program.get(current, [])
        published = [r.experiment_id for r in mine if r.artifacts.decoder]
        parent = next((r.parent_sha256 for r in mine if r.parent_sha256), None)
        history.append(
            {
                "program_sha256": current,
                "parent_sha256": parent,
                "experiments": published,
                "decoder": by_program_key(current) if published else None,
            }
        )
        current = parent
    return history
