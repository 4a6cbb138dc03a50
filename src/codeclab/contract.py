"""The codec program contract (DESIGN.md section 2), checked statically on the syntax tree.

What a program may import is part of the contract, so the allow-list lives here; the rest of
the static policy (names, attributes) is in :mod:`codeclab.sandbox.policy`. The seed adapter
that runs a seed-style program is *not* here: it calls program code, so it has to run inside
the sandboxed child and lives in :mod:`codeclab.sandbox.child`, which must not import codeclab.
"""

from __future__ import annotations

import ast
from typing import Literal

Style = Literal["native", "seed"]

ALLOWED_IMPORTS = frozenset(
    {
        "numpy",
        "scipy",
        "math",
        "struct",
        "zlib",
        "lzma",
        "bz2",
        "io",
        "itertools",
        "functools",
        "collections",
        "heapq",
        "bisect",
        "array",
        "dataclasses",
        "typing",
        "enum",
        "constriction",
        "__future__",
    }
)
TORCH_IMPORTS = frozenset({"torch"})

# Submodules of allowed packages that reach files, the network, compilers or raw native
# code. A module below one of these is refused too.
FORBIDDEN_SUBMODULES = frozenset(
    {
        "numpy.ctypeslib",
        "numpy.distutils",
        "numpy.f2py",
        "numpy.testing",
        "numpy.lib.npyio",
        "scipy.io",
        "scipy.datasets",
        "torch.hub",
        "torch.utils.cpp_extension",
    }
)

# name -> (arity, call as the lab writes it)
NATIVE_FUNCTIONS = {
    "encode": (3, "encode(frames, fps, quality)"),
    "decode": (1, "decode(bitstream)"),
}
SEED_FUNCTIONS = {
    "compress_video_frame": (3, "compress_video_frame(frame, frame_index, config)"),
    "decompress_video_frame": (3, "decompress_video_frame(compressed_data, frame_index, config)"),
}


class ContractError(ValueError):
    """The program does not define the functions the lab calls."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def allowed_roots(*, allow_torch: bool = False) -> frozenset[str]:
    """Top-level modules a program may import."""
    return ALLOWED_IMPORTS | TORCH_IMPORTS if allow_torch else ALLOWED_IMPORTS


def is_import_allowed(module: str, *, allow_torch: bool = False) -> bool:
    """Whether ``import module`` is allowed: an allowed root, no private or forbidden part."""
    parts = module.split(".")
    if parts[0] not in allowed_roots(allow_torch=allow_torch):
        return False
    if any(part.startswith("_") for part in parts[1:]):
        return False
    prefixes = (".".join(parts[: n + 1]) for n in range(1, len(parts)))
    return not any(prefix in FORBIDDEN_SUBMODULES for prefix in prefixes)


def check_contract(tree: ast.Module) -> list[str]:
    """Problems with the program's interface; empty when it obeys one of the two styles."""
    return _check(tree)[1]


def detect_style(tree: ast.Module) -> Style:
    """Which interface the program defines, or :class:`ContractError` saying what is wrong."""
    style, problems = _check(tree)
    if style is None:
        raise ContractError(problems)
    return style


def _check(tree: ast.Module) -> tuple[Style | None, list[str]]:
    functions = _top_level_functions(tree)
    native = _problems(functions, NATIVE_FUNCTIONS)
    if not native:
        return "native", []
    seed = _problems(functions, SEED_FUNCTIONS)
    if not seed:
        return "seed", []
    attempts_seed = any(name in functions for name in SEED_FUNCTIONS)
    attempts_native = any(name in functions for name in NATIVE_FUNCTIONS)
    if attempts_seed and not attempts_native:
        return None, seed
    return None, native


def _top_level_functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """Functions defined by a top-level ``def``; a later definition wins, as in Python."""
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _problems(
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef],
    required: dict[str, tuple[int, str]],
) -> list[str]:
    problems = []
    for name, (arity, call) in required.items():
        node = functions.get(name)
        if node is None:
            problems.append(f"missing top-level function: def {call}")
        elif isinstance(node, ast.AsyncFunctionDef):
            problems.append(f"line {node.lineno}: {name} must be a plain def, not async def")
        elif not _accepts(node.args, arity):
            problems.append(
                f"line {node.lineno}: {name} cannot be called with {arity} positional "
                f"argument{'s' if arity != 1 else ''}; the lab calls {call}"
            )
    return problems


def _accepts(args: ast.arguments, count: int) -> bool:
    """Whether a function with these parameters can be called with ``count`` positionals."""
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    kwonly_required = any(default is None for default in args.kw_defaults)
    fits = required <= count <= positional or (args.vararg is not None and count >= required)
    return fits and not kwonly_required
