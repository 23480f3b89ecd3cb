"""A real HTTP receiver for webhooks: records every request; can fail, be slow or hold answers on demand."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.ports import free_port


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)
    """When the body had arrived (``time.monotonic``), before any ``delay`` or ``hold``."""

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    # A burst of notifications (50 groups flushed at once) overflowed the default backlog of 5: the kernel
    # reset connections, which the sender must take for failed sends. Real receivers listen with 511.
    request_queue_size = 511


class WebhookReceiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[ReceivedRequest] = []
        self.failures: list[tuple[int, dict[str, str]]] = []  # answers to give before succeeding
        self.rejected: list[ReceivedRequest] = []  # the requests answered with one of ``failures``
        self.echo_failures = False  # failures echo the request line and headers, as some servers do
        self.delay = 0.0  # seconds to take over each answer (a slow receiver)
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it was answering at once
        self._lock = threading.Lock()
        self._open = threading.Event()  # cleared by hold(): answers wait until release()
        self._open.set()
        self.stalled: list[ReceivedRequest] = []  # requests that met stall(): never answered, never processed
        self._stall = threading.Event()  # set by stall(), cleared by unstall()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                try:
                    self._answer()
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1

            def _answer(self) -> None:
                declared = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(declared)
                if len(body) < declared:
                    return  # the sender went away mid-request (it was killed): no request arrived
                arrived = time.monotonic()
                if receiver._stall.is_set():
                    # A hung receiver: the request is neither answered nor processed; the connection is
                    # dropped once the stall ends (bounded, like hold()), long after the sender timed out.
                    with receiver._lock:
                        receiver.stalled.append(ReceivedRequest(self.path, dict(self.headers.items()), body, arrived))
                    deadline = time.monotonic() + 120
                    while receiver._stall.is_set() and time.monotonic() < deadline:
                        time.sleep(0.05)
                    self.close_connection = True
                    return
                time.sleep(receiver.delay)
                receiver._open.wait(timeout=120)  # bounded: a test that forgets release() fails, never hangs
                request = ReceivedRequest(self.path, dict(self.headers.items()), body, arrived)
                with receiver._lock:
                    failure = receiver.failures.pop(0) if receiver.failures else None
                    (receiver.requests if failure is None else receiver.rejected).append(request)
                status, headers = failure or (200, {})
                answer = b"ok"
                if failure is not None and receiver.echo_failures:
                    lines = [f"POST {request.path}", *(f"{k}: {v}" for k, v in request.headers.items())]
                    answer = "\n".join(lines).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def hold(self) -> None:
        """Keep every request waiting for its answer (and unrecorded) until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def stall(self) -> None:
        """Hang every request from now on (the sender's timeout fires; nothing is processed) until
        :meth:`unstall`: a receiver stuck on its own backend."""
        self._stall.set()

    def unstall(self) -> None:
        self._stall.clear()

    def stop(self) -> None:
        self._open.set()
        self._stall.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def payloads(self) -> list[Any]:
        with self._lock:
            return [request.json() for request in self.requests]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedRequest]:
        """The requests so far, once there are at least ``count``."""
        return self.wait_until(lambda requests: len(requests) >= count, timeout, f"{count} webhook requests")

    def wait_until(self, predicate: Callable[[list[ReceivedRequest]], bool], timeout: float = 30.0,
                   what: str = "the expected webhook requests") -> list[ReceivedRequest]:
        """The requests so far, once ``predicate(requests)`` is True (strictly: not merely truthy)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                requests = list(self.requests)
            if predicate(requests) is True:
                return requests
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not received within {timeout}s; got {len(requests)} requests, "
                                     f"the last ones: {[r.body[:300] for r in requests[-5:]]}")
            time.sleep(0.02)
