"""Does the evolutionary designer measurably improve on the seeds?

Runs ``codeclab.campaign.run_campaign`` with the evolve designer on a small crop of the
bundled sample (default: 8 frames, the central 160x128), baseline x264 only, and prints the
best BD-rate (PSNR-Y) vs x264 among the seed programs, the best found by the search, the
difference in points, and the wall time::

    .venv/bin/python benchmarks/bench_evolve.py --iterations 30 [--json]

Every figure comes from the lab's own records (real encodes, real decodes, real x264).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from codeclab.campaign import Callbacks, run_campaign
from codeclab.config import SAMPLE_CLIP, Settings
from codeclab.design.evolve import fitness
from codeclab.evaluate import rd
from codeclab.media import Clip, load_clip, write_y4m
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore


def crop_clip(path: Path, frames: int, width: int, height: int, out: Path) -> Path:
    """The central ``width`` x ``height`` window of the first ``frames`` pictures, as y4m."""
    clip = load_clip(path, max_frames=frames)
    y0 = (clip.height - height) // 2 // 2 * 2
    x0 = (clip.width - width) // 2 // 2 * 2
    cut = [
        (
            np.ascontiguousarray(y[y0 : y0 + height, x0 : x0 + width]),
            np.ascontiguousarray(u[y0 // 2 : (y0 + height) // 2, x0 // 2 : (x0 + width) // 2]),
            np.ascontiguousarray(v[y0 // 2 : (y0 + height) // 2, x0 // 2 : (x0 + width) // 2]),
        )
        for y, u, v in clip.frames
    ]
    return write_y4m(out, cut, clip.fps)


def yuv_bd_rate(record) -> float | None:
    """BD-rate of PSNR-YUV against x264, for the report only (the fitness sees luma alone,
    so this shows whether a gain was bought with chroma quality)."""
    curves = record.baselines.get("x264") or []
    if record.status != "ok" or not curves:
        return None
    anchor = [(r.kbps, r.psnr_yuv) for r in curves[0].rungs]
    return rd.bd_rate(anchor, [(r.kbps, r.psnr_yuv) for r in record.results])[0]


def lineage(best, records) -> list[str]:
    """The changes from the seed down to ``best``, oldest first: what the search found."""
    by_sha = {r.program_sha256: r for r in records}
    steps, current = [], best
    while current is not None and current.parent_sha256:
        steps.append(f"{current.program_name}: {', '.join(current.reasoning.mutations)}")
        current = by_sha.get(current.parent_sha256)
    return steps[::-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--qualities", default="30,45,60,75")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--home", type=Path, default=None, help="keep the data here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        home.mkdir(parents=True, exist_ok=True)
        clip_path = crop_clip(
            SAMPLE_CLIP, args.frames, args.width, args.height, home / "bench_clip.y4m"
        )
        settings = Settings(
            home=home,
            clips=[clip_path],
            iterations=args.iterations,
            baselines=["x264"],
            qualities=[int(q) for q in args.qualities.split(",")],
            seed=args.seed,
            workers=args.workers,
        )
        clip = load_clip(clip_path)
        clips = [Clip(clip.path, clip.frames, clip.fps, clip.conversions)]
        store = ExperimentStore(settings.db_url)
        artifacts = LocalArtifactStore(settings.artifacts_dir)

        def done(record) -> None:
            if not args.json:
                score = fitness(record)
                shown = f"{score:+7.2f}%" if score is not None else f"{record.status:>8}"
                print(f"  [{record.iteration:3d}] {shown}  {record.program_name}", flush=True)

        started = time.perf_counter()
        result = run_campaign(settings, clips, store, artifacts, callbacks=Callbacks(on_done=done))
        wall = time.perf_counter() - started

    records = result.experiments
    seeds = [r for r in records if r.parent_sha256 is None and fitness(r) is not None]
    found = [r for r in records if fitness(r) is not None]
    best_seed = min(seeds, key=fitness) if seeds else None
    best = min(found, key=fitness) if found else None
    report = {
        "iterations": args.iterations,
        "clip": f"{args.width}x{args.height}x{args.frames} crop of {SAMPLE_CLIP.name}",
        "qualities": settings.qualities,
        "seed": args.seed,
        "best_seed_bd_rate_x264": fitness(best_seed) if best_seed else None,
        "best_seed_program": best_seed.program_name if best_seed else None,
        "best_seed_yuv_bd_rate_x264": yuv_bd_rate(best_seed) if best_seed else None,
        "best_bd_rate_x264": fitness(best) if best else None,
        "best_yuv_bd_rate_x264": yuv_bd_rate(best) if best else None,
        "best_program": best.program_name if best else None,
        "improvement_points": (fitness(best_seed) - fitness(best) if best_seed and best else None),
        "seeds": {r.program_name: fitness(r) for r in seeds},
        "best_lineage": lineage(best, records) if best else [],
        "ok": sum(r.status == "ok" for r in records),
        "failed": sum(r.status != "ok" for r in records),
        "wall_s": round(wall, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
