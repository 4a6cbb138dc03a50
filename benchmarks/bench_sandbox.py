"""What strong isolation costs: sandbox launch overhead, and a whole evaluation, weak vs strong.

    .venv/bin/python benchmarks/bench_sandbox.py [--runs N] [--json]

1. Launch overhead: the median wall time of one sandboxed process running a trivial program
   (encode one 16x16 picture into ``b""``), for the weak launcher (a limited subprocess) and
   the strong one (bubblewrap, two stages as root), over N runs each, interleaved.
2. Whole evaluation: ``evaluate`` of the seed program ``intra_dct.py`` on the bundled sample
   clip (320x240, 30 frames, 4 qualities, no baselines), once per launcher in the same run,
   and the ratio strong / weak.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from codeclab.config import SAMPLE_CLIP, load_settings
from codeclab.evaluate.bench import machine as describe_machine
from codeclab.media import load_clip
from codeclab.runner import Job, evaluate
from codeclab.sandbox import bwrap, isolate
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore

TRIVIAL = "def encode(frames, fps, quality):\n    return b''\n\ndef decode(b):\n    return []\n"
SEED_PROGRAM = Path(__file__).parents[1] / "src" / "codeclab" / "programs" / "intra_dct.py"


def machine() -> dict[str, object]:
    """The lab's machine description, with the bubblewrap version and the user running it."""
    try:
        version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout
    except OSError:
        version = ""
    return {**describe_machine(), "bwrap": version.strip() or None, "uid": os.geteuid()}


def launch_ms(launcher: isolate.Launcher) -> float:
    frame = (np.zeros((16, 16), np.uint8), np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    start = time.perf_counter()
    isolate.run_encode(TRIVIAL, [frame], 30.0, 50, isolate.Limits(), launcher)
    return (time.perf_counter() - start) * 1000


def evaluation_seconds(launcher: isolate.Launcher) -> float:
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(
            home=Path(home),
            clips=[SAMPLE_CLIP],
            baselines=[],
            allow_weak_isolation=launcher.isolation == "weak",
        )
        job = Job(
            source=SEED_PROGRAM.read_text(),
            name="intra_dct",
            clips=[load_clip(SAMPLE_CLIP)],
            settings=settings,
            store=ExperimentStore(settings.db_url),
            artifacts=LocalArtifactStore(settings.artifacts_dir),
            launcher=launcher,
        )
        start = time.perf_counter()
        record = evaluate(job)
        seconds = time.perf_counter() - start
    if record.status != "ok":
        raise SystemExit(f"evaluation with {launcher.isolation} isolation failed: {record.error}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="launches per launcher")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    probe = bwrap.probe()
    launchers = {"weak": isolate.WEAK}
    if probe.strong:
        launchers["strong"] = probe.launcher
    result: dict[str, object] = {"machine": machine(), "strong_available": probe.strong}
    if not probe.strong:
        result["strong_unavailable_reason"] = probe.reason

    for launcher in launchers.values():
        launch_ms(launcher)  # warm the page cache once
    samples: dict[str, list[float]] = {name: [] for name in launchers}
    for _ in range(args.runs):
        for name, launcher in launchers.items():
            samples[name].append(launch_ms(launcher))
    launch = {name: round(statistics.median(times), 1) for name, times in samples.items()}
    result["launch_ms_median"] = launch
    result["launch_runs"] = args.runs
    if probe.strong:
        result["launch_overhead_ms"] = round(launch["strong"] - launch["weak"], 1)

    totals = {name: round(evaluation_seconds(launcher), 2) for name, launcher in launchers.items()}
    result["evaluation_seconds"] = totals
    result["evaluation"] = "intra_dct.py on cars_320x240_30f.y4m, 4 qualities, no baselines"
    if probe.strong:
        result["evaluation_ratio_strong_over_weak"] = round(totals["strong"] / totals["weak"], 3)

    if args.json:
        print(json.dumps(result))
        return 0
    info = result["machine"]
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['platform']}, "
        f"Python {info['versions']['python']}, {info['bwrap'] or 'no bubblewrap'}, "
        f"uid {info['uid']}"
    )
    if not probe.strong:
        print(f"strong isolation unavailable: {probe.reason}")
    for name, ms in launch.items():
        print(f"launch, {name:6}: {ms:7.1f} ms per process (median of {args.runs})")
    if probe.strong:
        print(f"launch overhead of strong isolation: {result['launch_overhead_ms']:+.1f} ms")
    for name, seconds in totals.items():
        print(f"evaluation, {name:6}: {seconds:7.2f} s ({result['evaluation']})")
    if probe.strong:
        print(f"evaluation ratio strong / weak: {result['evaluation_ratio_strong_over_weak']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
