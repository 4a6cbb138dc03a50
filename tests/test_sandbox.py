"""The sandbox holds even for programs that never went through the static policy."""

from __future__ import annotations

import ast
import dataclasses
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from codeclab.frames import Frame, FrameMismatch, check_frames
from codeclab.sandbox import child, seedcompat
from codeclab.sandbox.isolate import (
    CHILD_SCRIPT,
    WEAK,
    Launcher,
    Limits,
    SandboxError,
    run_decode,
    run_encode,
    scrubbed_env,
    smoke_run,
)
from codeclab.sandbox.policy import check_program

SAMPLE = Path(__file__).parents[1] / "src" / "codeclab" / "data" / "cars_320x240_30f.y4m"
MiB = 1 << 20
# The child's audit hook off: for tests of the process wall (limits, kills) on its own.
HOOK_OFF = dataclasses.replace(WEAK, audit=False)


def read_y4m(path: Path, count: int) -> list[Frame]:
    """The first ``count`` frames of a 4:2:0 y4m file, enough for tests."""
    data = path.read_bytes()
    header, _, rest = data.partition(b"\n")
    fields = dict((token[:1], token[1:]) for token in header.split()[1:])
    width, height = int(fields[b"W"]), int(fields[b"H"])
    size = child.frame_bytes(width, height)
    frames = []
    offset = 0
    for _ in range(count):
        offset = rest.index(b"\n", offset) + 1  # skip "FRAME\n"
        buffer = np.frombuffer(rest[offset : offset + size], dtype=np.uint8)
        frames += child.split_planes(buffer, 1, width, height)
        offset += size
    return frames


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    """Three real 32x16 crops of the bundled clip, taken where the picture has texture."""
    return [
        (y[100:116, 96:128].copy(), u[50:58, 48:64].copy(), v[50:58, 48:64].copy())
        for y, u, v in read_y4m(SAMPLE, 3)
    ]


LOSSLESS = """
import struct
import zlib

import numpy as np


def encode(frames, fps, quality):
    height, width = frames[0][0].shape
    raw = b"".join(plane.tobytes() for frame in frames for plane in frame)
    return struct.pack("<III", width, height, len(frames)) + zlib.compress(raw, 9)


def decode(bitstream):
    width, height, count = struct.unpack_from("<III", bitstream)
    raw = np.frombuffer(zlib.decompress(bitstream[12:]), dtype=np.uint8)
    shapes = [(height, width), (height // 2, width // 2), (height // 2, width // 2)]
    frames, offset = [], 0
    for _ in range(count):
        planes = []
        for rows, cols in shapes:
            planes.append(raw[offset : offset + rows * cols].reshape(rows, cols))
            offset += rows * cols
        frames.append(tuple(planes))
    return frames
"""

SEED = """
import zlib

import numpy as np


def compress_video_frame(frame, frame_index, config):
    assert frame.shape == (config["height"], config["width"], 3) and frame.dtype == np.uint8
    assert 1 <= config["quality"] <= 100 and config["fps"] > 0
    return zlib.compress(frame.tobytes())


def decompress_video_frame(compressed_data, frame_index, config):
    flat = np.frombuffer(zlib.decompress(compressed_data), dtype=np.uint8)
    return flat.reshape(config["height"], config["width"], 3)
"""


def program(encode_body: str, decode_body: str = "return []", prelude: str = "") -> str:
    return (
        f"{prelude}\n"
        f"def encode(frames, fps, quality):\n    {encode_body}\n\n"
        f"def decode(bitstream):\n    {decode_body}\n"
    )


def fail(
    source: str, frames: list[Frame], limits: Limits | None = None, launcher: Launcher = WEAK
) -> SandboxError:
    """Encode with ``source`` (and decode if that works); return the SandboxError raised."""
    limits = limits or Limits()
    with pytest.raises(SandboxError) as caught:
        encoded = run_encode(source, frames, 30.0, 50, limits, launcher)
        run_decode(source, encoded.bitstream, limits, launcher)
    return caught.value


def psnr(a: list[Frame], b: list[Frame]) -> float:
    """PSNR over all planes; identical pictures count as 100 dB, as in the lab's metrics."""
    pairs = [pair for fa, fb in zip(a, b, strict=True) for pair in zip(fa, fb, strict=True)]
    diff = np.concatenate([(x.astype(float) - y).ravel() for x, y in pairs])
    mse = np.mean(diff**2)
    return 100.0 if mse == 0 else float(10 * np.log10(255**2 / mse))


