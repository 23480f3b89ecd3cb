"""CSRF tokens for the dashboard's forms (the session cookie is also SameSite=Strict).

A token is an HMAC of a per-browser nonce under the session secret: the session's nonce once logged
in, before that a short-lived ``runwatch_csrf`` cookie (the login form). Every state-changing request
carries it as the form field ``csrf_token`` or the header ``X-CSRF-Token`` (htmx); anything else is
refused with 403 before the handler runs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response

LOGIN_COOKIE = "runwatch_csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def token(secret: str, nonce: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()


def login_nonce(request: Request) -> str:
    """The anonymous browser's nonce (a new one when it has none; see :func:`remember_login_nonce`)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def remember_login_nonce(response: Response, nonce: str, *, secure: bool) -> None:
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict", secure=secure,
                        path="/")


async def verify(request: Request, secret: str, nonce: str | None) -> None:
    """Raise 403 unless the request carries the token for ``nonce``."""
    sent = request.headers.get(HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(FIELD)
        sent = value if isinstance(value, str) else None
    if not nonce or not sent or not hmac.compare_digest(sent, token(secret, nonce)):
        raise HTTPException(403, "missing or invalid CSRF token: reload the page and submit the form again")
