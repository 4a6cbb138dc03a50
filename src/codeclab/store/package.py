"""The download package of a published experiment: ``packages/{id}.zip``.

It holds the bitstreams, the standalone decoder, a README, ``manifest.json`` (each
bitstream's sha256 and the sha256 of the pictures the lab decoded from it) and ``verify.py``,
which decodes every bitstream with the decoder in a fresh interpreter and checks both
hashes. It needs Python 3.11+ and the decoder's requirements, nothing else.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from codeclab.record import ExperimentRecord
from codeclab.store.artifacts import bitstream_name

VERIFY_SCRIPT = r'''#!/usr/bin/env python3
"""Check this package: decode each bitstream with the decoder and compare sha256 hashes.

    python verify.py        (exit status 0 when every bitstream decodes as the lab decoded it)
"""
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def y4m_sha256(path):
    """sha256 over 'yuv420p8 WxH N' then every plane, as codeclab hashes decoded pictures."""
    with open(path, "rb") as y4m:
        header = y4m.readline().split()
        if not header or header[0] != b"YUV4MPEG2":
            raise ValueError(f"{path} is not a Y4M file")
        fields = {item[:1]: item[1:] for item in header[1:]}
        width, height = int(fields[b"W"]), int(fields[b"H"])
        if not fields.get(b"C", b"420").startswith(b"420"):
            raise ValueError(f"{path} is not 4:2:0")
        size = width * height * 3 // 2
        start, count = y4m.tell(), 0
        while line := y4m.readline():
            if not line.startswith(b"FRAME"):
                raise ValueError(f"{path}: frame {count} has no FRAME marker")
            if len(y4m.read(size)) != size:
                raise ValueError(f"{path}: frame {count} is truncated")
            count += 1
        digest = hashlib.sha256(f"yuv420p8 {width}x{height} {count}\n".encode())
        y4m.seek(start)
        for _ in range(count):
            y4m.readline()
            digest.update(y4m.read(size))
    return digest.hexdigest()


def main():
    here = Path(__file__).resolve().parent
    manifest = json.loads((here / "manifest.json").read_text())
    decoder = here / manifest["decoder"]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for item in manifest["bitstreams"]:
            name = item["file"]
            data = (here / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != item["sha256"]:
                print(f"FAIL {name}: the bitstream's sha256 differs from the manifest")
                failures += 1
                continue
            out = Path(tmp) / (Path(name).stem + ".y4m")
            done = subprocess.run(
                [sys.executable, "-I", str(decoder), str(here / name), "-o", str(out)],
                capture_output=True, text=True, cwd=tmp,
            )
            if done.returncode != 0:
                lines = (done.stderr.strip() or "no output").splitlines()
                print(f"FAIL {name}: the decoder failed: {lines[-1]}")
                failures += 1
                continue
            digest = y4m_sha256(out)
            if digest != item["decoded_sha256"]:
                print(f"FAIL {name}: decoded pictures have sha256 {digest}, the lab's "
                      f"{item['decoded_sha256']}")
                failures += 1
                continue
            print(f"ok   {name}: {item['frames']} frames identical to the lab's decode")
    total = len(manifest["bitstreams"])
    print(f"{total - failures} of {total} bitstreams verified")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
'''

README = """# codeclab experiment {experiment_id}

Program `{program_name}` (sha256 {program_sha256}), published {date}.

- `{decoder}`: the standalone decoder (Python 3.11+, {requirements}).
  `python {decoder} bitstreams/NAME.bin -o out.y4m` writes the decoded pictures.
- `bitstreams/`: one bitstream per clip and quality, as the lab measured them.
- `manifest.json`: each bitstream's sha256 and the sha256 of the pictures the lab decoded.
- `verify.py`: `python verify.py` decodes every bitstream and checks both hashes.

| bitstream | bytes | kbps | PSNR-Y (dB) |
|---|---:|---:|---:|
{rows}
"""


def _namespace() -> dict:
    namespace: dict = {"__name__": "codeclab_verify"}
    exec(compile(VERIFY_SCRIPT, "verify.py", "exec"), namespace)
    return namespace


def y4m_sha256(path: str | Path) -> str:
    """The hash ``verify.py`` computes: equal to ``media.frames_sha256`` of the Y4M's pictures."""
    return _namespace()["y4m_sha256"](str(path))


def build_package(
    record: ExperimentRecord, decoder_text: str, bitstreams: dict[str, bytes], requirements: str
) -> bytes:
    """The zip's bytes; ``bitstreams`` maps ``{clip}_q{quality}.bin`` to the bytes."""
    decoder = f"{record.experiment_id}_decoder.py"
    items, rows = [], []
    for result in record.results:
        name = bitstream_name(result.clip, result.quality)
        items.append(
            {
                "file": f"bitstreams/{name}",
                "clip": result.clip,
                "quality": result.quality,
                "frames": result.frames,
                "sha256": result.bitstream_sha256,
                "decoded_sha256": result.decoded_sha256,
            }
        )
        rows.append(f"| {name} | {result.bytes} | {result.kbps:.1f} | {result.psnr_y:.2f} |")
    manifest = {
        "experiment_id": record.experiment_id,
        "program_sha256": record.program_sha256,
        "decoder": decoder,
        "bitstreams": items,
    }
    readme = README.format(
        experiment_id=record.experiment_id,
        program_name=record.program_name,
        program_sha256=record.program_sha256,
        date=record.created_at.date().isoformat(),
        decoder=decoder,
        requirements=requirements,
        rows="\n".join(rows),
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.md", readme)
        archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
        archive.writestr("verify.py", VERIFY_SCRIPT)
        archive.writestr(decoder, decoder_text)
        for item in items:
            archive.writestr(item["file"], bitstreams[Path(item["file"]).name])
    return buffer.getvalue()
