"""Does the evolutionary designer measurably improve on the seeds, on clips it never saw?

Runs ``codeclab.campaign.run_campaign`` with the evolve designer and reports the best seed
and the best program found (chosen by the train figure, the designer's fitness), every
figure a BD-rate (PSNR-Y) over the anchor's standard range (its span at CRF 22..37)::

    .venv/bin/python benchmarks/bench_evolve.py --test-set natural --minutes 60 [--json]
    .venv/bin/python benchmarks/bench_evolve.py --iterations 30   # the old crop benchmark

With ``--test-set`` the campaign runs on that set (``natural``: 3 train, 3 holdout clips),
baselines x264 and x265, with the evaluation cascade; the report gives the holdout figure
per clip and averaged against both, experiments per hour and what the cascade stopped (after
the screen, or after the full train set: no holdout encodes for a candidate that could not
lead).
Without it, on a small crop of the bundled sample (8 frames, the central 160x128) against
x264, where holdout and train are the same clip. ``--minutes`` proposes candidates until the
time is up (the experiments running then finish). Every figure comes from the lab's own
records.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from codeclab.campaign import Callbacks, run_campaign
from codeclab.config import SAMPLE_CLIP, Settings
from codeclab.design.evolve import fitness
from codeclab.evaluate import bdrate
from codeclab.evaluate.testsets import load_test_set
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
    """BD-rate of PSNR-YUV against x264 over the standard range, mean over the holdout clips,
    for the report only (the fitness sees luma alone, so this shows whether a gain was
    bought with chroma quality)."""
    if record.status != "ok":
        return None
    held = {c.sha256 for c in record.clips if c.split != "train"}
    values = []
    for curve in record.baselines.get("x264") or []:
        if curve.clip_sha256 in held:
            mine = [r for r in record.results if r.clip_sha256 == curve.clip_sha256]
            standard, _ = bdrate.clip_figures("x264", curve.rungs, mine, "psnr_yuv")
            values.append(standard.value)
    if not values or None in values:
        return None
    return sum(values) / len(values)


def lineage(best, records) -> list[str]:
    """The changes from the seed down to ``best``, oldest first: what the search found."""
    by_sha = {r.program_sha256: r for r in records}
    steps, current = [], best
    while current is not None and current.parent_sha256:
        steps.append(f"{current.program_name}: {', '.join(current.reasoning.mutations)}")
        current = by_sha.get(current.parent_sha256)
    return steps[::-1]


def holdout(record, encoder: str) -> dict:
    """The leaderboard's figures of ``record`` against ``encoder``: per holdout clip, mean."""
    bd = record.leaderboard_bd_rate(encoder) if record else None
    if bd is None:
        return {"mean": None, "per_clip": {}}
    return {"mean": bd.value, "per_clip": bd.per_clip, "reason": bd.reason}


def campaign(settings: Settings, clips: list[Clip], minutes: float | None, done) -> tuple:
    """Run the campaign to ``settings.iterations`` or (``minutes``) until the time is up (no
    candidate is proposed after it; those running then finish): the result and the wall
    time."""
    store = ExperimentStore(settings.db_url)
    artifacts = LocalArtifactStore(settings.artifacts_dir)
    started = time.perf_counter()
    deadline = started + minutes * 60 if minutes is not None else float("inf")
    callbacks = Callbacks(on_done=done, keep_going=lambda: time.perf_counter() < deadline)
    result = run_campaign(settings, clips, store, artifacts, callbacks=callbacks)
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="at most this many")
    parser.add_argument("--minutes", type=float, default=None, help="run until the time is up")
    parser.add_argument("--test-set", default=None, help="e.g. natural; default: the crop")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--qualities", default="30,45,60,75")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--home", type=Path, default=None, help="keep the data here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.minutes is not None and args.iterations == 30:
        args.iterations = 10**6  # the time decides

    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        home.mkdir(parents=True, exist_ok=True)
        common = dict(
            home=home,
            iterations=args.iterations,
            qualities=[int(q) for q in args.qualities.split(",")],
            seed=args.seed,
            workers=args.workers,
        )
        if args.test_set:
            settings = Settings(
                **common, test_set=args.test_set, baselines=["x264", "x265"], vmaf=False
            )
            clips, _ = load_test_set(settings)
            where = f"test set {args.test_set}: " + ", ".join(
                f"{c.name} {c.width}x{c.height}x{len(c.frames)}" for c in clips
            )
        else:
            clip_path = crop_clip(
                SAMPLE_CLIP, args.frames, args.width, args.height, home / "bench_clip.y4m"
            )
            settings = Settings(**common, clips=[clip_path], baselines=["x264"])
            clip = load_clip(clip_path)
            clips = [Clip(clip.path, clip.frames, clip.fps, clip.conversions)]
            where = f"{args.width}x{args.height}x{args.frames} crop of {SAMPLE_CLIP.name}"

        def done(record) -> None:
            if not args.json:
                score = fitness(record)
                shown = f"{score:+7.2f}%" if score is not None else f"{record.status:>8}"
                stage = f" [{record.stage}]" if record.stage else ""
                print(
                    f"  [{record.iteration:3d}] {shown}  {record.program_name}{stage}", flush=True
                )

        result, wall = campaign(settings, clips, args.minutes, done)

    records = result.experiments
    seeds = [r for r in records if r.parent_sha256 is None and fitness(r) is not None]
    found = [r for r in records if fitness(r) is not None]
    best_seed = min(seeds, key=fitness) if seeds else None
    best = min(found, key=fitness) if found else None
    stages = Counter(r.stage or "uncascaded" for r in records)
    report = {
        "where": where,
        "range": "BD-rate (PSNR-Y) over the anchor's standard range: its span at CRF 22..37",
        "iterations": len(records),
        "qualities": settings.qualities,
        "seed": args.seed,
        "best_seed_program": best_seed.program_name if best_seed else None,
        "best_seed_train_bd_rate_x264": fitness(best_seed) if best_seed else None,
        "best_seed_holdout_x264": holdout(best_seed, "x264"),
        "best_seed_holdout_x265": holdout(best_seed, "x265"),
        "best_seed_yuv_bd_rate_x264": yuv_bd_rate(best_seed) if best_seed else None,
        "best_program": best.program_name if best else None,
        "best_train_bd_rate_x264": fitness(best) if best else None,
        "best_holdout_x264": holdout(best, "x264"),
        "best_holdout_x265": holdout(best, "x265"),
        "best_yuv_bd_rate_x264": yuv_bd_rate(best) if best else None,
        "improvement_points": (fitness(best_seed) - fitness(best) if best_seed and best else None),
        "seeds": {r.program_name: fitness(r) for r in seeds},
        "best_lineage": lineage(best, records) if best else [],
        "ok": sum(r.status == "ok" for r in records),
        "failed": sum(r.status != "ok" for r in records),
        "cascade": {
            "stopped_after_screen": stages.get("screen", 0),
            "stopped_after_train": stages.get("train", 0),
            "evaluated_in_full": stages.get("full", 0),
            "uncascaded": stages.get("uncascaded", 0),
        },
        "experiments_per_hour": round(len(records) * 3600 / wall, 2) if wall else None,
        "wall_s": round(wall, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>30}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
