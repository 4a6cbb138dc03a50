"""The soak bench's short version: an unattended lab under one fault of each kind.

``benchmarks/bench_soak.py`` runs for half an hour; this runs its core for about a minute
(a real ``codeclab run --forever`` on a real PostgreSQL server and moto's S3 server, the
data directory a tmpfs of its own) and checks the audit: nothing lost, doubled, orphaned
or missing, and the lab never ended by itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.soak import SoakConfig, SoakReport, run_soak
from benchmarks.soak_faults import KINDS, Tmpfs
from tests.stores import unavailable

pytest.importorskip("moto.server")
pytest.importorskip("psycopg")


def explained(report: SoakReport, log: Path) -> str:
    """What to read when an assert fails: the audit's details and where the log is."""
    lines = [f"{name}: {item}" for name, items in report.details.items() for item in items]
    return "\n".join([*lines, f"every line of the lab: {log}"])


def mountable(where: Path) -> str | None:
    """Why no tmpfs can be mounted here (a container without CAP_SYS_ADMIN), or None."""
    try:
        Tmpfs(where, 1).unmount()
    except RuntimeError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def no_disk_fault(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    """The disk fault fills a tmpfs of its own: root and a mountable tmpfs needed."""
    if os.geteuid() != 0:
        return "the disk fault mounts a tmpfs as the lab's data directory: it needs root"
    return mountable(tmp_path_factory.mktemp("probe") / "disk")


@pytest.fixture(scope="module")
def soak(
    tmp_path_factory: pytest.TempPathFactory, no_disk_fault: str | None
) -> tuple[SoakReport, str]:
    if os.geteuid() != 0:
        unavailable("the soak stops and kills the lab's servers and processes: it needs root")
    log = tmp_path_factory.mktemp("soak") / "soak.log"
    config = SoakConfig(
        seconds=90,
        seed=3,
        faults=tuple(k for k in KINDS if not (no_disk_fault and k == "disk")),
        store="s3",
        rounds=1,
        gap_s=(2.0, 4.0),
        outage_s=(3.0, 5.0),
        settle_s=8.0,
        final_timeout_s=120,
        log=log,
    )
    report = run_soak(config)
    return report, explained(report, log)


def test_every_fault_was_injected_once(soak):
    report, why = soak
    assert set(report.faults) >= set(KINDS) - {"disk"}, why
    assert set(report.faults.values()) == {1}, why
    assert report.experiments > 0 and report.claimed > 0, why


def test_a_full_disk_was_among_the_faults(soak, no_disk_fault):
    if no_disk_fault:
        pytest.skip(no_disk_fault)
    report, why = soak
    assert report.faults.get("disk") == 1, why


def test_nothing_is_lost_or_doubled(soak):
    report, why = soak
    assert report.lost == 0, why
    assert report.doubled == 0, why
    assert report.unattributed == 0, why


def test_nothing_is_left_behind_or_missing(soak):
    report, why = soak
    assert report.orphaned == 0, why
    assert report.missing == 0, why
    assert report.stray_processes == 0, why


def test_the_lab_rides_out_every_fault(soak):
    report, why = soak
    assert report.lab_exits == 0, why
    assert report.clean_shutdown and report.final_rc == 0, why
