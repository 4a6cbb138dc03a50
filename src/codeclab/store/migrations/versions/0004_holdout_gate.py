"""The evaluation cascade's holdout gate.

``gate`` says whether a candidate's full train figure was within the margin of its campaign's
best, so that it went on to the holdout clips (``stage: full``) or stopped there (``stage:
train``). Nullable: experiments made before it read as ungated. A column that already exists
(a database made by ``create_all``) is adopted, as in 0001.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("experiments")}
    if "gate" not in existing:
        with op.batch_alter_table("experiments") as batch:
            batch.add_column(sa.Column("gate", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("gate")
