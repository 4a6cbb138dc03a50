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

The seed adapter (``seedcompat.py``, copied beside this file) calls program code, so it runs
here in the child. The lab's parent side imports this module for the plane layout; nothing
runs on import.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import resource
import sys
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
    try:
        MODES[argv[1]](job)
    except BaseException as exc:  # anything the program does ends here, reported
        Path(ERROR).write_text(json.dumps(error_record(exc)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
