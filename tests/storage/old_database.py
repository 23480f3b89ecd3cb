"""A SQLite database as an earlier release left it: migrated only up to a given revision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from alerts.storage.sql import _MIGRATIONS

OLD_RUN = ("INSERT INTO runs (project, id, name, state, config, tags, summary, created_at, started_at, "
           "last_contact, last_seq) VALUES ('p', 'old', 'n', 'finished', '{}', '[]', '{}', 1, 1, 1, 0)")
"""One finished run, in the columns every revision has."""


@contextmanager
def database_at(db: Path, revision: str) -> Iterator[sa.Connection]:
    """A connection (committed on exit) to ``db`` migrated up to ``revision``, to fill as that release would."""
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            config = Config(str(_MIGRATIONS / "alembic.ini"))
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            yield conn
    finally:
        engine.dispose()
