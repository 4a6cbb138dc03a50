"""The process that runs one side of a codec program inside the sandbox.

The lab copies this file and ``program.py`` into a fresh work directory and runs
``python child.py encode`` or ``python child.py decode`` there. It imports only the standard
library and numpy, never codeclab: a stricter isolation level hides the project checkout from
sandboxed processes. It trusts nothing the program returns: it checks types and shapes, then
writes raw planes the lab reads back itself. Nothing is pickled.

Work directory files:
    job.json       written by the lab; read and deleted before the program loads
    program.py     the program source
    frames.yuv     encode only: the source planes Y, U, V of each frame, concatenated
    bitstream.bin  written by encode, the only input of decode
    decoded.yuv    decode's planes, laid out like frames.yuv; decoded.json: count, width, height
    error.json     on failure: kind, type, message, traceback tail

Before the program is imported the child installs a Python audit hook (PEP 578), a second
layer behind the static policy and the process wall: it refuses file access outside the work
directory (reads of the interpreter's standard library and of the allowed packages excepted),
process creation, signals, sockets, ctypes, and imports the program may not make. The first
refusal ends the child at once (the program cannot catch it), with error.json naming it. The
lab turns the hook off only to test the outer wall on its own (``job["audit"]``).

The seed adapter (``seedcompat.py``, copied beside this file) calls program code, so it runs
here in the child. The lab's parent side imports this module for the plane layout; nothing
runs on import.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import resource
import sys
import sysconfig
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np


def _sibling(name: str) -> ModuleType:
    """Load a module that sits next to this file, here in the package or in the work dir."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


seedcompat = _sibling("seedcompat")
ProgramFault = seedcompat.ProgramFault

JOB = "job.json"
PROGRAM = "program.py"
FRAMES = "frames.yuv"
BITSTREAM = "bitstream.bin"
DECODED = "decoded.yuv"
DECODED_META = "decoded.json"
ERROR = "error.json"

MiB = 1 << 20
MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_LINES = 20
MAX_TRACEBACK_CHARS = 4000

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]

# job limit name -> (resource, unit). RLIMIT_NPROC is not enforced for root, and root may
# raise its own hard limits again: that is part of why this level is "weak" isolation.
RLIMITS = {
    "cpu_seconds": (resource.RLIMIT_CPU, 1),
    "memory_mb": (resource.RLIMIT_AS, MiB),
    "file_size_mb": (resource.RLIMIT_FSIZE, MiB),
    "open_files": (resource.RLIMIT_NOFILE, 1),
    "processes": (resource.RLIMIT_NPROC, 1),
}


