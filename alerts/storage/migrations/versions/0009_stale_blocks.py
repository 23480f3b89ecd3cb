"""runs.blocks_stale_low/high: the steps whose metric_blocks the SQLite storage writer has yet to rebuild

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("blocks_stale_low", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("blocks_stale_high", sa.BigInteger(), nullable=True))
    stale = sa.text("blocks_stale_low IS NOT NULL")
    op.create_index("ix_runs_blocks_stale", "runs", ["blocks_stale_low"], sqlite_where=stale,
                    postgresql_where=stale)


def downgrade() -> None:
    op.drop_index("ix_runs_blocks_stale", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("blocks_stale_high")
        batch.drop_column("blocks_stale_low")
