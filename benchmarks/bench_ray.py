"""Experiments per hour on a local Ray cluster with 1 and with 2 workers, on this machine.

The same campaign (evolve designer, same seed, a crop of the bundled sample, baseline x264)
runs twice through the real pipeline with ``executor = "ray"``: once on a cluster of one
CPU with ``workers = 1``, once on two CPUs with ``workers = 2``. Both runs share a baseline
cache warmed by an untimed run first, as a long campaign's would be, and cluster start-up is
timed apart. It also measures what docs/scaling.md plans with: the phases of an experiment,
the rung tasks, record and object sizes, and the time to write one experiment to the store::

    .venv/bin/python benchmarks/bench_ray.py [--iterations 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from codeclab.campaign import run_campaign
from codeclab.config import SAMPLE_CLIP, Settings
from codeclab.media import Clip, load_clip, write_y4m
from codeclab.record import ExperimentRecord
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore


def cut(frames: int, width: int, height: int, out: Path) -> Path:
    """The top-left ``width`` x ``height`` window of the sample's first ``frames`` pictures."""
    clip = load_clip(SAMPLE_CLIP, max_frames=frames)
    shift = (0, 1, 1)  # 4:2:0: chroma planes are half as wide and high
    window = [
        tuple(
            np.ascontiguousarray(p[: height >> s, : width >> s])
            for p, s in zip(f, shift, strict=True)
        )
        for f in clip.frames
    ]
    return write_y4m(out, window, clip.fps)


def campaign(settings: Settings, clip: Clip) -> tuple[float, list[ExperimentRecord]]:
    """Wall seconds and records of one campaign in ``settings.home``."""
    store = ExperimentStore(settings.db_url)
    artifacts = LocalArtifactStore(settings.artifacts_dir)
    started = time.perf_counter()
    result = run_campaign(settings, [clip], store, artifacts)
    return time.perf_counter() - started, result.experiments


def on_ray(settings: Settings, clip: Clip, cpus: int) -> dict:
    """One timed campaign on a fresh local cluster of ``cpus`` CPUs."""
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - started
    try:
        wall, records = campaign(settings, clip)
    finally:
        ray.shutdown()
    return {
        "cluster_cpus": cpus,
        "workers": settings.workers,
        "cluster_start_s": round(start_s, 2),
        "wall_s": round(wall, 2),
        "experiments_per_hour": round(len(records) / wall * 3600, 1),
        "ok": sum(r.status == "ok" for r in records),
        "failed": sum(r.status != "ok" for r in records),
        "records": records,
    }


def mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def profile(records: list[ExperimentRecord], clip: Clip, database_url: str | None) -> dict:
    """Where an experiment's time and bytes go, for docs/scaling.md."""
    ok = [r for r in records if r.status == "ok"]
    phases = {
        name: mean([p.seconds for r in ok for p in r.phases if p.name == name])
        for name in (
            "design",
            "validation",
            "deployment",
            "execution",
            "verification",
            "analysis",
            "publish",
        )
    }
    rungs = [x for r in ok for x in r.results]
    records_json = [r.model_dump_json() for r in records]
    with tempfile.TemporaryDirectory() as tmp:
        store = ExperimentStore(database_url or f"sqlite:///{tmp}/write-timing.db")
        writes = []
        for record in records:
            copy = record.model_copy(update={"campaign_id": None})
            started = time.perf_counter()
            store.save(copy, "x" * record.source_bytes)
            writes.append(time.perf_counter() - started)
    frame_bytes = sum(p.nbytes for p in clip.frames[0])
    return {
        "phase_s": phases,
        "rung_encode_s": mean([x.encode_s for x in rungs]),
        "rung_decode_s": mean([x.decode_s for x in rungs]),
        "rungs_per_experiment": len(rungs) / len(ok) if ok else None,
        "record_json_bytes": round(statistics.fmean(len(j) for j in records_json)),
        "db_write_ms": round(statistics.fmean(writes) * 1000, 1),
        "db": "sqlite" if not database_url else database_url.partition(":")[0],
        "clip_object_bytes": frame_bytes * len(clip.frames),
        "decoded_object_bytes_per_rung": frame_bytes * len(clip.frames),
        "bitstream_bytes_per_rung": round(statistics.fmean(x.bytes for x in rungs)) if rungs else 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--qualities", default="30,50,70")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url", help="time experiment writes here (default SQLite)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip_path = cut(args.frames, args.width, args.height, root / "bench_clip.y4m")
        clip = load_clip(clip_path)
        cache = root / "cache"

        def settings(name: str, **overrides) -> Settings:
            home = root / name
            home.mkdir()
            (home / "cache").symlink_to(cache, target_is_directory=True)
            return Settings(
                **{
                    "home": home,
                    "clips": [clip_path],
                    "iterations": args.iterations,
                    "baselines": ["x264"],
                    "qualities": [int(q) for q in args.qualities.split(",")],
                    "seed": args.seed,
                    "publish": "all",
                }
                | overrides
            )

        cache.mkdir()
        campaign(settings("warm-up", iterations=2), clip)  # the seeds' baselines, untimed
        runs = [
            on_ray(settings(f"ray-{n}", executor="ray", workers=n), clip, cpus=n) for n in (1, 2)
        ]
    one, two = runs
    report = {
        "machine_cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "clip": f"{args.width}x{args.height}x{args.frames} cut of {SAMPLE_CLIP.name}",
        "qualities": args.qualities,
        "iterations": args.iterations,
        "seed": args.seed,
        "runs": [{k: v for k, v in run.items() if k != "records"} for run in runs],
        "ratio_2_over_1": round(two["experiments_per_hour"] / one["experiments_per_hour"], 2),
        "profile": profile(two["records"], clip, args.database_url),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
