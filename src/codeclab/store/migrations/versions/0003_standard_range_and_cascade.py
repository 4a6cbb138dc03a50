"""The wide-range BD-rate beside the standard one, and the evaluation cascade's stage.

``bd_rate_wide`` holds the BD-rate over wherever the curves overlap (the headline columns now
hold the standard range's); ``stage`` and ``screen`` say how far the cascade took a
candidate. All nullable: experiments made before them read as wide-range and uncascaded.
Columns that already exist (a database made by ``create_all``) are adopted, as in 0001.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

NEW_COLUMNS = {"bd_rate_wide": sa.JSON, "stage": lambda: sa.String(length=16), "screen": sa.JSON}


def upgrade() -> None:
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("experiments")}
    with op.batch_alter_table("experiments") as batch:
        for name, kind in NEW_COLUMNS.items():
            if name not in existing:
                batch.add_column(sa.Column(name, kind(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        for name in reversed(NEW_COLUMNS):
            batch.drop_column(name)
