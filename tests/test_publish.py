"""The published decoder runs alone, in a clean interpreter, and decodes what the lab decoded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codeclab.design.evolve import program_sha256
from codeclab.media import load_clip
from codeclab.record import ExperimentRecord
from codeclab.sandbox import isolate
from codeclab.store.publish import decoder_file, program_from_decoder, requirements
from tests.conftest import crop

PROGRAMS = Path(__file__).parent / "programs"
SEED_STYLE = '''"""A seed-style program: one BGR picture at a time, quantised, zlib."""
from __future__ import annotations

import zlib

import numpy as np


def compress_video_frame(frame, frame_index, config):
    step = 4 if config["quality"] > 50 else 16
    return bytes([step]) + zlib.compress((frame // step).astype(np.uint8).tobytes())


def decompress_video_frame(compressed_data, frame_index, config):
    step = compressed_data[0]
    codes = np.frombuffer(zlib.decompress(compressed_data[1:]), dtype=np.uint8)
    shape = (config["height"], config["width"], 3)
    return (codes.reshape(shape).astype(np.int32) * step + step // 2).clip(0, 255).astype(np.uint8)
'''

NAMED = '''"""Decodes only under the module name the lab's sandbox gives it, as an honest program
may (a guard like ``if __name__ == "program"``): the published decoder must give the same."""
import zlib

import numpy as np


def encode(frames, fps, quality):
    height, width = frames[0][0].shape
    planes = b"".join(plane.tobytes() for frame in frames for plane in frame)
    return bytes([len(frames), width, height]) + zlib.compress(planes)


def decode(bitstream):
    if __name__ != "program":
        return []
    count, width, height = bitstream[:3]
    data = np.frombuffer(zlib.decompress(bitstream[3:]), dtype=np.uint8)
    shapes = [(height, width), (height // 2, width // 2), (height // 2, width // 2)]
    frames, offset = [], 0
    for _ in range(count):
        planes = []
        for h, w in shapes:
            planes.append(data[offset : offset + h * w].reshape(h, w))
            offset += h * w
        frames.append(tuple(planes))
    return frames
'''


def _record(source: str) -> ExperimentRecord:
    return ExperimentRecord(
        experiment_id="e1",
        status="ok",
        program_sha256=program_sha256(source),
        program_name="p",
        designer="manual",
        isolation="weak",
        source_bytes=len(source),
        qualities=[70],
    )


def _publish(tmp_path: Path, source: str, frames, quality: int = 70) -> tuple[Path, Path, list]:
    limits = isolate.Limits.for_clip(64, 48, len(frames))
    bitstream = isolate.run_encode(source, frames, 30.0, quality, limits).bitstream
    lab = isolate.run_decode(source, bitstream, limits).frames
    decoder = tmp_path / "e1_decoder.py"
    decoder.write_text(decoder_file(source, _record(source)))
    (tmp_path / "in.bin").write_bytes(bitstream)
    return decoder, tmp_path / "in.bin", lab


@pytest.mark.parametrize(
    "source",
    [(PROGRAMS / "quantise_zlib.py").read_text(), SEED_STYLE, NAMED],
    ids=["quantise_zlib", "seed_style", "named"],
)
def test_decoder_runs_alone_and_matches_the_lab(tmp_path, sample, source):
    frames = [crop(f, 64, 48, 128, 96) for f in sample.frames[:3]]
    decoder, bitstream, lab = _publish(tmp_path, source, frames)
    out = tmp_path / "out.y4m"
    done = subprocess.run(
        [sys.executable, "-I", str(decoder), str(bitstream), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "3 frames of 64x48" in done.stdout
    decoded = load_clip(out).frames
    for mine, theirs in zip(decoded, lab, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert np.array_equal(a, b)


def test_decoder_offers_the_seed_interface_and_refuses_tampering(tmp_path, sample):
    frames = [crop(f, 64, 48, 128, 96) for f in sample.frames[:2]]
    decoder, bitstream, lab = _publish(tmp_path, SEED_STYLE, frames)
    script = (
        "import sys; sys.path.insert(0, '.'); import e1_decoder as d\n"
        "b = open('in.bin', 'rb').read()\n"
        "bgr = d.decompress_video_frame(b, 1, {})\n"
        "print(bgr.shape, bgr.dtype)\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.stdout.strip() == "(48, 64, 3) uint8", done.stderr
    decoder.write_text(decoder.read_text().replace("step = 4 if", "step = 2 if"))
    tampered = subprocess.run(
        [sys.executable, "-I", str(decoder), str(bitstream), "-o", "x.y4m"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert tampered.returncode != 0 and "sha256" in tampered.stderr


def test_requirements_name_third_party_imports_only():
    assert requirements("import numpy as np\nimport zlib\nfrom scipy.fft import dctn\n") == [
        "numpy",
        "scipy",
    ]


def test_program_is_recovered_from_a_decoder_only_when_untouched():
    source = (PROGRAMS / "quantise_zlib.py").read_text()
    text = decoder_file(source, _record(source))
    assert program_from_decoder(text) == source
    assert program_from_decoder(source) == source  # a plain program is its own decoder
    with pytest.raises(ValueError, match="altered"):
        program_from_decoder(text.replace("// 8", "// 9", 1))