def test_lossless_program_round_trips_exactly(frames):
    check_program(LOSSLESS)
    encoded = run_encode(LOSSLESS, frames, 30.0, 50, Limits())
    decoded = run_decode(LOSSLESS, encoded.bitstream, Limits())
    check_frames(decoded.frames, count=3, width=32, height=16)
    for got, want in zip(decoded.frames, frames, strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    assert encoded.seconds > 0 and decoded.seconds > 0
    smoke_run(LOSSLESS, frames[:2], 30.0, 50, Limits())


def test_encoder_memory_does_not_reach_the_decoder(frames):
    source = program(
        "_CACHE.extend(frames)\n    return str(len(frames)).encode()",
        "return [_CACHE[i] for i in range(int(bitstream))]",
        prelude="_CACHE = []",
    )
    error = fail(source, frames)
    assert error.phase == "decode"
    assert error.reason.startswith("decoder raised IndexError")


def test_decoder_work_directory_holds_only_program_and_bitstream(frames):
    source = program(
        "return b'x'", "raise ValueError(sorted(os.listdir('.')))", prelude="import os"
    )
    error = fail(source, frames)
    assert error.reason == (
        "decoder raised ValueError: ['bitstream.bin', 'child.py', 'program.py', 'seedcompat.py']"
    )


def test_short_decode_is_returned_and_refused_by_check_frames(frames):
    source = LOSSLESS.replace("    return frames\n", "    return frames[:-1]\n")
    encoded = run_encode(source, frames, 30.0, 50, Limits())
    decoded = run_decode(source, encoded.bitstream, Limits())
    assert len(decoded.frames) == 2
    with pytest.raises(FrameMismatch, match="decoder returned 2 frames, source has 3 frames"):
        check_frames(decoded.frames, count=3, width=32, height=16)
    with pytest.raises(SandboxError, match="2 frames") as caught:
        smoke_run(source, frames, 30.0, 50, Limits())
    assert caught.value.phase == "validation"


def test_infinite_loop_is_stopped_by_the_cpu_limit(frames):
    start = time.monotonic()
    error = fail(program("while True:\n        pass"), frames, Limits(cpu_seconds=1))
    assert error.reason == "encoder exceeded CPU limit of 1 s"
    assert time.monotonic() - start < 10


def _gone(pid: int) -> bool:
    """True if no live process has this id (a zombie waiting for init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def test_wall_clock_timeout_kills_the_whole_process_group(frames):
    source = program(
        "child = os.fork()\n"
        "    print('PIDS', os.getpid(), child or os.getpid(), flush=True)\n"
        "    time.sleep(60)",
        prelude="import os\nimport time",
    )
    start = time.monotonic()
    error = fail(source, frames, Limits(wall_seconds=1.5), HOOK_OFF)
    assert error.reason == "encoder timed out after 1.5 s (wall clock)"
    assert time.monotonic() - start < 10
    # both processes print; either may come first
    pids = {int(pid) for pair in re.findall(r"PIDS (\d+) (\d+)", error.detail) for pid in pair}
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids)


def test_memory_hog_is_reported_as_out_of_memory(frames):
    source = program(
        "blocks = []\n    while True:\n        blocks.append(np.ones(64 << 20, dtype=np.uint8))",
        prelude="import numpy as np",
    )
    error = fail(source, frames, Limits(memory_mb=512))
    assert error.reason == "encoder ran out of memory (limit 512 MB)"
    assert "program.py" in error.detail


def test_program_that_bypasses_the_policy_sees_no_secrets(frames, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-test-secret")
    source = program("return repr(dict(os.environ)).encode()", prelude="import os")
    environ = run_encode(source, frames, 30.0, 50, Limits()).bitstream.decode()
    assert "sk-test-secret" not in environ and "aws-test-secret" not in environ
    assert set(eval(environ)) <= set(scrubbed_env(Path("/")))


def test_bitstream_over_the_cap_is_refused(frames):
    error = fail(program("return bytes(2 * 1024 * 1024)"), frames, Limits(max_bitstream_bytes=MiB))
    assert error.phase == "encode"
    assert error.reason == "bitstream is 2.0 MB, over the cap of 1.0 MB"


def test_program_output_is_capped(frames):
    chatty = LOSSLESS.replace(
        "def encode(frames, fps, quality):\n",
        "def encode(frames, fps, quality):\n    for i in range(4000):\n        print('x' * 999)\n",
    )
    encoded = run_encode(chatty, frames, 30.0, 50, Limits(max_output_bytes=4096))
    assert "bytes omitted" in encoded.stdout_tail
    assert len(encoded.stdout_tail) < 4096 + 100


def test_encoder_returning_str_is_refused(frames):
    error = fail(program("return 'not bytes'"), frames)
    assert error.reason == "encoder returned str, expected bytes"


def test_decoder_exception_gives_type_message_and_traceback(frames):
    source = program("return b'x'", "raise ValueError('corrupt header')")
    error = fail(source, frames)
    assert error.phase == "decode"
    assert error.reason == "decoder raised ValueError: corrupt header"
    assert 'program.py", line' in error.detail


def test_decoder_returning_inconsistent_shapes_is_refused(frames):
    source = program(
        "return b'x'",
        "y = np.zeros((16, 32), np.uint8)\n"
        "    c = np.zeros((8, 16), np.uint8)\n"
        "    return [(y, c, c), (y, c, c[:4])]",
        prelude="import numpy as np",
    )
    error = fail(source, frames)
    assert error.reason.startswith("decoder returned 2 frames of inconsistent shapes: frame 1")


def test_seed_program_round_trips_through_the_adapter(frames):
    assert check_program(SEED).style == "seed"
    encoded = run_encode(SEED, frames, 30.0, 75, Limits())
    quality, width, height, payloads = seedcompat.unpack_seed_container(encoded.bitstream)
    assert (quality, width, height, len(payloads)) == (75, 32, 16, 3)
    decoded = run_decode(SEED, encoded.bitstream, Limits())
    check_frames(decoded.frames, count=3, width=32, height=16)
    assert psnr(decoded.frames, frames) > 40


def test_seed_decoder_returning_the_wrong_shape_is_refused(frames):
    source = SEED.replace(
        'reshape(config["height"], config["width"], 3)',
        'reshape(config["height"], config["width"], 3)[:, :-2]',
    )
    error = fail(source, frames)
    assert error.reason == (
        "decoder returned a (16, 30, 3) uint8 array from decompress_video_frame for frame 0, "
        "expected a (16, 32, 3) uint8 array"
    )


def test_contract_and_syntax_problems_fail_validation(frames):
    for source in ("def encode(frames, fps, quality):\n    return b''\n", "def encode(:\n"):
        with pytest.raises(SandboxError) as caught:
            run_encode(source, frames, 30.0, 50, Limits())
        assert caught.value.phase == "validation"


def test_launcher_puts_a_wrapper_in_front_of_the_child(frames):
    launcher = Launcher(wrapper=lambda workdir: ["/usr/bin/env", f"SANDBOX_DIR={workdir}"])
    argv = launcher.argv(Path("/tmp/w"), "encode")
    assert argv[:2] == ["/usr/bin/env", "SANDBOX_DIR=/tmp/w"]
    assert argv[-2:] == ["child.py", "encode"]
    encoded = run_encode(LOSSLESS, frames, 30.0, 50, Limits(), launcher)
    decoded = run_decode(LOSSLESS, encoded.bitstream, Limits(), launcher)
    assert len(decoded.frames) == 3
    assert launcher.isolation == "weak"


def test_limits_scale_with_the_clip():
    reference = Limits.for_clip(320, 240, 30)
    assert reference.cpu_seconds == 60
    assert reference.wall_seconds == 130
    raw = child.frame_bytes(320, 240) * 30
    assert reference.max_bitstream_bytes >= 2 * raw
    assert reference.file_size_mb * MiB >= reference.max_bitstream_bytes
    bigger = Limits.for_clip(1920, 1080, 60)
    assert bigger.cpu_seconds > reference.cpu_seconds
    assert bigger.memory_mb > reference.memory_mb


def test_colour_conversion_round_trip_is_close():
    source = read_y4m(SAMPLE, 2)  # whole pictures, out-of-gamut corners included
    back = [seedcompat.bgr_to_yuv420(seedcompat.yuv420_to_bgr(frame)) for frame in source]
    assert 40 < psnr(back, source) < 100


def test_seed_container_refuses_truncation():
    bitstream = seedcompat.pack_seed_container(50, 32, 16, [b"abc", b"defg"])
    assert seedcompat.unpack_seed_container(bitstream) == (50, 32, 16, [b"abc", b"defg"])
    with pytest.raises(ValueError, match="truncated inside payload 1"):
        seedcompat.unpack_seed_container(bitstream[:-1])
    with pytest.raises(ValueError, match="trailing"):
        seedcompat.unpack_seed_container(bitstream + b"!")
    with pytest.raises(ValueError, match="seed container"):
        seedcompat.unpack_seed_container(b"XXXX" + bitstream[4:])


def test_ignoring_sigxcpu_still_ends_at_the_cpu_limit(frames):
    source = program(
        "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n    while True:\n        pass",
        prelude="import signal",
    )
    error = fail(source, frames, Limits(cpu_seconds=1), HOOK_OFF)
    assert error.reason == "encoder exceeded CPU limit of 1 s"


def test_writing_past_the_file_size_limit_is_named(frames):
    source = program("return bytes(3 * MiB)", prelude=f"MiB = {MiB}")
    error = fail(source, frames, Limits(file_size_mb=1))
    assert error.reason == "encoder exceeded the file size limit of 1 MB"
    assert 'File "program.py"' not in error.detail  # the child's write failed, not the program


def test_child_script_imports_only_the_standard_library_and_numpy():
    tree = ast.parse(CHILD_SCRIPT.read_text())
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    assert modules - set(sys.stdlib_module_names) == {"numpy"}
