"""503 with Retry-After while the database is unavailable, instead of a 500 and a traceback per request.

A PostgreSQL restart or failover cuts every pooled connection; the requests of those seconds fail. They
are the client's to retry (the SDK does, keeping the points in order), so the answer says so: 503, a
``Retry-After``, and a detail naming the cause. The log gets one line per request, not a traceback.
"""

from __future__ import annotations

import logging

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.storage.outage import describe, is_outage

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1


class StorageOutage:
    """Outermost of our middleware (inside the framework's own error handler, which it pre-empts)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            if started or not is_outage(error):
                raise
            log.warning("%s %s: 503, the database is unavailable (%s)", scope["method"], scope["path"],
                        describe(error))
            body = orjson.dumps({"detail": "the database is unavailable (restarting or unreachable); "
                                           f"retry in {RETRY_AFTER_SECONDS} s"})
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]})
            await send({"type": "http.response.body", "body": body})
