"""alerts from Prometheus: source "prometheus" (a wider column), annotations, generator_url, expires_at

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("source", existing_type=sa.String(8), type_=sa.String(16), existing_nullable=False)
        batch.add_column(sa.Column("annotations", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("generator_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("generator_url")
        batch.drop_column("annotations")
        batch.alter_column("source", existing_type=sa.String(16), type_=sa.String(8), existing_nullable=False)
