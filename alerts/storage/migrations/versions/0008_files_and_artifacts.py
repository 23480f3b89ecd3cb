"""files and artifacts: content-addressed blobs, run files, versioned artifacts with aliases and usage

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "blob_chunks",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "seq"),
    )
    op.create_table(
        "project_blobs",
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("project", "sha256"),
    )
    op.create_table(
        "run_files",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_pk", "path"),
    )
    op.create_table(
        "artifacts",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("project", "name", "version", name="uq_artifacts_version"),
        sa.UniqueConstraint("project", "name", "digest", name="uq_artifacts_digest"),
    )
    with op.batch_alter_table("artifacts") as batch:
        batch.create_index("ix_artifacts_created_by", ["created_by"], unique=False)
    op.create_table(
        "artifact_aliases",
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("artifact_pk", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project", "name", "alias"),
    )
    op.create_table(
        "artifact_files",
        sa.Column("artifact_pk", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("ref", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("artifact_pk", "path"),
    )
    op.create_table(
        "artifact_usage",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("artifact_pk", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(8), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_pk", "artifact_pk", "relation"),
    )


def downgrade() -> None:
    for table in ("artifact_usage", "artifact_files", "artifact_aliases", "artifacts", "run_files",
                  "project_blobs", "blob_chunks", "blobs"):
        op.drop_table(table)
