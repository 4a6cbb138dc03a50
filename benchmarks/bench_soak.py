"""Soak test: an unattended lab under injected faults loses, doubles and leaves nothing.

    .venv/bin/python benchmarks/bench_soak.py [--minutes 30] [--seed 0] [--store local|s3]
        [--faults db,s3,kill,worker,disk] [--outage 5-30] [--gap 15-30] [--log soak.log] [--json]

Runs as root (the data directory is a tmpfs of its own, which the disk fault fills) with
Debian's PostgreSQL binaries and moto. A ``codeclab run --forever --interval 1s --workers 2``
lab runs a tiny workload on a PostgreSQL server and the local or S3 (moto) artifact store of
the bench's own while faults hit it one at a time, in a seeded random order (each kind once
per round): the database stopped and started, the S3 server stopped and started (moto keeps
the bucket in memory, as a persistent store would), ``kill -9`` of the campaign (resumed at
once with ``--resume``), ``kill -9`` of a pool worker, the data directory filled for a while.
Then the lab gets a Ctrl-C, ``run --resume`` finishes, and the audit reports experiments
run, faults per kind, experiments lost, doubled, orphaned files, artifacts missing and the
longest time the lab sat stopped without a line saying why (definitions:
``benchmarks/soak.py``). Exit status 1 when lost, doubled, orphaned or missing is not 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.*, tests.stores

from benchmarks.soak import SoakConfig, SoakReport, run_soak  # noqa: E402
from benchmarks.soak_faults import KINDS  # noqa: E402


def span(text: str) -> tuple[float, float]:
    """``5-30`` (seconds) as (5.0, 30.0); ``10`` as (10.0, 10.0)."""
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds like 5-30, got {text!r}") from None
    if pair[0] < 0 or pair[1] < pair[0]:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH with 0 <= LOW <= HIGH, got {text!r}")
    return pair


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", choices=("local", "s3"), default="local")
    parser.add_argument(
        "--faults",
        default=None,
        help=f"comma-separated kinds from {','.join(KINDS)} (default: all the store allows)",
    )
    parser.add_argument("--outage", type=span, default=(5.0, 30.0), help="seconds down, 5-30")
    parser.add_argument("--gap", type=span, default=(15.0, 30.0), help="seconds between faults")
    parser.add_argument("--log", type=Path, help="write every line, timestamped, here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> SoakConfig:
    if args.faults:
        kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
    else:
        kinds = tuple(k for k in KINDS if k != "s3" or args.store == "s3")
    return SoakConfig(
        seconds=args.minutes * 60,
        seed=args.seed,
        faults=kinds,
        store=args.store,
        outage_s=args.outage,
        gap_s=args.gap,
        log=args.log,
    )


def table(report: SoakReport) -> str:
    faults = ", ".join(f"{k} {n}" for k, n in sorted(report.faults.items())) or "none"
    rows = [
        ("store", f"PostgreSQL + {report.store} artifacts, seed {report.seed}"),
        ("soak time", f"{report.seconds / 60:.1f} min"),
        ("experiments run", f"{report.experiments} ({report.claimed} printed as finished)"),
        ("faults injected", faults),
        ("experiments lost", report.lost),
        ("experiments doubled", report.doubled),
        ("orphaned files", report.orphaned),
        ("artifacts missing", report.missing),
        ("longest silent stop", f"{report.longest_silence_s:.1f} s ({report.silence_at})"),
        ("usual progress gap", f"{report.median_progress_gap_s:.1f} s (median)"),
        ("lab exits (by itself)", report.lab_exits),
        ("clean Ctrl-C shutdown", "yes" if report.clean_shutdown else "no"),
        ("final run --resume exit", report.final_rc),
        ("stray processes after", report.stray_processes),
        ("outbox entries rejected", report.outbox_rejected),
        ("finishes not placed", report.unattributed),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    for name, items in report.details.items():
        lines += [f"{name}: {item}" for item in items[:20]]
        if len(items) > 20:
            lines.append(f"{name}: ... and {len(items) - 20} more")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    try:
        config = config_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = run_soak(config)
    print(json.dumps(dataclasses.asdict(report)) if args.json else table(report))
    return 1 if report.lost or report.doubled or report.orphaned or report.missing else 0


if __name__ == "__main__":
    sys.exit(main())
