"""HTTP to the service, with every outcome classified the way the sender needs it.

``ok`` (2xx), ``transient`` (connection error, timeout, 408, 429, 5xx: spool and retry with backoff) or
``permanent`` (any other 4xx: record once, keep the data on disk, move on). The API key travels only in
the ``Authorization`` header and never appears in a result's message.

Plain ``http://`` without a proxy (a service on the same host or network: the common case) goes over one
kept-alive stdlib ``http.client`` connection, which costs the sender thread (and the latency of an alert)
about half of what httpx's client stack does per request. ``https://``, or a proxy named by the
environment (``HTTP_PROXY``, ``NO_PROXY``...), goes through httpx, with its certificate bundle and proxy
handling.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import urllib.parse
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import http.client

__all__ = ["HttpxTransport", "Result", "StdlibTransport", "Transport", "classify", "open_transport"]

Outcome = Literal["ok", "transient", "permanent"]


@dataclasses.dataclass
class Result:
    outcome: Outcome
    status: int | None = None
    data: Any = None
    message: str = ""


class Transport(Protocol):
    """What the sender needs from the network; tests substitute a fake."""

    def request(self, method: str, path: str, body: bytes | None = None) -> Result: ...

    def close(self) -> None: ...


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return "ok"
    if status in (408, 429) or status >= 500:
        return "transient"
    return "permanent"


def _detail(text: str) -> str:
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        return text[:200]
    return json.dumps(detail)[:300] if not isinstance(detail, str) else detail[:300]


def open_transport(base_url: str, api_key: str | None, timeout: float = 10.0) -> Transport:
    """The transport for ``base_url``: stdlib for plain http without a proxy, else httpx (module docstring)."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme == "http" and parts.hostname and not _proxied(parts):
        return StdlibTransport(base_url, api_key, timeout)
    return HttpxTransport(base_url, api_key, timeout)


def _proxied(parts: urllib.parse.SplitResult) -> bool:
    import urllib.request  # here: ~15 ms that ``import runwatch`` need not pay

    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.netloc)


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "runwatch-python/0.1.0"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _result(status: int, body: bytes) -> Result:
    outcome = classify(status)
    if outcome == "ok":
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        return Result("ok", status, data)
    return Result(outcome, status, None, f"HTTP {status}: {_detail(body.decode('utf-8', 'replace'))}")


class StdlibTransport:
    """One kept-alive ``http.client`` connection to a plain-http service.

    A connection the service closed while idle (uvicorn drops keep-alive connections after 5 s) fails on
    its next request before any answer: that request is sent again once on a new connection, as httpx
    does. Sending twice is safe: records are claimed by ``seq``, alerts deduplicated by their id.
    """

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 10.0) -> None:
        import http.client  # on the caller's thread, at init (see run.py on forks)

        self._http = http.client
        parts = urllib.parse.urlsplit(base_url)
        assert parts.hostname is not None
        self._host, self._port = parts.hostname, parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._headers = _headers(api_key)
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> Result:
        fresh = self._conn is None
        try:
            try:
                status, data = self._exchange(method, path, body)
            except (self._http.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if fresh:
                    raise
                self.close()
                status, data = self._exchange(method, path, body)
        except TimeoutError as exc:
            self.close()
            return Result("transient", None, None, f"timeout: {type(exc).__name__}")
        except (OSError, self._http.HTTPException) as exc:
            self.close()
            return Result("transient", None, None, f"connection error: {type(exc).__name__}: {exc}")
        return _result(status, data)

    def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        conn = self._conn
        if conn is None:
            conn = self._http.HTTPConnection(self._host, self._port, timeout=min(3.0, self._timeout))
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self._timeout)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        # A bytes body goes out in one send with the headers (no Nagle/delayed-ACK stall).
        conn.request(method, self._prefix + path, body=body or b"", headers=self._headers)
        response = conn.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        return response.status, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class HttpxTransport:
    """httpx-based transport; httpx is imported on first use so ``import runwatch`` stays light."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 10.0) -> None:
        import httpx

        self._httpx = httpx
        self._client = httpx.Client(
            base_url=base_url, headers=_headers(api_key), timeout=httpx.Timeout(timeout, connect=min(3.0, timeout))
        )

    def request(self, method: str, path: str, body: bytes | None = None) -> Result:
        try:
            resp = self._client.request(method, path, content=body)
        except self._httpx.TimeoutException as exc:
            return Result("transient", None, None, f"timeout: {type(exc).__name__}")
        except self._httpx.HTTPError as exc:
            return Result("transient", None, None, f"connection error: {type(exc).__name__}: {exc}")
        return _result(resp.status_code, resp.content)

    def close(self) -> None:
        self._client.close()
