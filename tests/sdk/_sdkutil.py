"""Helpers shared by the SDK unit tests (imported as a top-level module: tests/ has no packages)."""

from __future__ import annotations

import json
import threading
from typing import Any

import runwatch
from runwatch.spool import SPOOL_NAME
from runwatch.transport import Result

QUIET = {"console": False, "signals": False}


def spool_lines(run: runwatch.Run) -> list[dict[str, Any]]:
    path = run.dir / SPOOL_NAME
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def history(run: runwatch.Run) -> list[dict[str, Any]]:
    return [r for r in spool_lines(run) if r.get("type") == "history"]


def offline(**kwargs: Any) -> runwatch.Run:
    settings = {**QUIET, **kwargs.pop("settings", {})}
    return runwatch.init(project="p", mode="offline", settings=settings, **kwargs)


class FakeTransport:
    """Stands in for the service: records requests; ``down`` makes every call a transient failure."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.down = False
        self.refuse_records: int | None = None
        self.lock = threading.Lock()
        self.last_seq = 0
        self.failed: list[str] = []  # paths of the calls made while ``down``

    def request(self, method: str, path: str, body: bytes | None = None) -> Result:
        with self.lock:
            if self.down:
                self.failed.append(path)
                return Result("transient", None, None, "connection error: down")
            payload = json.loads(body) if body else None
            self.calls.append((path, payload))
            if path == "/api/v1/runs":
                return Result("ok", 200, {"url": "http://svc/r", "heartbeat_interval": 10.0, "last_seq": 0})
            if path.endswith("/records"):
                if self.refuse_records:
                    return Result("permanent", self.refuse_records, None, "HTTP 422: bad")
                seqs = [r["seq"] for r in payload["records"]]
                self.last_seq = max([self.last_seq, *seqs])
                return Result("ok", 200, {"accepted": len(seqs), "duplicates": 0, "last_seq": self.last_seq})
            if path.endswith("/alerts"):
                return Result("ok", 200, {"results": []})
            return Result("ok", 200, {"state": "running", "heartbeat_interval": 10.0})

    def close(self) -> None:
        pass

    def records(self) -> list[dict[str, Any]]:
        return [r for p, body in self.calls if p.endswith("/records") for r in body["records"]]

    def paths(self) -> list[str]:
        return [p.rsplit("/", 1)[-1] for p, _ in self.calls]
