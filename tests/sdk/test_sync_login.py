"""``runwatch sync`` with a fake service, ``runwatch.login`` with a tiny real HTTP server."""

from __future__ import annotations

import http.server
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import runwatch
from _sdkutil import FakeTransport, offline
from runwatch.cli import main
from runwatch.settings import credentials_path, load_api_key
from runwatch.sync import SYNCED_NAME, sync_path


def test_sync_uploads_offline_run_with_delayed_alerts() -> None:
    run = offline(id="off1")
    run.log({"a": 1})
    run.alert("offline alert", "x")
    run.log({"a": 2})
    run.finish()
    fake = FakeTransport()
    results = sync_path(Path(os.environ["RUNWATCH_DIR"]), transport_factory=lambda url, key: fake)
    assert [(r.run_id, r.ok, r.records, r.alerts) for r in results] == [("off1", True, 4, 1)]
    assert fake.paths()[0] == "runs" and fake.calls[0][1]["id"] == "off1"
    alerts = [a for p, body in fake.calls if p.endswith("/alerts") for a in body["alerts"]]
    assert alerts[0]["delayed"] is True and alerts[0]["title"] == "offline alert"
    assert [r["seq"] for r in fake.records()] == [1, 2, 3, 4]
    assert not (run.dir / "spool.jsonl").exists() and (run.dir / SYNCED_NAME).exists()
    assert sync_path(Path(os.environ["RUNWATCH_DIR"]), transport_factory=lambda url, key: fake) == []


def test_sync_failure_keeps_spool() -> None:
    run = offline(id="off2")
    run.log({"a": 1})
    run.finish()
    fake = FakeTransport()
    fake.down = True
    [result] = sync_path(run.dir, transport_factory=lambda url, key: fake, attempts=1, sleep=lambda s: None)
    assert not result.ok and "init refused" in result.error
    assert (run.dir / "spool.jsonl").exists()


class _AuthServer(http.server.ThreadingHTTPServer):
    seen: list[tuple[str, str | None]]  # (path, Authorization header) of every request


class _AuthHandler(http.server.BaseHTTPRequestHandler):
    good_key = "good-key"
    server: _AuthServer

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        ok = self.path == "/api/v1/auth" and self.headers.get("Authorization") == f"Bearer {self.good_key}"
        body = json.dumps({"project": "p", "admin": False} if ok else {"detail": "bad key"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def auth_server_seen() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """The server's URL and the list of the requests it got."""
    server = _AuthServer(("127.0.0.1", 0), _AuthHandler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def auth_server(auth_server_seen: tuple[str, list[tuple[str, str | None]]]) -> str:
    return auth_server_seen[0]


def test_login_verifies_and_stores_key_with_mode_0600(
        auth_server_seen: tuple[str, list[tuple[str, str | None]]]) -> None:
    auth_server, seen = auth_server_seen
    assert runwatch.login("good-key", host=auth_server)
    assert seen == [("/api/v1/auth", "Bearer good-key")]  # verified before it was stored
    path = credentials_path()
    assert path.is_relative_to(Path(os.environ["HOME"]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_api_key(auth_server) == "good-key"
    before = path.read_bytes()
    assert runwatch.login(host=auth_server)  # configured: only verifies
    assert seen[1:] == [("/api/v1/auth", "Bearer good-key")]
    assert path.read_bytes() == before


def test_login_refused_key_is_not_stored_and_not_echoed(auth_server: str) -> None:
    with pytest.raises(runwatch.Error) as info:
        runwatch.login("secret-bad-key", host=auth_server)
    assert "secret-bad-key" not in str(info.value)
    assert not credentials_path().exists()


def test_login_without_key_and_without_tty_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", open(os.devnull))
    with pytest.raises(runwatch.Error, match="RUNWATCH_API_KEY.*runwatch login KEY.*alerts keys create"):
        runwatch.login(host="http://127.0.0.1:9")


def test_cli_login_and_env_wins_over_file(auth_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["login", "--host", auth_server, "good-key"]) == 0
    monkeypatch.setenv("RUNWATCH_API_KEY", "from-env")
    monkeypatch.setenv("RUNWATCH_BASE_URL", auth_server)
    from runwatch.settings import resolve_settings

    from_env = resolve_settings()
    assert from_env.api_key == "from-env"
    assert "from-env" not in repr(from_env)  # a secret: never in a log line or a traceback
    monkeypatch.delenv("RUNWATCH_API_KEY")
    from_file = resolve_settings()
    assert from_file.api_key == "good-key"
    assert "good-key" not in repr(from_file)
