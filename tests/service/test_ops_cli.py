"""Operating the service: ``/readyz``, ``alerts db upgrade`` and ``alerts db backup``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.storage.old_database import OLD_RUN, database_at
from tests.support.service import ServiceProcess


@pytest.mark.both_backends
def test_readyz_says_ready_when_the_database_answers_at_head(service_factory: Callable[..., ServiceProcess]) -> None:
    service = service_factory()
    response = httpx.get(f"{service.base_url}/readyz", timeout=30)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_503_naming_the_revision_when_the_schema_is_not_this_releases(
        service_factory: Callable[..., ServiceProcess]) -> None:
    service = service_factory()
    db = sqlite3.connect(service.storage_url.removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE alembic_version SET version_num = '0007'")
    db.close()
    response = httpx.get(f"{service.base_url}/readyz", timeout=30)
    assert response.status_code == 503
    reason = response.json()["reason"]
    assert "0007" in reason and "alerts db upgrade" in reason
    assert httpx.get(f"{service.base_url}/healthz", timeout=30).status_code == 200  # alive, just not ready


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts", *args, "--config", str(config)], capture_output=True,
                          text=True, timeout=120, cwd=config.parent)


def test_db_upgrade_migrates_a_database_of_an_earlier_release(tmp_path: Path) -> None:
    with database_at(tmp_path / "old.db", "0007") as conn:
        conn.execute(sa.text(OLD_RUN))
    config = tmp_path / "alerts.yaml"
    config.write_text("storage: {url: 'sqlite:///old.db'}\n")
    result = cli(config, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    db = sqlite3.connect(tmp_path / "old.db")
    assert db.execute("SELECT count(*) FROM runs WHERE id = 'old'").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM run_files").fetchone() == (0,)  # a table of a later revision
    db.close()


@pytest.mark.both_backends
def test_db_backup_copies_a_live_sqlite_database_and_advises_pg_dump_for_postgresql(
        service_factory: Callable[..., ServiceProcess], service_backend: str) -> None:
    service = service_factory()
    key = service.create_key("vision")
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "r1"}).status_code == 200
    target = service.workdir / "backups" / "copy.db"
    result = service.cli("db", "backup", str(target), check=False)
    if service_backend == "postgresql":
        assert result.returncode == 1 and "pg_dump" in result.stderr and not target.exists()
        return
    assert result.returncode == 0, result.stderr
    copy = sqlite3.connect(target)
    assert copy.execute("SELECT project, id FROM runs").fetchall() == [("vision", "r1")]
    copy.close()
    again = service.cli("db", "backup", str(target), check=False)
    assert again.returncode == 1 and "exists" in again.stderr


def test_the_retention_job_deletes_expired_entries_while_the_service_runs(
        service_factory: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    service = service_factory({"retention": {"notification_log": "1s", "delivered_notifications": "1s",
                                             "interval": "1s"},
                               "defaults": {"channels": ["console"], "group_wait": "0s"}})
    key = service.create_key("vision")
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "r1"}).status_code == 200
    call = {"id": "c1", "title": "Diverged", "text": "loss is NaN", "level": "error", "wait_duration": 0,
            "timestamp": 1.0}
    assert service.api("POST", "/api/v1/runs/vision/r1/alerts", key=key, json={"alerts": [call]}).status_code == 200

    def counts() -> tuple[int, int]:
        db = sqlite3.connect(service.storage_url.removeprefix("sqlite:///"))
        try:
            log_entries = db.execute("SELECT count(*) FROM channel_state WHERE key LIKE 'nflog:%'").fetchone()[0]
            delivered = db.execute("SELECT count(*) FROM notifications WHERE status = 'delivered'").fetchone()[0]
            return log_entries, delivered
        finally:
            db.close()

    service.wait_for(lambda: "Diverged" in service.log_text())  # the console channel delivered it
    service.wait_for(lambda: counts() == (0, 0) and "retention deleted" in service.log_text(), timeout=60)
    (alert,) = service.api("GET", "/api/v1/alerts?project=vision", key=key).json()["alerts"]
    assert alert["status"] == "firing"  # alerts are kept unless told
