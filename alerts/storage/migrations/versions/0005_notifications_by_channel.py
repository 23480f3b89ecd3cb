"""notifications: index pending rows by channel, for the per-channel claims of the retry stage

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_notifications_channel_due", "notifications", ["status", "channel", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_channel_due", table_name="notifications")
