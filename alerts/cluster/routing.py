"""Forwarding: a run's points are judged on the replica that holds its lease.

An ASGI middleware in front of the app. For ``POST /api/v1/runs/{project}/{run_id}/records`` of a running
run it makes sure this replica evaluates the run (:meth:`RunOwnership.claim`); when another live replica
does, the request goes there unchanged and its answer comes back unchanged. A load balancer that hashes
on the run (nginx ``hash $run_path consistent``) makes this rare. A heartbeat claims the run too (a quiet
run keeps an owner, which its ``absent`` rules need) but is answered here either way: it only writes.

A forwarded request is marked; a replica that gets one for a run it cannot take answers 503 instead of
forwarding again, as it does when the owner does not answer (it died: its lease expires within
``lease_ttl``, then the SDK's retry lands on a replica that takes the run).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import httpx
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.cluster.ownership import RunOwnership
from alerts.model import Run, RunState

log = logging.getLogger(__name__)

_RUN_PATH = re.compile(r"/api/v1/runs/([^/]+)/([^/]+)/(records|heartbeat)")
FORWARDED = b"x-runwatch-forwarded"
_PASSED_HEADERS = {b"authorization", b"content-type", b"content-encoding", b"user-agent"}


class OwnerRouting:
    def __init__(self, app: ASGIApp, *, ownership: RunOwnership,
                 find_run: Callable[[str, str], Awaitable[Run | None]], client: httpx.AsyncClient) -> None:
        self.app = app
        self._ownership = ownership
        self._find_run = find_run
        self._client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _RUN_PATH.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        run = await self._find_run(match[1], match[2])
        if run is None or run.state is not RunState.RUNNING:
            await self.app(scope, receive, send)  # the app answers (404, or late points of an ended run)
            return
        lease = await self._ownership.claim(run)
        if lease is None or match[3] == "heartbeat":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if FORWARDED in headers:
            await _answer(send, 503, {"detail": f"run {run.project}/{run.id} moved to replica {lease.replica} "
                                                "while this request was forwarded; retry"})
            return
        body = await _read_all(receive)
        target = lease.url.rstrip("/") + (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        passed = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers.items()
                  if name in _PASSED_HEADERS}
        passed[FORWARDED.decode()] = self._ownership.replica
        try:
            response = await self._client.post(target, content=body, headers=passed)
        except httpx.HTTPError as exc:
            log.warning("run %s/%s: its replica %s did not answer (%s); the client retries",
                        run.project, run.id, lease.replica, type(exc).__name__)
            await _answer(send, 503, {"detail": f"run {run.project}/{run.id} is evaluated by replica "
                                                f"{lease.replica}, which does not answer; retry"})
            return
        self._ownership.forwarded += 1
        kept = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()
                if name.lower() in ("content-type", "retry-after")]
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [*kept, (b"content-length", str(len(response.content)).encode())]})
        await send({"type": "http.response.body", "body": response.content})


async def _read_all(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _answer(send: Send, status: int, content: dict[str, str]) -> None:
    body = orjson.dumps(content)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
