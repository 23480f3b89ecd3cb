"""``GET /charts/{alert_id}.png?exp=&sig=``: an alert's chart behind a signed, expiring URL (no API key).

Webhook payloads carry these URLs (``chart_url``) and Slack fetches them for image blocks; the URL is
the credential (``alerts/charts/signing.py``). A URL that is expired, tampered with or malformed answers
403 with one fixed message, whichever part was wrong, and before anything is looked up: a prober learns
nothing about which alerts exist.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from alerts.api.auth import CurrentService

router = APIRouter()

_FORBIDDEN = "invalid or expired chart link"
_MAX_AGE = 3600
"""Seconds a fetched chart may be cached: the alert's chart changes as the run goes on."""


@router.get("/charts/{alert_id}.png", response_class=Response, tags=["charts"], responses={
    200: {"content": {"image/png": {}}, "description": "The alert's chart"},
    403: {"description": "The link is expired, tampered with or malformed"},
    404: {"description": "No such alert, or no chart for it"}})
async def alert_chart(alert_id: str, service: CurrentService, request: Request,
                      exp: Annotated[str | None, Query(description="Expiry (UNIX seconds)")] = None,
                      sig: Annotated[str | None, Query(description="The URL's signature")] = None) -> Response:
    """The PNG of an alert's chart, for anyone holding a link the service signed (``chart_url``)."""
    charts = service.charts
    if not charts.url_valid(alert_id, exp, sig):
        raise HTTPException(403, _FORBIDDEN)
    found = await service.store.get_alert(alert_id)
    if found is None:
        raise HTTPException(404, "unknown alert")
    png = await charts.for_alert(found)
    if png is None:
        raise HTTPException(404, "no chart for this alert")
    return png_answer(png, request, cache_control=f"private, max-age={_MAX_AGE}")


def png_answer(png: bytes, request: Request, *, cache_control: str) -> Response:
    """A chart's PNG with an ETag, or 304 when the browser already holds these bytes."""
    etag = '"' + hashlib.sha256(png).hexdigest()[:32] + '"'
    headers = {"Cache-Control": cache_control, "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if etag in request.headers.get("If-None-Match", ""):
        return Response(status_code=304, headers=headers)
    return Response(png, media_type="image/png", headers=headers)
