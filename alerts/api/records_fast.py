"""The records endpoint's happy path as plain ASGI: the SDK's batches skip routing and dependency solving.

``POST /api/v1/runs/{project}/{run_id}/records`` is most of a busy service's requests, and FastAPI's
per-request machinery cost as much CPU as evaluating a batch. This middleware answers that route itself
when everything about the request is plainly fine: a key already in the key cache that may use the
project, a declared body within the limit that validates, a known run, a batch that applies. Anything
else (no or unknown key, a bad body, an unknown run, a seq gap, a concurrent copy) goes to the app with
the body replayed, untouched, so every error is the app's own answer, and nothing was written before.
"""

from __future__ import annotations

import re
import time

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.api.runs import records_answer
from alerts.api.schemas import RecordsBody
from alerts.ingest.records import RecordError
from alerts.ingest.runs import RunConflict
from alerts.keys import hash_key
from alerts.model import ApiKey
from alerts.service import Service

_ROUTE = re.compile(r"/api/v1/runs/([^/]+)/([^/]+)/records")
_HEADERS = [(b"content-type", b"application/json")]


class RecordsFastPath:
    def __init__(self, app: ASGIApp, *, service: Service, key_cache: dict[str, tuple[ApiKey | None, float]],
                 max_bytes: int) -> None:
        self.app = app
        self.service = service
        self.key_cache = key_cache
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _ROUTE.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        headers = dict(scope["headers"]) if match else {}
        declared = headers.get(b"content-length", b"")
        if match is None or "%" in scope["path"] or not declared.isdigit() or int(declared) > self.max_bytes:
            await self.app(scope, receive, send)  # not this route's plain case: the app decides
            return
        body, complete = await _read(receive, int(declared))
        if complete and await self._answer(match[1], match[2], headers, body, send):
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": not complete}
            return await receive()

        await self.app(scope, replay, send)

    async def _answer(self, project: str, run_id: str, headers: dict[bytes, bytes], body: bytes,
                      send: Send) -> bool:
        """Apply the batch and answer; False (nothing written, nothing sent) when the app must answer."""
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        cached = self.key_cache.get(hash_key(token.strip())) if scheme.lower() == "bearer" else None
        key = cached[0] if cached is not None and cached[1] > time.monotonic() else None
        if key is None or not key.may_access(project):
            return False
        try:
            parsed = RecordsBody.model_validate_json(body)
        except ValidationError:
            return False
        runs = self.service.runs
        run = await runs.get_run(project, run_id)
        if run is None:
            return False
        try:
            result = await runs.add_records(run, parsed.records, delayed=parsed.delayed)
        except (RecordError, RunConflict):  # raised before anything is stored
            return False
        content = orjson.dumps(records_answer(result, run))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_HEADERS, (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})
        return True


async def _read(receive: Receive, declared: int) -> tuple[bytes, bool]:
    """The body, and whether it came whole and as long as declared (else the app reads on and judges)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > declared:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), size == declared
