"""Experiment summaries: a light row per experiment and its holdout BD-rate per baseline.

The dashboard lists, counts and ranks experiments from these tables instead of loading
every record; an index on experiments (program, time) lists the newest runs of a program
(the version history). The tables start empty; the store fills them for the experiments already
there when it opens (``ExperimentStore._summarize_old``: the figures are the record's,
computed by the code that reads records, not frozen here). Tables that already exist (a
database made by ``create_all``) are adopted, as in 0001.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def schema() -> sa.MetaData:
    """The tables this revision adds, as they are at this revision."""
    metadata = sa.MetaData()
    sa.Table(
        "experiments",
        metadata,
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("program_sha256", sa.String(length=64)),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Index(PROGRAM_RUNS, "program_sha256", "created_at"),
    )
    sa.Table(
        "experiment_summaries",
        metadata,
        sa.Column(
            "experiment_id",
            sa.String(length=36),
            sa.ForeignKey("experiments.id"),
            primary_key=True,
        ),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("iteration", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("program_name", sa.String(length=200), nullable=False),
        sa.Column("designer", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("headline_kbps", sa.Float(), nullable=True),
        sa.Column("headline_psnr_y", sa.Float(), nullable=True),
        sa.Column("headline_ssim_y", sa.Float(), nullable=True),
        sa.Column("headline_ms_ssim_y", sa.Float(), nullable=True),
        sa.Column("headline_bd_rate_x265", sa.Float(), nullable=True),
        sa.Column("leaderboard_bd_rate", sa.Float(), nullable=True),
        sa.Column("leaderboard_anchor", sa.String(length=20), nullable=True),
        sa.Column("x265_quality_kbps", sa.Float(), nullable=True),
        sa.Column("x265_quality_clip", sa.String(length=200), nullable=True),
        sa.Column("llm_calls", sa.Integer(), nullable=False, index=True),
        sa.Column("llm_input_tokens", sa.Integer(), nullable=False),
        sa.Column("llm_output_tokens", sa.Integer(), nullable=False),
        sa.Column("llm_cost_usd", sa.Float(), nullable=False),
        sa.Column("llm_cost_known", sa.Boolean(), nullable=False),
        sa.Column("summary_version", sa.Integer(), nullable=False, index=True),
        sa.Index("ix_experiment_summaries_status_created_at", "status", "created_at"),
        sa.Index("ix_experiment_summaries_campaign_id_created_at", "campaign_id", "created_at"),
        sa.Index("ix_experiment_summaries_leaderboard", "leaderboard_bd_rate", "created_at"),
        sa.Index("ix_experiment_summaries_x265_quality", "x265_quality_kbps", "created_at"),
    )
    sa.Table(
        "holdout_bd_rates",
        metadata,
        sa.Column(
            "experiment_id",
            sa.String(length=36),
            sa.ForeignKey("experiments.id"),
            primary_key=True,
        ),
        sa.Column("encoder", sa.String(length=20), primary_key=True),
        sa.Column("bd_rate", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_holdout_bd_rates_ranking", "encoder", "bd_rate", "created_at"),
    )
    return metadata


NEW_TABLES = ("experiment_summaries", "holdout_bd_rates")
PROGRAM_RUNS = "ix_experiments_program_sha256_created_at"


def upgrade() -> None:
    bind = op.get_bind()
    metadata = schema()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for name in NEW_TABLES:
        table = metadata.tables[name]
        if name not in existing:
            table.create(bind)
            continue
        indexed = {index["name"] for index in inspector.get_indexes(name)}
        for index in table.indexes:
            if index.name not in indexed:
                index.create(bind)
    if PROGRAM_RUNS not in {index["name"] for index in inspector.get_indexes("experiments")}:
        op.create_index(PROGRAM_RUNS, "experiments", ["program_sha256", "created_at"])


def downgrade() -> None:
    op.drop_index(PROGRAM_RUNS, "experiments")
    for name in reversed(NEW_TABLES):
        op.drop_table(name)
