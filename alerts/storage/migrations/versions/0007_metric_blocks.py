"""metric_blocks: per metric, a summary of every 16 steps, so a chart of a long series reads 1/16 of the rows

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alerts.storage.series import block_summary_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_blocks",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("valued", sa.Integer(), nullable=False),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_pk", "key", "block"),
        sqlite_with_rowid=False,
    )
    # The points stored before this revision get their blocks now.
    op.get_bind().execute(sa.text(f"INSERT INTO metric_blocks {block_summary_sql('1 = 1')}"))


def downgrade() -> None:
    op.drop_table("metric_blocks")
