"""Tests for the seed codec programs ``intra_dct`` and ``inter_mc``.

Each program is a standalone file obeying the codec program contract
(``encode(frames, fps, quality) -> bytes``, ``decode(bytes) -> frames``); the tests load
them from their paths, as the lab does, and use only the bundled sample clip.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "src" / "codeclab" / "programs"
SAMPLE = ROOT / "src" / "codeclab" / "data" / "cars_320x240_30f.y4m"
NAMES = ("intra_dct", "inter_mc")
ALLOWED_IMPORTS = {
    "numpy", "scipy", "math", "struct", "zlib", "lzma", "bz2", "io", "itertools",
    "functools", "collections", "heapq", "bisect", "array", "dataclasses", "typing",
    "enum", "constriction",
}  # fmt: skip
PARAM_RE = re.compile(
    r"^([A-Z][A-Z0-9_]*) = (\S+)  # @param (int|float|choice) (\S+)$", flags=re.MULTILINE
)

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- helpers


def read_y4m(path: Path, limit: int | None = None) -> list[Frame]:
    """Minimal YUV4MPEG2 4:2:0 reader: header line, then 'FRAME...\\n' + Y, U, V planes."""
    data = path.read_bytes()
    end = data.index(b"\n")
    fields = data[:end].split()
    assert fields[0] == b"YUV4MPEG2"
    w = int(next(f[1:] for f in fields if f.startswith(b"W")))
    h = int(next(f[1:] for f in fields if f.startswith(b"H")))
    size = w * h * 3 // 2
    pos, frames = end + 1, []
    while pos < len(data) and (limit is None or len(frames) < limit):
        pos = data.index(b"\n", pos) + 1
        buf = np.frombuffer(data[pos : pos + size], np.uint8)
        pos += size
        y = buf[: w * h].reshape(h, w)
        u = buf[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
        v = buf[w * h * 5 // 4 :].reshape(h // 2, w // 2)
        frames.append((y, u, v))
    return frames


def crop(frames: list[Frame], w: int, h: int, x: int = 0, y: int = 0) -> list[Frame]:
    """Crop 4:2:0 frames (even offsets and sizes)."""
    return [
        (
            fy[y : y + h, x : x + w].copy(),
            fu[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2].copy(),
            fv[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2].copy(),
        )
        for fy, fu, fv in frames
    ]


_loads = itertools.count()


def load(name: str) -> ModuleType:
    """Import a program from its file under a fresh module name (no shared state)."""
    module_name = f"_codec_program_{name}_{next(_loads)}"
    spec = importlib.util.spec_from_file_location(module_name, PROGRAMS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0**2 / max(mse, 1e-10))


def psnr_y(src: list[Frame], out: list[Frame]) -> float:
    return float(np.mean([psnr(s[0], o[0]) for s, o in zip(src, out, strict=True)]))


def check_shapes(src: list[Frame], out: list[Frame]) -> None:
    assert isinstance(out, list)
    assert len(out) == len(src)
    for s, o in zip(src, out, strict=True):
        assert len(o) == 3
        for sp, op in zip(s, o, strict=True):
            assert isinstance(op, np.ndarray)
            assert op.dtype == np.uint8
            assert op.shape == sp.shape


def declared_params(name: str) -> list[tuple[str, str, str, str]]:
    return PARAM_RE.findall((PROGRAMS / f"{name}.py").read_text())


def extreme_values(kind: str, spec: str) -> list[int | float]:
    if kind == "choice":
        return [int(v) if v.lstrip("-").isdigit() else float(v) for v in spec.split(",")]
    lo, hi = spec.split("..")
    cast = int if kind == "int" else float
    return [cast(lo), cast(hi)]


@pytest.fixture(scope="module")
def clip() -> list[Frame]:
    return read_y4m(SAMPLE, limit=6)


@pytest.fixture(scope="module", params=NAMES)
def program(request: pytest.FixtureRequest) -> ModuleType:
    return load(request.param)


# ----------------------------------------------------------------------------- tests


def test_sample_reader(clip: list[Frame]) -> None:
    assert len(clip) == 6
    assert clip[0][0].shape == (240, 320) and clip[0][1].shape == (120, 160)


@pytest.mark.parametrize("size", [(34, 18), (66, 50), (320, 240)])
def test_round_trip_shapes(program: ModuleType, clip: list[Frame], size: tuple[int, int]) -> None:
    w, h = size
    frames = crop(clip[:4], w, h, x=(320 - w) // 4 * 2, y=(240 - h) // 4 * 2)
    bitstream = program.encode(frames, 30.0, 60)
    assert isinstance(bitstream, bytes)
    out = program.decode(bitstream)
    check_shapes(frames, out)
    assert psnr_y(frames, out) > 30.0


def test_single_frame(program: ModuleType, clip: list[Frame]) -> None:
    frames = crop(clip[:1], 48, 32)
    out = program.decode(program.encode(frames, 25.0, 50))
    check_shapes(frames, out)


def test_deterministic(program: ModuleType, clip: list[Frame]) -> None:
    frames = crop(clip[:4], 96, 64, 100, 120)
    a = program.encode(frames, 30.0, 45)
    b = program.encode(frames, 30.0, 45)
    assert a == b
    first, second = program.decode(a), program.decode(a)
    for fa, fb in zip(first, second, strict=True):
        for pa, pb in zip(fa, fb, strict=True):
            assert np.array_equal(pa, pb)


def test_quality_monotonic(program: ModuleType, clip: list[Frame]) -> None:
    frames = crop(clip[:4], 160, 120, 80, 96)
    sizes, quality = [], []
    for q in (20, 50, 80):
        bitstream = program.encode(frames, 30.0, q)
        sizes.append(len(bitstream))
        quality.append(psnr_y(frames, program.decode(bitstream)))
    assert sizes[0] < sizes[1] < sizes[2]
    assert quality[0] < quality[1] < quality[2]


@pytest.mark.parametrize("name", NAMES)
def test_decode_in_fresh_process(name: str, clip: list[Frame], tmp_path: Path) -> None:
    """The bitstream alone must be enough: decode in an interpreter that never encoded."""
    frames = crop(clip[:3], 66, 50, 120, 100)
    module = load(name)
    bitstream = module.encode(frames, 30.0, 55)
    expected = module.decode(bitstream)
    (tmp_path / "in.bin").write_bytes(bitstream)
    script = textwrap.dedent(
        f"""
        import importlib.util, pickle
        spec = importlib.util.spec_from_file_location("fresh", {str(PROGRAMS / (name + ".py"))!r})
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        data = open({str(tmp_path / "in.bin")!r}, "rb").read()
        frames = mod.decode(data)
        with open({str(tmp_path / "out.pkl")!r}, "wb") as f:
            pickle.dump([tuple(p.copy() for p in fr) for fr in frames], f)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    with open(tmp_path / "out.pkl", "rb") as f:
        fresh = pickle.load(f)
    check_shapes(frames, fresh)
    for fa, fb in zip(expected, fresh, strict=True):
        for pa, pb in zip(fa, fb, strict=True):
            assert np.array_equal(pa, pb)


