"""Alembic migrations: new databases get the schema, old ones keep their rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from codeclab.store.db import Base, ExperimentStore, StoreError, alembic_config
from tests.test_store import make_record

pytest_plugins = ("tests.stores",)

HEAD = "0004"  # the newest revision

# columns and constraints the first release did not have (added by later versions)
LATER_COLUMNS = {
    "experiments": {"bd_rate_train", "bd_rate_holdout", "test_set", "holdout_is_train"},
    "results": {"ms_ssim_y", "vmaf", "vmaf_reason"},
    "baseline_rungs": {"ms_ssim_y", "vmaf", "vmaf_reason"},
}


def first_release_metadata() -> sa.MetaData:
    """The schema codeclab's first release made with ``create_all`` (no alembic_version)."""
    metadata = sa.MetaData()
    for table in Base.metadata.sorted_tables:
        later = LATER_COLUMNS.get(table.name, set())
        constraints = [
            sa.UniqueConstraint(*[c.name for c in u.columns])
            for u in table.constraints
            if isinstance(u, sa.UniqueConstraint) and table.name != "experiments"
        ]
        sa.Table(
            table.name,
            metadata,
            *[c._copy() for c in table.columns if c.name not in later],
            *constraints,
        )
    return metadata


def revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_a_new_database_gets_the_schema_of_the_models(sql_url):
    store = ExperimentStore(sql_url)
    assert revision(store.engine) == HEAD
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        # models changed without a migration? make one: see codeclab.store.db.alembic_config
        assert compare_metadata(context, Base.metadata) == []
    ExperimentStore(sql_url)  # opening again migrates nothing


def test_a_database_of_the_first_release_is_upgraded_with_its_rows(sql_url):
    engine = sa.create_engine(sql_url)
    old = first_release_metadata()
    old.create_all(engine)
    record = make_record("dddd0001")
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            old.tables["programs"].insert(),
            dict(
                sha256=record.program_sha256,
                name=record.program_name,
                source="old source",
                parent_sha256=None,
                designer="evolve",
                created_at=now,
            ),
        )
        connection.execute(
            old.tables["experiments"].insert(),
            dict(
                id=record.experiment_id,
                campaign_id=None,
                iteration=1,
                status="ok",
                phase=None,
                error=None,
                program_sha256=record.program_sha256,
                designer="evolve",
                reasoning={"text": "old"},
                isolation="weak",
                source_bytes=10,
                qualities=[20],
                clips=[],
                bd_rate={},
                target=None,
                artifacts={},
                versions={},
                created_at=now,
            ),
        )
        rung = record.results[0]
        connection.execute(
            old.tables["results"].insert(),
            dict(
                experiment_id=record.experiment_id,
                clip_sha256=rung.clip_sha256,
                quality=20,
                bitstream_sha256=rung.bitstream_sha256,
                decoded_sha256=rung.decoded_sha256,
                per_frame=[],
                **{
                    k: getattr(rung, k)
                    for k in ("clip", "bytes", "frames", "width", "height", "fps", "kbps", "bpp")
                },
                encode_s=rung.encode_s,
                decode_s=rung.decode_s,
                psnr_y=rung.psnr_y,
                psnr_u=rung.psnr_u,
                psnr_v=rung.psnr_v,
                psnr_yuv=rung.psnr_yuv,
                ssim_y=rung.ssim_y,
            ),
        )
    engine.dispose()

    store = ExperimentStore(sql_url)
    assert revision(store.engine) == HEAD
    kept = store.get("dddd0001")
    assert (
        kept is not None
        and kept.reasoning.text == "old"
        and store.source(record.program_sha256) == ("old source")
    )
    assert kept.results[0].psnr_y == rung.psnr_y and kept.results[0].vmaf is None
    assert kept.test_set is None and kept.holdout_is_train is False
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("results")}
    assert {"ms_ssim_y", "vmaf", "vmaf_reason"} <= columns
    # the old database now takes records with every field, and knows campaigns' iterations
    store.add_campaign("c1", "evolve", 0, 2, {})
    new = make_record("dddd0002").model_copy(update={"campaign_id": "c1", "iteration": 1})
    store.save(new, "new source")
    assert store.get("dddd0002") is not None and store.get("dddd0002").results[0].vmaf is None
    with store.engine.connect() as connection:
        uniques = sa.inspect(connection).get_unique_constraints("experiments")
        indexes = sa.inspect(connection).get_indexes("experiments")
    assert ["campaign_id", "iteration"] in [u["column_names"] for u in uniques] + [
        i["column_names"] for i in indexes if i.get("unique")
    ]
    assert [r.experiment_id for r in store.list()] == ["dddd0001", "dddd0002"]


def test_a_database_made_by_create_all_is_adopted(sql_url, monkeypatch):
    with monkeypatch.context() as patch:  # the version before migrations: create_all
        patch.setattr("codeclab.store.db.migrate", Base.metadata.create_all)
        ExperimentStore(sql_url).save(make_record("eeee0001"), "src")
    assert revision(sa.create_engine(sql_url)) is None
    store = ExperimentStore(sql_url)
    assert revision(store.engine) == HEAD and store.get("eeee0001") is not None
    assert store.source(make_record().program_sha256) == "src"


def test_downgrade_and_upgrade_again(sql_url):
    store = ExperimentStore(sql_url)
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(sa.inspect(store.engine).get_table_names()) <= {"alembic_version"}
    assert ExperimentStore(sql_url).list() == []


def test_a_database_newer_than_the_code_is_a_clear_error(sqlite_url):
    store = ExperimentStore(sqlite_url)
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="cannot open the experiment store sqlite.*9999"):
        ExperimentStore(sqlite_url)
