"""Bearer-key authentication: project keys reach their own project, admin keys everything.

The Alertmanager API v2 (``/api/v2``) also takes the key as the password of HTTP basic auth, which
Prometheus' ``alertmanagers`` config and amtool's ``--http.config.file`` can send."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from alerts.keys import hash_key
from alerts.model import ApiKey
from alerts.service import Service

_CACHE_SECONDS = 5.0  # a revoked key stops working within this long


async def get_service(request: Request) -> Service:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop on every request.
    service: Service = request.app.state.service
    return service


async def current_key(request: Request, service: Annotated[Service, Depends(get_service)], *,
                      basic: bool = False) -> ApiKey:
    """The key of the request's ``Authorization: Bearer <key>`` (with ``basic``, also of HTTP basic auth
    whose password is the key; the user name is not looked at)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if basic and scheme.lower() == "basic":
        token = _basic_password(token)
    elif scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing API key: send the header 'Authorization: Bearer <key>'"
                                 + (" or HTTP basic auth with the key as the password" if basic else ""),
                            headers={"WWW-Authenticate": "Basic" if basic else "Bearer"})
    digest = hash_key(token.strip())
    cache: dict[str, tuple[ApiKey | None, float]] = request.app.state.key_cache
    cached = cache.get(digest)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        key = cached[0]
    else:
        key = await service.store.find_api_key(digest)
        if len(cache) > 10_000:
            cache.clear()
        cache[digest] = (key, now + _CACHE_SECONDS)
    if key is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return key


_BEARER = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                     description="A Runwatch API key (`alerts keys create`): `Authorization: Bearer <key>`")


async def bearer_key(request: Request, service: Annotated[Service, Depends(get_service)],
                     _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> ApiKey:
    """:func:`current_key` as the routes' dependency: the same key, and the scheme in /openapi.json
    (``current_key`` reads the header itself, so the dashboard can call it with a request alone)."""
    return await current_key(request, service)


_BASIC = HTTPBasic(auto_error=False, scheme_name="KeyAsPassword",
                   description="HTTP basic auth with a Runwatch API key as the password (any user name)")


def _basic_password(credentials: str) -> str:
    try:
        _user, colon, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        colon, password = "", ""
    if not colon or not password.strip():
        raise HTTPException(401, "HTTP basic auth: expected base64 of 'user:<API key>'",
                            headers={"WWW-Authenticate": "Basic"})
    return password


async def bearer_or_basic_key(request: Request, service: Annotated[Service, Depends(get_service)],
                              _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
                              _basic: Annotated[HTTPBasicCredentials | None, Depends(_BASIC)]) -> ApiKey:
    """The Alertmanager API's key: a bearer key, or HTTP basic auth with the key as the password."""
    return await current_key(request, service, basic=True)


def require_project(key: ApiKey, project: str) -> None:
    if not key.may_access(project):
        raise HTTPException(403, f"this API key is not allowed to access project {project!r}")


def require_admin(key: ApiKey) -> None:
    if not key.admin:
        raise HTTPException(403, "this endpoint needs an admin API key")


CurrentKey = Annotated[ApiKey, Depends(bearer_key)]
AlertmanagerKey = Annotated[ApiKey, Depends(bearer_or_basic_key)]
CurrentService = Annotated[Service, Depends(get_service)]