@pytest.mark.parametrize("name", NAMES)
def test_decoder_ignores_module_constants(name: str, clip: list[Frame]) -> None:
    """Mutating tunables after encoding must not change what the bitstream decodes to."""
    frames = crop(clip[:3], 66, 50)
    module = load(name)
    bitstream = module.encode(frames, 30.0, 50)
    expected = module.decode(bitstream)
    for pname, _value, kind, spec in declared_params(name):
        setattr(module, pname, extreme_values(kind, spec)[-1])
    out = module.decode(bitstream)
    for fa, fb in zip(expected, out, strict=True):
        for pa, pb in zip(fa, fb, strict=True):
            assert np.array_equal(pa, pb)


@pytest.mark.parametrize("name", NAMES)
def test_param_declarations(name: str) -> None:
    """Every tunable uses the marker syntax and its default lies in its declared range."""
    source = (PROGRAMS / f"{name}.py").read_text()
    params = declared_params(name)
    assert len(params) >= 5
    assert len(params) == source.count("# @param")
    for pname, value, kind, spec in params:
        if kind == "choice":
            assert value in spec.split(","), pname
        else:
            lo, hi = spec.split("..")
            cast = int if kind == "int" else float
            assert cast(lo) <= cast(value) <= cast(hi), pname
            if kind == "int":
                int(value)