# Audit events refused outright: process creation and signals, sockets, ctypes, new hooks.
REFUSED_EVENTS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "os.kill",
        "os.killpg",
        "subprocess.Popen",
        "pty.spawn",
        "sys.addaudithook",
        "sys.setprofile",
        "sys.settrace",
    }
)
REFUSED_EVENT_PREFIXES = ("socket.", "ctypes.", "_ctypes.")
# Events whose first arguments are paths the program changes: they must be in the work dir.
WRITE_EVENTS = {
    "os.remove": 1,
    "os.rmdir": 1,
    "os.mkdir": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.truncate": 1,
    "os.utime": 1,
    "os.rename": 2,
    "os.link": 2,
    "os.symlink": 2,
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class AuditGuard:
    """The audit hook's rules: where the program may read and write, and what it may import.

    ``allowed_imports`` and ``forbidden_modules`` come from the lab (the contract's lists),
    so this file stays free of codeclab. An import counts as the program's when the code that
    asked for it is not a file of the trusted read roots: ``program.py`` itself, or code it
    generated (a string annotation that ``typing`` evaluates runs as ``<string>``).
    """

    def __init__(
        self, workdir: Path, allowed_imports: Sequence[str], forbidden_modules: Sequence[str]
    ) -> None:
        self.workdir = str(workdir.resolve())
        self.allowed_imports = frozenset(allowed_imports)
        self.forbidden_modules = tuple(forbidden_modules)
        paths = sysconfig.get_paths()
        roots = {paths["stdlib"], paths["platstdlib"], *(p for p in sys.path if p.endswith(".zip"))}
        for name in self.allowed_imports:
            spec = importlib.util.find_spec(name) if name != "__future__" else None
            if spec is not None and spec.origin and spec.origin not in {"built-in", "frozen"}:
                roots.update(spec.submodule_search_locations or [spec.origin])
                # its metadata too: scipy.sparse reads numpy's version through it
                roots.update(map(str, Path(spec.origin).parents[1].glob(f"{name}-*.dist-info")))
        self.read_roots = tuple(sorted(os.path.realpath(root) for root in roots))

    def __call__(self, event: str, args: tuple) -> None:
        problem = self.problem(event, args)
        if problem is not None:
            message = f"was refused by the sandbox: {problem}"[:MAX_MESSAGE_CHARS]
            Path(ERROR).write_text(json.dumps({"kind": "contract", "message": message}))
            os._exit(1)

    def problem(self, event: str, args: tuple) -> str | None:
        """Why ``event`` is refused, or None if it is allowed."""
        if event in REFUSED_EVENTS or event.startswith(REFUSED_EVENT_PREFIXES):
            return f"{event} is not allowed"
        if event == "open":
            return self._open_problem(args[0], args[1], args[2])
        if event in WRITE_EVENTS:
            paths = args[: WRITE_EVENTS[event]]
            return next((p for path in paths if (p := self._path_problem(path, True))), None)
        if event == "import":
            return self._import_problem(args[0])
        return None

    def _open_problem(self, path: object, mode: object, flags: object) -> str | None:
        if isinstance(mode, str):
            write = any(letter in mode for letter in "wax+")
        else:
            write = isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        return self._path_problem(path, write)

    def _path_problem(self, path: object, write: bool) -> str | None:
        if path is None or isinstance(path, int):  # the work directory, or a descriptor
            return None
        try:
            real = os.path.realpath(os.fsdecode(path))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return f"a path of type {type(path).__name__} is not allowed"
        roots = (self.workdir,) if write else (self.workdir, *self.read_roots)
        if any(_inside(real, root) for root in roots):
            return None
        action = "writing" if write else "reading"
        return f"{action} {real!r} is not allowed: outside the work directory"

    def _import_problem(self, module: object) -> str | None:
        name = str(module)
        if not self._program_is_importing():
            return None
        parts = name.split(".")
        private = any(part.startswith("_") for part in parts[1:])
        forbidden = any(name == bad or name.startswith(f"{bad}.") for bad in self.forbidden_modules)
        if parts[0] not in self.allowed_imports or private or forbidden:
            return f"import of '{name}' is not allowed"
        return None

    def _program_is_importing(self) -> bool:
        """Whether the nearest frame outside the import machinery is not a trusted file."""
        frame = sys._getframe(1)
        while frame is not None and (
            frame.f_globals is globals() or frame.f_code.co_filename.startswith("<frozen ")
        ):
            frame = frame.f_back
        if frame is None:
            return False
        filename = frame.f_code.co_filename
        return not (os.path.isabs(filename) and any(_inside(filename, r) for r in self.read_roots))


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def install_guard(job: dict) -> None:
    """Install the audit hook for the program about to load, unless the lab turned it off."""
    if job.get("audit", True):
        sys.addaudithook(AuditGuard(Path.cwd(), job["allowed_imports"], job["forbidden_modules"]))


class BitstreamTooLarge(Exception):
    """The encoder's bitstream is over the cap; the lab words the message."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(size)


def apply_limits(limits: dict[str, float]) -> None:
    """Set the resource limits before the program loads; they bind everything it does."""
    for key, (which, unit) in RLIMITS.items():
        value = int(limits[key] * unit)
        _, current_hard = resource.getrlimit(which)
        # CPU: SIGXCPU at the soft limit, SIGKILL a second later if the program ignores it.
        hard = value + 1 if which == resource.RLIMIT_CPU else value
        if current_hard != resource.RLIM_INFINITY:
            value, hard = min(value, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (value, hard))


def frame_bytes(width: int, height: int) -> int:
    """Bytes of one 4:2:0 picture: Y plus two quarter-size chroma planes."""
    return width * height + 2 * (width // 2) * (height // 2)


def split_planes(buffer: np.ndarray, count: int, width: int, height: int) -> list[Frame]:
    """Cut a flat uint8 buffer of concatenated Y, U, V planes into ``count`` frames."""
    if buffer.size != count * frame_bytes(width, height):
        raise ValueError(f"{buffer.size} bytes do not hold {count} frames of {width}x{height}")
    shapes = ((height, width), (height // 2, width // 2), (height // 2, width // 2))
    frames = []
    offset = 0
    for _ in range(count):
        planes = []
        for shape in shapes:
            size = shape[0] * shape[1]
            planes.append(buffer[offset : offset + size].reshape(shape))
            offset += size
        frames.append((planes[0], planes[1], planes[2]))
    return frames


def write_planes(path: Path, frames: Sequence[Sequence[np.ndarray]]) -> None:
    """Write each frame's planes, Y then U then V, as raw uint8 bytes."""
    with open(path, "wb") as out:
        for frame in frames:
            for plane in frame:
                out.write(np.ascontiguousarray(plane, dtype=np.uint8).tobytes())


def check_decoded(frames: object) -> tuple[int, int]:
    """Width and height of a valid decode: a list of (Y, U, V) uint8 4:2:0 frames."""
    if not isinstance(frames, list | tuple):
        raise ProgramFault(f"returned {type(frames).__name__}, expected a list of (Y, U, V) frames")
    for index, frame in enumerate(frames):
        if not isinstance(frame, list | tuple) or len(frame) != 3:
            raise ProgramFault(f"returned frame {index} that is not a (Y, U, V) tuple of 3 planes")
        for name, plane in zip("YUV", frame, strict=True):
            if not (isinstance(plane, np.ndarray) and plane.dtype == np.uint8 and plane.ndim == 2):
                raise ProgramFault(
                    f"returned frame {index} plane {name} as {seedcompat.describe(plane)}, "
                    "expected a 2-D uint8 array"
                )
    if not frames:
        return 0, 0
    height, width = frames[0][0].shape
    if height == 0 or width == 0 or height % 2 or width % 2:
        raise ProgramFault(f"returned {width}x{height} pictures; 4:2:0 needs even, non-zero sizes")
    shapes = ((height, width), (height // 2, width // 2), (height // 2, width // 2))
    for index, frame in enumerate(frames):
        for name, plane, shape in zip("YUV", frame, shapes, strict=True):
            if plane.shape != shape:
                raise ProgramFault(
                    f"returned {len(frames)} frames of inconsistent shapes: frame {index} "
                    f"plane {name} is {plane.shape}, expected {shape}"
                )
    return width, height


def load_program() -> ModuleType:
    """Import ``program.py`` as the module ``program`` (registered, so dataclasses work)."""
    spec = importlib.util.spec_from_file_location("program", PROGRAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["program"] = module
    spec.loader.exec_module(module)
    return module


def encode_mode(job: dict) -> None:
    """Encode the source frames the lab wrote and write the bitstream."""
    buffer = np.fromfile(FRAMES, dtype=np.uint8)
    frames = split_planes(buffer, job["count"], job["width"], job["height"])
    program = load_program()
    if job["style"] == "seed":
        bitstream = seedcompat.seed_encode(program, frames, job["fps"], job["quality"])
    else:
        bitstream = program.encode(frames, job["fps"], job["quality"])
    if not isinstance(bitstream, bytes | bytearray):
        raise ProgramFault(f"returned {type(bitstream).__name__}, expected bytes")
    if len(bitstream) > job["max_bitstream_bytes"]:
        raise BitstreamTooLarge(len(bitstream))
    Path(BITSTREAM).write_bytes(bytes(bitstream))


def decode_mode(job: dict) -> None:
    """Decode the bitstream, the only input, and write the planes for the lab to read."""
    bitstream = Path(BITSTREAM).read_bytes()
    program = load_program()
    if job["style"] == "seed":
        frames = seedcompat.seed_decode(program, bitstream)
    else:
        frames = program.decode(bitstream)
    width, height = check_decoded(frames)
    write_planes(Path(DECODED), frames)
    meta = {"count": len(frames), "width": width, "height": height}
    Path(DECODED_META).write_text(json.dumps(meta))


MODES = {"encode": encode_mode, "decode": decode_mode}


def error_record(exc: BaseException) -> dict[str, object]:
    """What the lab needs to word the failure; program text in it is capped."""
    if isinstance(exc, BitstreamTooLarge):
        return {"kind": "too_big", "size": exc.size}
    if isinstance(exc, ProgramFault):
        return {"kind": "contract", "message": _safe_str(exc)[:MAX_MESSAGE_CHARS]}
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:  # Python ignores SIGXFSZ
        return {"kind": "file_size", "traceback": _traceback_tail(exc)}
    return {
        "kind": "memory" if _is_out_of_memory(exc) else "raised",
        "type": type(exc).__name__,
        "message": _safe_str(exc)[:MAX_MESSAGE_CHARS],
        "traceback": _traceback_tail(exc),
    }


def _is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or a native library that could not be mapped under the address limit."""
    mapping_failed = isinstance(exc, ImportError) and "failed to map segment" in _safe_str(exc)
    return isinstance(exc, MemoryError) or mapping_failed


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a program's exception may break its own __str__
        return "<unprintable exception>"


def _traceback_tail(exc: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:
        return ""
    lines = text.replace(f"{Path.cwd()}/", "").splitlines()  # the temporary path is noise
    return "\n".join(lines[-MAX_TRACEBACK_LINES:])[-MAX_TRACEBACK_CHARS:]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in MODES:
        print(f"usage: {argv[0]} {{{','.join(MODES)}}}", file=sys.stderr)
        return 2
    job = json.loads(Path(JOB).read_text())
    Path(JOB).unlink()
    apply_limits(job["limits"])
    install_guard(job)
    try:
        MODES[argv[1]](job)
    except BaseException as exc:  # anything the program does ends here, reported
        Path(ERROR).write_text(json.dumps(error_record(exc)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
