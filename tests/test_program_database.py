"""The shared program database on synthetic histories."""

from __future__ import annotations

import random

from codeclab.design.database import ProgramDatabase
from codeclab.design.evolve import fitness, normalised_sha256
from codeclab.record import ExperimentRecord, RungResult


def record(
    sha: str,
    bd: float | None,
    iteration: int,
    *,
    kbps: float = 100.0,
    size: int = 1000,
    parent: str | None = None,
    status: str = "ok",
) -> ExperimentRecord:
    return ExperimentRecord(
        experiment_id=sha,
        iteration=iteration,
        status=status,
        program_sha256=sha,
        program_name=sha,
        parent_sha256=parent,
        designer="evolve",
        isolation="weak",
        source_bytes=size,
        qualities=[1],
        results=[RungResult.model_construct(kbps=kbps)] if status == "ok" else [],
        bd_rate={"x264": {"psnr_y": {"value": bd}}} if bd is not None else {},
    )


def source(i: int) -> str:
    return f"X = {i}\n"


def build(history, **options) -> ProgramDatabase:
    sources = {r.program_sha256: source(int(r.program_sha256[1:])) for r in history}
    return ProgramDatabase.rebuild(history, sources, fitness, normalised_sha256, **options)


def test_islands_follow_iterations_and_failures_are_not_members():
    history = [record(f"p{i}", 10.0 - i, i) for i in range(1, 6)]
    history.append(record("p6", None, 6, status="failed"))
    db = build(history, islands=3, migrate_every=100)
    assert db.members == [["p3"], ["p1", "p4"], ["p2", "p5"]]
    assert db.best().sha256 == "p5" and db.best(1).sha256 == "p4"
    assert db.is_duplicate(source(6))  # a failed program is still not tried twice
    assert db.is_duplicate("X = 6  # same code\n")
    assert not db.is_duplicate(source(7))


def test_migration_copies_each_islands_best_along_the_ring():
    history = [record(f"p{i}", float(i), i) for i in range(1, 7)]
    db = build(history, islands=3, migrate_every=3)
    # after 3 programs: p1 (island 1) -> 2, p2 (island 2) -> 0, p3 (island 0) -> 1
    assert (3, 2, "p1") in db.migrations and (3, 0, "p2") in db.migrations
    assert "p1" in db.members[2] and "p2" in db.members[0]
    # after 6, island 2's best is the earlier migrant p1, which moves on to island 0
    assert (6, 0, "p1") in db.migrations and db.best(0).sha256 == "p1"


def test_grid_keeps_the_best_per_bitrate_and_complexity_cell():
    history = [
        record("p1", 5.0, 1, kbps=100, size=1000),
        record("p2", 3.0, 2, kbps=120, size=2000),  # same cell, better
        record("p3", 1.0, 3, kbps=900, size=1000),  # other bitrate class
        record("p4", 0.0, 4, kbps=100, size=50000),  # other complexity class
    ]
    db = build(history, size_bucket=8192)
    assert db.grid == {(6, 0): "p2", (9, 0): "p3", (6, 6): "p4"}


def test_selection_prefers_good_programs_but_explores_and_is_deterministic():
    history = [record(f"p{i}", float(i), 3 * i) for i in range(1, 13)]  # all on island 0
    db = build(history, islands=3, migrate_every=100, explore=0.2)
    picks = [db.select(0, random.Random(k)) for k in range(300)]
    names = [e.sha256 for e, _ in picks]
    assert names.count("p1") > names.count("p12")
    assert any(how.startswith("elite of random grid cell") for _, how in picks)
    assert [db.select(0, random.Random(k))[0].sha256 for k in range(50)] == names[:50]


def test_a_hopeless_island_holds_its_tournaments_over_the_whole_database():
    history = [record("p1", 2.0, 0), record("p2", 150.0, 1), record("p3", 160.0, 4)]
    db = build(history, islands=3, migrate_every=100, explore=0.0)
    picks = [db.select(1, random.Random(k))[0].sha256 for k in range(50)]
    assert set(picks) <= {"p1", "p2", "p3"} and picks.count("p1") > 25
    assert db.members[1] == ["p2", "p3"]
    close = build(history, islands=3, migrate_every=100, explore=0.0, rescue=200.0)
    assert {close.select(1, random.Random(k))[0].sha256 for k in range(50)} == {"p2", "p3"}
    # by default a family 8 points behind counts as unable to catch up, 4 behind does not
    for behind, rescued in ((8.0, True), (4.0, False)):
        near = build(
            [record("p1", 2.0, 0), record("p2", 2.0 + behind, 1)], migrate_every=100, explore=0.0
        )
        picks = {near.select(1, random.Random(k))[0].sha256 for k in range(50)}
        assert ("p1" in picks) is rescued


def test_rebuild_is_order_independent_and_tracks_lineage():
    history = [
        record("p1", 5.0, 1),
        record("p2", 4.0, 2, parent="p1"),
        record("p3", 3.0, 3, parent="p2"),
    ]
    a, b = build(history), build(list(reversed(history)))
    assert a.members == b.members and a.grid == b.grid and a.seen == b.seen
    assert a.lineage("p3") == ["p2", "p1"]


def test_exploration_visits_only_cells_that_can_catch_up():
    history = [record(f"p{i}", float(i), 3 * i, kbps=2.0**i) for i in range(1, 13)]  # a cell each
    db = build(history, islands=3, migrate_every=100, explore=1.0)
    assert len(db.grid) == 12
    picked = {db.select(0, random.Random(k))[0].sha256 for k in range(200)}
    assert picked == {f"p{i}" for i in range(1, 7)}  # within 5 points of the best (1.0)
    wide = build(history, islands=3, migrate_every=100, explore=1.0, rescue=100.0)
    assert len({wide.select(0, random.Random(k))[0].sha256 for k in range(200)}) == 12
