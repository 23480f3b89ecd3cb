"""The dashboard: server-rendered pages on the service's own port (Datasette's shape).

``views/`` holds one module per kind of page on ``views/base.py``; ``templates/`` one Jinja template
per page; ``static/`` the hand-written ``app.css``/``app.js`` and the vendored uPlot and htmx (see
``vendor.py``). Nothing is fetched at run time and nothing is built.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from alerts.service import Service
from alerts.web.session import Sessions

__all__ = ["install"]


class _LongCachedStatic(StaticFiles):
    """Every URL under /static names one version of a file (version in the name or ``?v=`` hash)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                message["headers"] = [*message.get("headers", []),
                                      (b"cache-control", b"public, max-age=31536000, immutable")]
            await send(message)

        await super().__call__(scope, receive, send_cached)


def install(app: FastAPI, service: Service) -> None:
    """Add the dashboard's pages and static files to the service's app."""
    from alerts.web.views import alerts, compare, login, notifications, projects, rules, run, silences
    from alerts.web.views.base import STATIC

    app.state.sessions = Sessions(service.store)
    app.mount("/static", _LongCachedStatic(directory=STATIC), name="static")
    for module in (login, projects, run, compare, alerts, rules, silences, notifications):
        app.include_router(module.pages.router)