@pytest.mark.parametrize("name", NAMES)
def test_param_extremes_round_trip(name: str, clip: list[Frame]) -> None:
    """Every value at the edge of every declared range still gives a working codec."""
    frames = crop(clip[:3], 66, 50, 130, 110)
    for pname, _value, kind, spec in declared_params(name):
        for value in extreme_values(kind, spec):
            module = load(name)
            setattr(module, pname, value)
            out = module.decode(module.encode(frames, 30.0, 60))
            check_shapes(frames, out)
            assert psnr_y(frames, out) > 24.0, (pname, value)


@pytest.mark.parametrize(
    "combo",
    [
        {"MB_SIZE": 8, "BLOCK_SIZE": 16, "SEARCH_RANGE": 32, "MV_PRECISION": 4},
        {"MB_SIZE": 32, "BLOCK_SIZE": 4, "SEARCH_RANGE": 2, "MV_PRECISION": 1},
        {"MB_SIZE": 32, "BLOCK_SIZE": 16, "MV_PRECISION": 2, "GOP_SIZE": 2, "ME_ROUNDS": 4},
    ],
)
def test_inter_param_combinations(combo: dict, clip: list[Frame]) -> None:
    """Interacting structural tunables (block vs macroblock size, range, precision)."""
    frames = crop(clip[:4], 98, 66, 100, 90)
    module = load("inter_mc")
    for pname, value in combo.items():
        setattr(module, pname, value)
    out = module.decode(module.encode(frames, 30.0, 50))
    check_shapes(frames, out)
    assert psnr_y(frames, out) > 28.0


def test_rejects_malformed_input(program: ModuleType, clip: list[Frame]) -> None:
    with pytest.raises(ValueError):
        program.encode([], 30.0, 50)
    odd = [(f[0][:17, :32], f[1][:8, :16], f[2][:8, :16]) for f in clip[:2]]
    with pytest.raises(ValueError):
        program.encode(odd, 30.0, 50)
    mixed = crop(clip[:1], 32, 16) + crop(clip[1:2], 48, 16)
    with pytest.raises(ValueError):
        program.encode(mixed, 30.0, 50)


def test_corrupted_bitstreams_raise(program: ModuleType, clip: list[Frame]) -> None:
    frames = crop(clip[:3], 66, 50)
    good = program.encode(frames, 30.0, 50)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x5A
    bad_inputs = [b"", good[:10], good[:-7], good[:-4], bytes(flipped), b"XXXX" + good[4:]]
    for bad in bad_inputs:
        with pytest.raises(Exception):  # noqa: B017 - any exception is acceptable
            program.decode(bad)


def test_inter_beats_intra_on_sample() -> None:
    """Static camera, moving cars: prediction must save most of the bits at equal PSNR."""
    frames = read_y4m(SAMPLE, limit=10)
    intra, inter = load("intra_dct"), load("inter_mc")
    b_intra = intra.encode(frames, 30.0, 45)
    b_inter = inter.encode(frames, 30.0, 50)
    p_intra = psnr_y(frames, intra.decode(b_intra))
    p_inter = psnr_y(frames, inter.decode(b_inter))
    assert p_inter >= p_intra - 0.25
    assert len(b_inter) < 0.5 * len(b_intra)


@pytest.mark.parametrize("name", NAMES)
def test_program_is_self_contained(name: str) -> None:
    """Only allowed imports, no file/process access or dynamic code, no dunder access."""
    tree = ast.parse((PROGRAMS / f"{name}.py").read_text())
    forbidden = {"open", "eval", "exec", "compile", "__import__", "getattr", "setattr", "globals"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] in ALLOWED_IMPORTS for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module.split(".")[0] in ALLOWED_IMPORTS
        elif isinstance(node, ast.Name):
            assert node.id not in forbidden, node.id
        elif isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__"), node.attr
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"encode", "decode"} <= names
