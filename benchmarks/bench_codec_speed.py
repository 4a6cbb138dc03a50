"""How fast do the codec programs encode and decode 720p on one core? Seconds per frame for
the default composition, the default with each other component swapped in (one slot at a
time, so every component's default parameters are timed), and the hand-written seeds::

    .venv/bin/python benchmarks/bench_codec_speed.py [--frames 4] [--quality 45] [--only NAME]
        [--sha] [--json]

The frames are the bundled sample (cars, 320x240) resized to 1280x720 with PyAV: upscaled
content is smoother than natural 720p, so the figures are for SPEED only, never for
compression. Everything runs on one thread (BLAS/OpenMP pools limited to 1), and each
figure comes with its ratio to a reference run in the same process (an 8x8 block DCT of the
same frames in plain numpy, timed again before each program), so figures taken on busier
or faster machines compare. Times are CPU seconds of this process (one thread: the wall
time on an idle core), which other processes on a shared machine disturb less.
Target (issue 16): encode >= 1 frame/s, decode >= 5 frames/s.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from codeclab.design.components import SLOTS, choices  # noqa: E402
from codeclab.design.compose import DEFAULT, compose  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "codeclab" / "data" / "cars_320x240_30f.y4m"
PROGRAMS = ROOT / "src" / "codeclab" / "programs"
WIDTH, HEIGHT = 1280, 720

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]


def frames_720p(count: int) -> list[Frame]:
    """The sample's first ``count`` frames resized to 1280x720 (bicubic), as Y, U, V."""
    out = []
    with av.open(str(SAMPLE)) as container:
        for frame in container.decode(video=0):
            big = frame.reformat(WIDTH, HEIGHT, "yuv420p", interpolation="BICUBIC")
            y = big.to_ndarray()
            out.append((y[:HEIGHT], *_chroma(y)))
            if len(out) == count:
                break
    return out


def _chroma(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """U and V of a yuv420p ``to_ndarray`` (Y rows, then U and V as half-width row pairs)."""
    c = packed[HEIGHT:].reshape(2, HEIGHT // 2, WIDTH // 2)
    return c[0].copy(), c[1].copy()


def programs(only: str | None) -> dict[str, str]:
    """Name -> source: the default composition, each swap, then the seeds."""
    found = {"default": compose()}
    for slot in SLOTS:
        for name in choices(slot):
            if name != DEFAULT[slot]:
                found[f"{slot}={name}"] = compose({slot: name})
    for seed in ("inter_mc", "intra_dct"):
        found[seed] = (PROGRAMS / f"{seed}.py").read_text()
    if only:
        if only not in found:
            sys.exit(f"bench_codec_speed: no program {only!r}; choose from {', '.join(found)}")
        return {only: found[only]}
    return found


def load(name: str, source: str) -> ModuleType:
    """Run a program's (trusted, lab-made) source as a module."""
    module = ModuleType(name.replace("=", "_"))
    exec(compile(source, name, "exec"), module.__dict__)  # noqa: S102 - the lab's own code
    return module


def reference_seconds(frames: list[Frame]) -> float:
    """Seconds per frame of a plain numpy 8x8 block DCT of each frame's luma and back."""
    n = 8
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for y, _u, _v in frames:
            blocks = y.astype(np.float64).reshape(HEIGHT // n, n, WIDTH // n, n).swapaxes(1, 2)
            m.T @ (m @ blocks @ m.T) @ m
        best = min(best, (time.process_time() - start) / len(frames))
    return best


def measure(name: str, source: str, frames: list[Frame], quality: int) -> dict:
    """Encode and decode ``frames`` once; seconds per frame, bytes and the stream's sha256."""
    module = load(name, source)
    start = time.process_time()
    data = module.encode(frames, 30.0, quality)
    encode_s = (time.process_time() - start) / len(frames)
    start = time.process_time()
    decoded = module.decode(data)
    decode_s = (time.process_time() - start) / len(frames)
    if len(decoded) != len(frames) or decoded[0][0].shape != (HEIGHT, WIDTH):
        raise SystemExit(f"bench_codec_speed: {name} decoded the wrong pictures")
    return {
        "program": name,
        "encode_s": encode_s,
        "decode_s": decode_s,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=4, help="pictures per run (default 4)")
    parser.add_argument("--quality", type=int, default=45, help="quality 1..100 (default 45)")
    parser.add_argument("--only", help="one program: default, SLOT=NAME, inter_mc, intra_dct")
    parser.add_argument("--sha", action="store_true", help="print each stream's sha256")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    if not 1 <= args.frames <= 30:
        parser.error("--frames must be 1..30 (the sample has 30)")
    frames = frames_720p(args.frames)
    rows = []
    with threadpool_limits(limits=1):
        for name, source in programs(args.only).items():
            ref = reference_seconds(frames)
            row = measure(name, source, frames, args.quality)
            row["reference_s"] = ref
            row["encode_ratio"] = row["encode_s"] / ref
            row["decode_ratio"] = row["decode_s"] / ref
            rows.append(row)
            if not args.json:
                ok = ("" if row["encode_s"] <= 1.0 else " ENC>1s") + (
                    "" if row["decode_s"] <= 0.2 else " DEC>0.2s"
                )
                sha = f"  {row['sha256'][:16]}" if args.sha else ""
                print(
                    f"{name:26s} enc {row['encode_s']:7.3f} s/f ({row['encode_ratio']:7.0f}x)"
                    f"  dec {row['decode_s']:7.3f} s/f ({row['decode_ratio']:6.0f}x)"
                    f"  {row['bytes']:8d} B{sha}{ok}",
                    flush=True,
                )
    if args.json:
        print(json.dumps({
            "size": f"{WIDTH}x{HEIGHT}", "frames": args.frames, "quality": args.quality,
            "source": "cars_320x240_30f.y4m resized (speed only)", "threads": 1,
            "results": rows,
        }, indent=2))  # fmt: skip
    else:
        refs = [row["reference_s"] * 1000 for row in rows]
        print(
            "reference (8x8 numpy DCT of the luma, and back): "
            f"{min(refs):.2f}..{max(refs):.2f} ms/frame"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
