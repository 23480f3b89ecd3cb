"""``runwatch.Api`` against a tiny fake of the read endpoints."""

from __future__ import annotations

import http.server
import json
import math
import sys
import threading
import urllib.parse
from collections.abc import Iterator

import pytest
import runwatch
from runwatch.api import ApiRun

ROWS = [{"_step": i, "_timestamp": 1.0 + i, "_runtime": float(i), "loss": "NaN" if i == 1 else i / 10,
         **({"acc": "-Infinity" if i == 2 else 0.1 * i} if i % 2 == 0 else {}),
         **({"line\u2028sep": 1.5} if i == 3 else {})} for i in range(5)]


FIRST_ROW_READ = threading.Event()
HELD: list[bool] = []


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked answers, as the service streams its exports

    def do_GET(self) -> None:  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/api/v1/runs/p/r1":
            body = {"project": "p", "id": "r1", "name": "n", "state": "finished", "config": {"lr": 1},
                    "summary": {"loss": "Infinity"}, "tags": ["t"], "url": "http://x"}
        elif url.path in ("/api/v1/runs/p/r1/history", "/api/v1/runs/p/held/history") and q["format"] == "json":
            # The service's layout (alerts.export): one row per line, the commas in front, sent in pieces.
            keys = q["keys"].split(",") if "keys" in q else None
            rows = [r for r in ROWS if keys is None or any(k in r for k in keys)]
            lines = [json.dumps({k: v for k, v in r.items() if keys is None or k in keys or k[0] == "_"},
                                ensure_ascii=False) for r in rows]  # as orjson writes it: U+2028 unescaped
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, chunk in enumerate(["[\n", *[("," if n else "") + line + "\n" for n, line in enumerate(lines)],
                                       "]\n"]):
                data = chunk.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                if i == 1 and "held" in url.path:  # the rest only once the client has the first row
                    HELD.append(FIRST_ROW_READ.wait(timeout=30))
            self.wfile.write(b"0\r\n\r\n")
            return
        elif url.path == "/api/v1/runs":
            body = {"runs": [{"project": q["project"], "id": "r1", "state": q.get("state")}]}
        elif url.path == "/api/v1/alerts":
            body = {"alerts": [{"id": "a1", **q}]}
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
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


def test_run_history_streams_and_decodes_non_finite(api: runwatch.Api) -> None:
    run = api.run("p/r1")
    assert (run.id, run.state, run.config, run.tags) == ("r1", "finished", {"lr": 1}, ["t"])
    assert run.summary["loss"] == math.inf
    rows = run.history(pandas=False)
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4]
    assert math.isnan(rows[1]["loss"]) and rows[2]["acc"] == -math.inf and "acc" not in rows[1]
    assert rows[4] == {"_step": 4, "_timestamp": 5.0, "_runtime": 4.0, "loss": 0.4, "acc": 0.4}
    assert rows[3]["line\u2028sep"] == 1.5  # JSON may hold U+2028 raw: only "\n" ends a line
    assert [r["_step"] for r in run.scan_history()] == [0, 1, 2, 3, 4]
    assert [sorted(r) for r in run.scan_history(keys=["acc"])] == [["_runtime", "_step", "_timestamp", "acc"]] * 3


def test_history_is_a_dataframe_with_pandas_and_a_list_without(api: runwatch.Api,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    run = api.run("p/r1")
    frame = run.history()
    assert isinstance(frame, pd.DataFrame)
    assert frame["_step"].tolist() == [0, 1, 2, 3, 4] and math.isnan(frame["acc"][1])
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an environment without pandas sees
    assert run.history() == run.history(pandas=False) == list(run.scan_history())


def test_runs_and_alerts(api: runwatch.Api) -> None:
    runs = api.runs("p", filters={"state": "running"})
    assert runs[0].project == "p" and runs[0].state == "running"
    assert api.alerts(project="p", status="firing") == [{"id": "a1", "project": "p", "status": "firing"}]
    assert api.alerts(rule="r", severity="critical", source="rule") == [
        {"id": "a1", "rule": "r", "severity": "critical", "source": "rule"}]
    with pytest.raises(ValueError):
        api.run("no-slash")


def test_a_refused_export_raises(api: runwatch.Api) -> None:
    with pytest.raises(runwatch.Error, match="HTTP 404"):
        list(ApiRun(api, {"project": "p", "id": "missing"}).scan_history())


def test_scan_history_yields_rows_while_the_answer_is_still_coming(api: runwatch.Api) -> None:
    """The fake holds back everything after the first row until the test has read that row."""
    rows = ApiRun(api, {"project": "p", "id": "held"}).scan_history()
    assert next(rows)["_step"] == 0
    FIRST_ROW_READ.set()
    assert [row["_step"] for row in rows] == [1, 2, 3, 4]
    assert HELD == [True]  # the fake did not give up waiting: the first row came before the rest
