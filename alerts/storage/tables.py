"""The relational schema (SQLAlchemy Core), shared by the SQLite and PostgreSQL backends.

Times are UNIX seconds (double precision) everywhere: cheap to compare, identical on both backends.
A metric ``value`` of NULL means NaN: SQLite cannot store NaN (it turns it into NULL), and a missing
value is never stored as a row, so NULL is free to carry that meaning on both backends.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

projects = Table(
    "projects", metadata,
    Column("name", String(200), primary_key=True),
    Column("created_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("project", String(200), nullable=True),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

runs = Table(
    "runs", metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), nullable=False),
    Column("id", String(128), nullable=False),
    Column("name", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("config", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("notes", Text, nullable=True),
    Column("group_name", String(300), nullable=True),
    Column("job_type", String(300), nullable=True),
    Column("summary", JSON, nullable=False),
    Column("host", String(300), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("system", JSON, nullable=True, server_default=text("'{}'")),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("last_contact", Float, nullable=False),
    Column("exit_code", Integer, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("console_tail", Text, nullable=True),
    Column("last_seq", BigInteger, nullable=False, default=0),
    # The steps whose metric_blocks still wait for a rebuild (SQLite: points commit first, the storage
    # writer rebuilds the blocks in the background); NULL when the run's blocks are up to date.
    Column("blocks_stale_low", BigInteger, nullable=True),
    Column("blocks_stale_high", BigInteger, nullable=True),
    # Who asked the run to stop, and why (a rule's stop_run action, `alerts runs stop`, the dashboard).
    Column("stop_request", JSON, nullable=True),
    UniqueConstraint("project", "id", name="uq_runs_project_id"),
)
Index("ix_runs_state_contact", runs.c.state, runs.c.last_contact)
# Only the runs with stale blocks: the rebuild finds them without reading every run.
Index("ix_runs_blocks_stale", runs.c.blocks_stale_low, sqlite_where=runs.c.blocks_stale_low.isnot(None),
      postgresql_where=runs.c.blocks_stale_low.isnot(None))

run_events = Table(
    "run_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, ForeignKey("runs.pk"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("at", Float, nullable=False),
)
Index("ix_run_events_run", run_events.c.run_pk)

steps = Table(
    "steps", metadata,
    Column("run_pk", Integer, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("runtime", Float, nullable=True),
    PrimaryKeyConstraint("run_pk", "step"),
    sqlite_with_rowid=False,  # the PK is the only index: one b-tree per insert instead of two
)

metrics = Table(
    "metrics", metadata,
    Column("run_pk", Integer, nullable=False),
    Column("key", String(300), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("value", Float, nullable=True),
    PrimaryKeyConstraint("run_pk", "key", "step"),
    sqlite_with_rowid=False,
)

BLOCK_STEPS = 16
"""Steps per row of ``metric_blocks``."""

metric_blocks = Table(
    # Per metric, the summary of every BLOCK_STEPS steps (block = step // BLOCK_STEPS), written with the
    # points: a chart of a long series reads these instead of every point (alerts/storage/series.py).
    "metric_blocks", metadata,
    Column("run_pk", Integer, nullable=False),
    Column("key", String(300), nullable=False),
    Column("block", BigInteger, nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("points", Integer, nullable=False),
    Column("valued", Integer, nullable=False),  # points - valued = NaN points (stored as NULL)
    Column("low", Float, nullable=True),  # min and max of the values: ±inf show here
    Column("high", Float, nullable=True),
    Column("first_at", Float, nullable=False),  # the earliest and latest timestamp of its points
    Column("last_at", Float, nullable=False),
    PrimaryKeyConstraint("run_pk", "key", "block"),
    sqlite_with_rowid=False,
)

media = Table(
    "media", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, nullable=False),
    Column("key", String(300), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("value", JSON, nullable=False),
)
Index("ix_media_run", media.c.run_pk, media.c.step)

alerts = Table(
    "alerts", metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(64), nullable=True, unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("rule", String(200), nullable=True),
    Column("project", String(200), nullable=False),
    Column("run_pk", Integer, nullable=True),
    Column("title", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("metric", String(300), nullable=True),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("step", BigInteger, nullable=True),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=True),
    Column("suppressed_count", Integer, nullable=False, default=0),
    Column("delayed", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("resolved_reason", Text, nullable=True),
    Column("annotations", JSON, nullable=True),
    Column("generator_url", Text, nullable=True),
    Column("expires_at", Float, nullable=True),
)
Index("ix_alerts_project_status", alerts.c.project, alerts.c.status)

alert_throttles = Table(
    "alert_throttles", metadata,
    Column("project", String(200), nullable=False),
    Column("run_id", String(128), nullable=False),
    Column("title", Text, nullable=False),
    Column("last_sent_at", Float, nullable=False),
    Column("suppressed", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("project", "run_id", "title"),
)

silences = Table(
    "silences", metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("comment", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

channel_state = Table(
    "channel_state", metadata,
    Column("channel", String(200), nullable=False),
    Column("key", Text, nullable=False),
    Column("value", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("channel", "key"),
)

notifications = Table(
    "notifications", metadata,
    Column("id", String(36), primary_key=True),
    Column("channel", String(200), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("message", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
)
Index("ix_notifications_due", notifications.c.status, notifications.c.next_attempt_at)
Index("ix_notifications_channel_due", notifications.c.status, notifications.c.channel, notifications.c.next_attempt_at)

# Files and artifacts (alerts/storage/files.py). Contents live in the database, content-addressed, so
# replicas of the service share them and the service needs no disk of its own.
BLOB_CHUNK_BYTES = 1024 * 1024
"""Bytes per row of ``blob_chunks``: a download streams one row at a time."""

blobs = Table(
    "blobs", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

blob_chunks = Table(
    "blob_chunks", metadata,
    Column("sha256", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("sha256", "seq"),
)

project_blobs = Table(
    # Which projects uploaded a blob: a key only ever references contents its project sent (knowing a
    # digest is not enough to read another project's file).
    "project_blobs", metadata,
    Column("project", String(200), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("project", "sha256"),
)

run_files = Table(
    "run_files", metadata,
    Column("run_pk", Integer, nullable=False),
    Column("path", String(1024), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),  # file (save) or code (log_code)
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("run_pk", "path"),
)

artifacts = Table(
    "artifacts", metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), nullable=False),
    Column("name", String(128), nullable=False),
    Column("type", String(64), nullable=False),
    Column("version", Integer, nullable=False),  # 0, 1, ... per (project, name): shown as v0, v1, ...
    Column("digest", String(64), nullable=False),
    Column("description", Text, nullable=True),
    Column("meta", JSON, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("created_by", Integer, nullable=True),  # the run that logged it first
    Column("created_at", Float, nullable=False),
    UniqueConstraint("project", "name", "version", name="uq_artifacts_version"),
    UniqueConstraint("project", "name", "digest", name="uq_artifacts_digest"),
)
Index("ix_artifacts_created_by", artifacts.c.created_by)

artifact_aliases = Table(
    # User aliases; "latest" is not stored: it is always the newest version.
    "artifact_aliases", metadata,
    Column("project", String(200), nullable=False),
    Column("name", String(128), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("artifact_pk", Integer, nullable=False),
    PrimaryKeyConstraint("project", "name", "alias"),
)

artifact_files = Table(
    "artifact_files", metadata,
    Column("artifact_pk", Integer, nullable=False),
    Column("path", String(1024), nullable=False),
    Column("sha256", String(64), nullable=True),  # NULL for a reference
    Column("ref", Text, nullable=True),  # the URI of a reference entry (add_reference: never downloaded)
    Column("size", BigInteger, nullable=True),
    PrimaryKeyConstraint("artifact_pk", "path"),
)

artifact_usage = Table(
    "artifact_usage", metadata,
    Column("run_pk", Integer, nullable=False),
    Column("artifact_pk", Integer, nullable=False),
    Column("relation", String(8), nullable=False),  # logged (an output of the run) or used (an input)
    Column("at", Float, nullable=False),
    PrimaryKeyConstraint("run_pk", "artifact_pk", "relation"),
)

run_leases = Table(
    # Replicas (cluster mode): which replica evaluates a run, until when, and where to forward its points.
    # One row per run, so two replicas can never both hold it: taking it is one conditional upsert.
    "run_leases", metadata,
    Column("run_pk", Integer, primary_key=True),
    Column("replica", String(64), nullable=False),
    Column("url", String(500), nullable=False),
    Column("expires_at", Float, nullable=False),
)
