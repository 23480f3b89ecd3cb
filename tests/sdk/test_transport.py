"""The SDK's HTTP transports against real loopback servers: which one a URL gets, outcomes, and a
kept-alive connection that the server closed while idle."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from runwatch.transport import HttpxTransport, StdlibTransport, open_transport


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.connections: set[int] = set()
        self.answers: list[tuple[int, bytes]] = []
        self.close_after_answer = False
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append(("POST", self.path, body, dict(self.headers)))
                recorder.connections.add(self.client_address[1])
                status, answer = recorder.answers.pop(0) if recorder.answers else (200, b'{"ok": true}')
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                if recorder.close_after_answer:
                    self.close_connection = True  # as uvicorn does with an idle keep-alive connection

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Recorder]:
    recorder = _Recorder()
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    yield recorder
    recorder.shutdown()
    recorder.server_close()


def test_plain_http_gets_the_stdlib_transport_https_and_proxies_get_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(open_transport("http://127.0.0.1:8080", "k"), StdlibTransport)
    assert isinstance(open_transport("https://alerts.example.com", "k"), HttpxTransport)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    assert isinstance(open_transport("http://alerts.internal:8080", "k"), HttpxTransport)
    monkeypatch.setenv("NO_PROXY", "alerts.internal")
    assert isinstance(open_transport("http://alerts.internal:8080", "k"), StdlibTransport)


def test_requests_carry_the_key_and_path_prefix_and_outcomes_are_classified(server: _Recorder) -> None:
    transport = StdlibTransport(server.url + "/runwatch/", "secret-key", timeout=5)
    server.answers = [(200, b'{"accepted": 2}'), (429, b'{"detail": "slow down"}'), (422, b'{"detail": "bad seq"}'),
                      (500, b"oops")]
    ok = transport.request("POST", "/api/v1/runs", b'{"a": 1}')
    assert (ok.outcome, ok.status, ok.data) == ("ok", 200, {"accepted": 2})
    busy, bad, broken = (transport.request("POST", "/x", b"{}") for _ in range(3))
    assert (busy.outcome, busy.status, busy.message) == ("transient", 429, "HTTP 429: slow down")
    assert (bad.outcome, bad.message) == ("permanent", "HTTP 422: bad seq")
    assert (broken.outcome, broken.message) == ("transient", "HTTP 500: oops")
    method, path, body, headers = server.requests[0]
    assert (method, path, json.loads(body)) == ("POST", "/runwatch/api/v1/runs", {"a": 1})
    assert headers["Authorization"] == "Bearer secret-key" and headers["Content-Type"] == "application/json"
    assert len(server.connections) == 1  # one kept-alive connection for all four
    assert "secret-key" not in repr([busy, bad, broken])
    transport.close()


def test_a_connection_the_server_closed_while_idle_is_reopened_once(server: _Recorder) -> None:
    transport = StdlibTransport(server.url, None, timeout=5)
    server.close_after_answer = True
    for i in range(3):
        assert transport.request("POST", f"/r{i}", b"{}").outcome == "ok"
    assert [path for _, path, _, _ in server.requests] == ["/r0", "/r1", "/r2"]  # each exactly once
    assert len(server.connections) == 3
    transport.close()


def test_an_unreachable_service_is_transient_and_names_no_key() -> None:
    recorder = _Recorder()
    url = recorder.url
    recorder.server_close()  # the port is free again: nothing listens
    result = StdlibTransport(url, "secret-key", timeout=2).request("POST", "/x", b"{}")
    assert result.outcome == "transient" and result.status is None
    assert result.message.startswith("connection error: ") and "secret-key" not in result.message
