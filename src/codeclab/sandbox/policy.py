"""Static policy: the fast first filter in front of the sandbox (DESIGN.md section 3).

It refuses, with line numbers a designer can act on, what a codec never needs: imports outside
the allow-list, builtins that run generated code or open files, attribute access that walks
into interpreter internals, and the numpy/scipy/io calls that read or write files. It is a
filter, not the wall: a program that slips past it still meets the subprocess limits.

Judgement calls, so a reader knows where the line is:
- Dunder *attribute access* is refused except ``__init__`` (``super().__init__()``),
  ``__name__`` and ``__doc__``; ``type(x)`` replaces ``x.__class__``. Dunder *methods* may be
  defined in class bodies (``__init__``, ``__len__``...), since defining one reaches nothing.
- Private attributes (``x._y``) may be read only through ``self`` or ``cls``: on modules and
  library objects they lead to internals (``np._core``, ``arr.ctypes._ctypes``).
- ``getattr``/``setattr``/``delattr`` need a constant, ordinary attribute name.
- Forbidden builtin names are refused in any position, so ``input = ...`` must be renamed.
- ``memoryview``, ``type``, ``print`` and ``hasattr`` are harmless and allowed; ``id`` is not
  (an address plus a strided view reads and writes any memory).
- A string annotation must be a plain type expression (names, dotted names, subscripts,
  ``|``), checked like code: ``typing`` may evaluate it (``singledispatch`` does, through
  ``get_type_hints``), so a call hidden in one would run unseen. ``singledispatch`` and
  ``get_type_hints`` are refused too.
- Defining ``__array_interface__`` and the other array-protocol methods is refused: they hand
  numpy a raw address.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from codeclab.contract import (
    FORBIDDEN_SUBMODULES,
    Style,
    allowed_roots,
    check_contract,
    detect_style,
    is_import_allowed,
)

MAX_SOURCE_BYTES = 256 * 1024
MAX_PROBLEMS = 25

FORBIDDEN_NAMES = {
    "open": "programs may not touch files",
    "eval": "programs may not run generated code",
    "exec": "programs may not run generated code",
    "compile": "programs may not run generated code",
    "globals": "programs may not inspect namespaces",
    "locals": "programs may not inspect namespaces",
    "vars": "programs may not inspect namespaces",
    "input": "programs get no interactive input",
    "breakpoint": "programs get no interactive input",
    "help": "programs get no interactive input",
    "id": "programs may not use memory addresses",
}
ATTRIBUTE_BUILTINS = frozenset({"getattr", "setattr", "delattr"})

_FILES = "it reads or writes files"
_NATIVE = "it reaches native code or compilers"
_CODE = "it runs generated code"
_FRAMES = "it reaches interpreter frames"
_MEMORY = "it reads or writes raw memory"
FORBIDDEN_ATTRIBUTES = {
    **dict.fromkeys(
        (
            "open",
            "open_code",
            "FileIO",
            "LZMAFile",
            "BZ2File",
            "load",
            "save",
            "savez",
            "savez_compressed",
            "save_npz",
            "load_npz",
            "read_array",
            "write_array",
            "fromfile",
            "tofile",
            "dump",
            "memmap",
            "open_memmap",
            "loadtxt",
            "savetxt",
            "genfromtxt",
            "fromregex",
            "DataSource",
            "npyio",
            "loadmat",
            "savemat",
            "wavfile",
            "mmread",
            "mmwrite",
            "datasets",
            "hub",
        ),
        _FILES,
    ),
    **dict.fromkeys(
        (
            "ctypes",
            "ctypeslib",
            "distutils",
            "f2py",
            "testing",
            "LowLevelCallable",
            "load_library",
            "cpp_extension",
        ),
        _NATIVE,
    ),
    **dict.fromkeys(
        (
            "get_type_hints",
            "ForwardRef",
            "make_dataclass",
            "compile",
            "singledispatch",
            "singledispatchmethod",
        ),
        _CODE,
    ),
    **dict.fromkeys(("as_strided", "DummyArray", "byte_bounds"), _MEMORY),
    **dict.fromkeys(
        (
            "gi_frame",
            "gi_code",
            "cr_frame",
            "cr_code",
            "ag_frame",
            "ag_code",
            "f_globals",
            "f_locals",
            "f_builtins",
            "f_back",
            "f_code",
            "tb_frame",
            "tb_next",
            "co_code",
        ),
        _FRAMES,
    ),
}
ALLOWED_DUNDER_ATTRIBUTES = frozenset({"__init__", "__name__", "__doc__"})
ALLOWED_DUNDER_NAMES = frozenset({"__name__", "__doc__", "__all__", "__slots__", "__version__"})
PRIVATE_ATTRIBUTE_OWNERS = frozenset({"self", "cls"})
# Methods through which numpy (or the buffer protocol) takes a raw address from an object.
FORBIDDEN_DUNDER_METHODS = frozenset(
    {
        "__array_interface__",
        "__array_struct__",
        "__cuda_array_interface__",
        "__dlpack__",
        "__dlpack_device__",
        "__buffer__",
        "__release_buffer__",
    }
)
# What a string annotation may contain: a type expression, nothing that runs.
TYPE_EXPRESSION_NODES = (
    ast.Expression,
    ast.Name,
    ast.Attribute,
    ast.Subscript,
    ast.Tuple,
    ast.List,
    ast.Constant,
    ast.BinOp,
    ast.BitOr,
    ast.Load,
)


@dataclass(frozen=True)
class PolicyReport:
    """What validation learnt about an accepted program."""

    style: Style
    source_bytes: int
    imports: tuple[str, ...]


class PolicyViolation(ValueError):
    """The program was refused; ``problems`` holds one line per reason, with line numbers."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def check_program(
    source: str, *, allow_torch: bool = False, max_source_bytes: int = MAX_SOURCE_BYTES
) -> PolicyReport:
    """Accept ``source`` or raise :class:`PolicyViolation` listing every problem found."""
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > max_source_bytes:
        raise PolicyViolation([f"source is {size} bytes, over the cap of {max_source_bytes} bytes"])
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise PolicyViolation([f"line {exc.lineno}: syntax error: {exc.msg}"]) from None
    except ValueError as exc:  # null bytes, on some Python versions
        raise PolicyViolation([f"source does not parse: {exc}"]) from None
    visitor = _PolicyVisitor(allow_torch=allow_torch)
    visitor.visit(tree)
    problems = visitor.problems + check_contract(tree)
    if problems:
        raise PolicyViolation(_capped(problems))
    return PolicyReport(
        style=detect_style(tree), source_bytes=size, imports=tuple(sorted(visitor.imports))
    )


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems"]


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _PolicyVisitor(ast.NodeVisitor):
    """Walks the whole tree once and collects every problem with its line."""

    def __init__(self, *, allow_torch: bool) -> None:
        self.allow_torch = allow_torch
        self.problems: list[str] = []
        self.imports: set[str] = set()
        self._methods: set[int] = set()
        self._checked_builtin_calls: set[int] = set()

    def _refuse(self, node: ast.AST, message: str) -> None:
        self.problems.append(f"line {getattr(node, 'lineno', '?')}: {message}")

    def _check_module(self, node: ast.AST, module: str) -> None:
        if is_import_allowed(module, allow_torch=self.allow_torch):
            self.imports.add(module)
            return
        root = module.split(".")[0]
        roots = allowed_roots(allow_torch=self.allow_torch)
        if root not in roots:
            allowed = ", ".join(sorted(roots - {"__future__"}))
            self._refuse(node, f"import of '{module}' is not allowed (allowed: {allowed})")
        elif any(module.startswith(f"{bad}.") or module == bad for bad in FORBIDDEN_SUBMODULES):
            self._refuse(node, f"import of '{module}' is not allowed: {_FILES} or {_NATIVE}")
        else:
            self._refuse(node, f"import of private module '{module}' is not allowed")

    def _check_attribute_name(self, node: ast.AST, name: str, owner: ast.expr | None) -> None:
        if _is_dunder(name):
            if name not in ALLOWED_DUNDER_ATTRIBUTES:
                self._refuse(
                    node,
                    f"attribute '{name}' is not allowed (dunder attributes reach interpreter "
                    "internals; use type(x) instead of x.__class__)",
                )
        elif name in FORBIDDEN_ATTRIBUTES:
            self._refuse(node, f"'.{name}' is not allowed: {FORBIDDEN_ATTRIBUTES[name]}")
        elif name.startswith("_") and not (
            isinstance(owner, ast.Name) and owner.id in PRIVATE_ATTRIBUTE_OWNERS
        ):
            self._refuse(
                node, f"private attribute '{name}' is not allowed here (only self._x or cls._x)"
            )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._refuse(node, "relative imports are not allowed: a program is one file")
            return
        module = node.module or ""
        self._check_module(node, module)
        if not is_import_allowed(module, allow_torch=self.allow_torch):
            return
        for alias in node.names:
            if alias.name == "*":
                self._refuse(node, f"'from {module} import *' is not allowed: name what you use")
            elif f"{module}.{alias.name}" in FORBIDDEN_SUBMODULES:
                self._check_module(node, f"{module}.{alias.name}")
            elif module != "__future__":
                self._check_attribute_name(node, alias.name, None)

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name in FORBIDDEN_NAMES:
            self._refuse(node, f"'{name}' is not allowed: {FORBIDDEN_NAMES[name]}")
        elif name in ATTRIBUTE_BUILTINS and id(node) not in self._checked_builtin_calls:
            self._refuse(
                node, f"'{name}' is only allowed as {name}(obj, 'constant_name', ...) in a call"
            )
        elif _is_dunder(name) and name not in ALLOWED_DUNDER_NAMES:
            self._refuse(node, f"name '{name}' is not allowed (it reaches interpreter internals)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._check_attribute_name(node, node.attr, node.value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ATTRIBUTE_BUILTINS:
            name = node.args[1] if len(node.args) >= 2 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                self._checked_builtin_calls.add(id(func))
                owner = node.args[0]
                self._check_attribute_name(node, name.value, owner)
            else:
                self._refuse(
                    node,
                    f"{func.id} with a computed attribute name is not allowed; write obj.attr",
                )
                self._checked_builtin_calls.add(id(func))
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._methods.update(
            id(stmt)
            for stmt in node.body
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
        )
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name in FORBIDDEN_DUNDER_METHODS:
            self._refuse(node, f"defining '{node.name}' is not allowed: {_MEMORY}")
        elif _is_dunder(node.name) and id(node) not in self._methods:
            self._refuse(node, f"'{node.name}' may only be defined as a method in a class")
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None]
        for annotation in [arg.annotation for arg in every] + [node.returns]:
            self._check_annotation(annotation)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_annotation(node.annotation)
        self.generic_visit(node)

    def _check_annotation(self, annotation: ast.expr | None) -> None:
        """Check the strings inside an annotation as the code ``typing`` would run."""
        if annotation is None:
            return
        for node in ast.walk(annotation):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                self._check_string_annotation(node)

    def _check_string_annotation(self, node: ast.Constant) -> None:
        shown = f"{node.value[:60]!r}"
        try:
            tree = ast.parse(node.value.strip(), mode="eval")
        except (SyntaxError, ValueError):
            self._refuse(node, f"string annotation {shown} is not a type expression")
            return
        if not all(isinstance(part, TYPE_EXPRESSION_NODES) for part in ast.walk(tree)):
            self._refuse(
                node,
                f"string annotation {shown} is not a plain type expression (names, dotted "
                "names, subscripts): typing may evaluate it",
            )
            return
        for part in ast.walk(tree):
            part.lineno = node.lineno  # type: ignore[attr-defined]
        self.visit(tree)
        self._check_annotation(tree.body)
