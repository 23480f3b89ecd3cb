"""Admin endpoints: reload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from alerts.api.answers import Reloaded, ReloadFailed, answers
from alerts.api.auth import CurrentKey, CurrentService, require_admin
from alerts.errors import ConfigError

router = APIRouter(prefix="/api/v1", strict_content_type=False)


@router.post("/reload", response_model=Reloaded, responses={**answers(401, 403), 400: {
    "model": ReloadFailed, "description": "The new config has errors: the running one stays"}})
async def reload(key: CurrentKey, service: CurrentService) -> dict[str, Any] | JSONResponse:
    """Re-read the config and rule files (like SIGHUP). Any error keeps the running config and answers 400."""
    require_admin(key)
    try:
        return {"status": "ok", **await service.reload()}
    except ConfigError as exc:
        return JSONResponse({"status": "error", "detail": "reload failed; the running config stays active",
                             "errors": exc.errors}, status_code=400)
