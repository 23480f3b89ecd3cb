"""``runwatch.Api`` against a tiny fake of the read endpoints."""

from __future__ import annotations

import http.server
import json
import math
import threading
import urllib.parse
from collections.abc import Iterator

import pytest
import runwatch

ROWS = [{"_step": i, "_timestamp": 1.0 + i, "_runtime": float(i), "loss": "NaN" if i == 1 else i / 10}
        for i in range(5)]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/api/v1/runs/p/r1":
            body = {"project": "p", "id": "r1", "name": "n", "state": "finished", "config": {"lr": 1},
                    "summary": {"loss": "Infinity"}, "tags": ["t"], "url": "http://x"}
        elif url.path == "/api/v1/runs/p/r1/history":
            after = int(q["after_step"])
            rows = [r for r in ROWS if r["_step"] > after][:2]
            body = {"rows": rows, "next_after_step": rows[-1]["_step"] if len(rows) == 2 else None}
        elif url.path == "/api/v1/runs":
            body = {"runs": [{"project": q["project"], "id": "r1", "state": q.get("state")}]}
        elif url.path == "/api/v1/alerts":
            body = {"alerts": [{"id": "a1", "status": q.get("status")}]}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[runwatch.Api]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield runwatch.Api(base_url=f"http://127.0.0.1:{server.server_address[1]}", api_key="k")
    server.shutdown()
    server.server_close()


def test_run_history_pages_and_decodes_non_finite(api: runwatch.Api) -> None:
    run = api.run("p/r1")
    assert (run.id, run.state, run.config, run.tags) == ("r1", "finished", {"lr": 1}, ["t"])
    assert run.summary["loss"] == math.inf
    rows = run.history(pandas=False)
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4]
    assert math.isnan(rows[1]["loss"])
    assert [r["_step"] for r in run.scan_history()] == [0, 1, 2, 3, 4]


def test_runs_and_alerts(api: runwatch.Api) -> None:
    runs = api.runs("p", filters={"state": "running"})
    assert runs[0].project == "p" and runs[0].state == "running"
    assert api.alerts(project="p", status="firing") == [{"id": "a1", "status": "firing"}]
    with pytest.raises(ValueError):
        api.run("no-slash")
