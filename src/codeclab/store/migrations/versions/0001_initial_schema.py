"""Initial schema: programs, campaigns, experiments, results, baseline rungs, phases.

Generated from the models by ``alembic revision --autogenerate`` and checked by hand. The
tables are frozen here as they are at this revision (never import the models in a
migration: they change later).

A database made before migrations existed (by ``create_all``, with no ``alembic_version``
table) is adopted instead of created: its tables and rows are kept, and what older versions
of codeclab did not make is added: nullable columns (the rung metrics and the train/holdout
fields came later), indexes, and the unique (campaign, iteration) pair.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

log = logging.getLogger("codeclab.store.migrations")


def _rung_columns() -> list[sa.Column]:
    return [
        sa.Column("clip", sa.String(length=200), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("kbps", sa.Float(), nullable=False),
        sa.Column("bpp", sa.Float(), nullable=False),
        sa.Column("encode_s", sa.Float(), nullable=False),
        sa.Column("decode_s", sa.Float(), nullable=False),
        sa.Column("psnr_y", sa.Float(), nullable=False),
        sa.Column("psnr_u", sa.Float(), nullable=False),
        sa.Column("psnr_v", sa.Float(), nullable=False),
        sa.Column("psnr_yuv", sa.Float(), nullable=False),
        sa.Column("ssim_y", sa.Float(), nullable=False),
        sa.Column("ms_ssim_y", sa.Float(), nullable=True),
        sa.Column("vmaf", sa.Float(), nullable=True),
        sa.Column("vmaf_reason", sa.Text(), nullable=True),
    ]


def schema() -> sa.MetaData:
    """The tables of this revision, in dependency order."""
    metadata = sa.MetaData()
    sa.Table(
        "campaigns",
        metadata,
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("designer", sa.String(length=40), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "programs",
        metadata,
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("parent_sha256", sa.String(length=64), nullable=True, index=True),
        sa.Column("designer", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "experiments",
        metadata,
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column(
            "campaign_id",
            sa.String(length=36),
            sa.ForeignKey("campaigns.id"),
            nullable=True,
            index=True,
        ),
        sa.Column("iteration", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False, index=True),
        sa.Column("phase", sa.String(length=20), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "program_sha256",
            sa.String(length=64),
            sa.ForeignKey("programs.sha256"),
            nullable=False,
            index=True,
        ),
        sa.Column("designer", sa.String(length=40), nullable=False),
        sa.Column("reasoning", sa.JSON(), nullable=False),
        sa.Column("isolation", sa.String(length=16), nullable=False),
        sa.Column("source_bytes", sa.Integer(), nullable=False),
        sa.Column("qualities", sa.JSON(), nullable=False),
        sa.Column("clips", sa.JSON(), nullable=False),
        sa.Column("bd_rate", sa.JSON(), nullable=False),
        sa.Column("bd_rate_train", sa.JSON(), nullable=True),
        sa.Column("bd_rate_holdout", sa.JSON(), nullable=True),
        sa.Column("test_set", sa.String(length=200), nullable=True),
        sa.Column("holdout_is_train", sa.Boolean(), nullable=True),
        sa.Column("target", sa.JSON(), nullable=True),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.UniqueConstraint("campaign_id", "iteration"),
    )
    sa.Table(
        "baseline_rungs",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "experiment_id",
            sa.String(length=36),
            sa.ForeignKey("experiments.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("encoder", sa.String(length=20), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("clip_sha256", sa.String(length=64), nullable=False, index=True),
        sa.Column("crf", sa.Integer(), nullable=False),
        *_rung_columns(),
    )
    sa.Table(
        "phases",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "experiment_id",
            sa.String(length=36),
            sa.ForeignKey("experiments.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    sa.Table(
        "results",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "experiment_id",
            sa.String(length=36),
            sa.ForeignKey("experiments.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("clip_sha256", sa.String(length=64), nullable=False, index=True),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("bitstream_sha256", sa.String(length=64), nullable=False),
        sa.Column("decoded_sha256", sa.String(length=64), nullable=False),
        sa.Column("per_frame", sa.JSON(), nullable=False),
        *_rung_columns(),
        sa.UniqueConstraint("experiment_id", "clip_sha256", "quality"),
    )
    return metadata


def upgrade() -> None:
    bind = op.get_bind()
    metadata = schema()
    existing = set(sa.inspect(bind).get_table_names())
    missing = [t for t in metadata.sorted_tables if t.name not in existing]
    metadata.create_all(bind, tables=missing)  # everything, on a new database
    for table in metadata.sorted_tables:
        if table.name in existing:
            _adopt(bind, table)


def _adopt(bind: sa.engine.Connection, table: sa.Table) -> None:
    """Bring a table made by an older ``create_all`` to this revision, keeping its rows."""
    inspector = sa.inspect(bind)
    present = {column["name"] for column in inspector.get_columns(table.name)}
    for column in table.columns:
        if column.name in present:
            continue
        if not column.nullable:
            raise RuntimeError(
                f"table {table.name} lacks the required column {column.name}: "
                "not a codeclab database"
            )
        op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    indexed = {tuple(index["column_names"]) for index in inspector.get_indexes(table.name)}
    for index in table.indexes:
        if tuple(c.name for c in index.columns) not in indexed:
            index.create(bind)
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
    uniques |= {
        tuple(index["column_names"])
        for index in inspector.get_indexes(table.name)
        if index.get("unique")
    }
    for constraint in table.constraints:
        if not isinstance(constraint, sa.UniqueConstraint):
            continue
        columns = tuple(c.name for c in constraint.columns)
        if columns in uniques:
            continue
        name = f"uq_{table.name}_{'_'.join(columns)}"
        try:
            with bind.begin_nested():  # a savepoint: rows that break it must not stop the rest
                op.create_index(name, table.name, list(columns), unique=True)
        except sa.exc.IntegrityError:
            log.warning("%s has rows that repeat %s: left without that constraint", table, columns)


def downgrade() -> None:
    metadata = schema()
    metadata.drop_all(op.get_bind())
