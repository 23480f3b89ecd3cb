"""The FastAPI application: routes only; the :class:`Service` does the work."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from alerts import __version__
from alerts.api import admin, alertmanager, alerts_routes, charts, files, runs, series, silences
from alerts.api.answers import Health, Readiness
from alerts.api.errors import install_error_handlers
from alerts.api.outage import StorageOutage
from alerts.api.records_fast import RecordsFastPath
from alerts.api.schemas import BODY_COMPONENTS
from alerts.cluster.routing import OwnerRouting
from alerts.errors import ConfigError, StorageError
from alerts.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from alerts.presentation import json_bytes
from alerts.service import Service


class JsonResponse(JSONResponse):
    """orjson rendering: fast, and NaN (which user config may hold) becomes null instead of a 500.

    A ``JSONResponse`` still, so FastAPI documents the routes' response models as JSON in /openapi.json.
    """

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def create_app(service: Service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on every platform
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload_quietly(service)))
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            await service.stop()

    # Bearer keys, not cookies, authenticate: no CSRF risk, so bodies need not say application/json.
    app = FastAPI(title="Runwatch alerts", version=__version__, lifespan=lifespan,
                  default_response_class=JsonResponse, strict_content_type=False)
    app.state.service = service
    app.state.key_cache = {}
    app.add_middleware(files.BodyLimitExceptUploads, max_bytes=service.settings.server.max_body_bytes)
    install_error_handlers(app)
    app.include_router(runs.router)
    app.include_router(alerts_routes.router)
    app.include_router(admin.router)
    app.include_router(silences.router)
    app.include_router(series.router)
    app.include_router(files.router)
    app.include_router(alertmanager.router)
    app.include_router(charts.router)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
    async def readyz() -> Response:
        """Ready for traffic: the database answers and its schema is this release's (a load balancer's and
        the container's check; ``/healthz`` only says the process serves)."""
        try:
            await service.store.check_ready()
        except StorageError as exc:
            return JsonResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        return JsonResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus' scrape target, open like Alertmanager's: counts only, no project, run or secret."""
        return Response(await service.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    from alerts.web import install as install_dashboard  # the web layer sits on top of the API

    install_dashboard(app, service)
    _document_hand_read_bodies(app)
    # Outermost of ours: the SDK's record batches answered without the framework's per-request work.
    app.add_middleware(RecordsFastPath, service=service, key_cache=app.state.key_cache,
                       max_bytes=service.settings.server.max_body_bytes)
    if service.ownership is not None:  # replicas: a run's points go to the replica evaluating it
        app.add_middleware(OwnerRouting, ownership=service.ownership, find_run=service.runs.get_run,
                           client=service.forwarding)
    app.add_middleware(StorageOutage)  # outermost: a database outage is a 503 wherever it surfaces
    return app


def _document_hand_read_bodies(app: FastAPI) -> None:
    """Add the schemas of the bodies routes read themselves (``BODY_COMPONENTS``) to /openapi.json."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            known = schema.setdefault("components", {}).setdefault("schemas", {})
            clashes = [name for name, body in BODY_COMPONENTS.items() if known.get(name, body) != body]
            if clashes:
                raise RuntimeError(f"two different schemas are both named {', '.join(clashes)} in /openapi.json")
            known.update(BODY_COMPONENTS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


async def _reload_quietly(service: Service) -> None:
    """SIGHUP: reload; errors are logged by the service and the running config stays."""
    with contextlib.suppress(ConfigError):
        await service.reload()
