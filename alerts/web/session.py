"""Dashboard sessions: an API key pasted once becomes a signed cookie that names the key.

The cookie holds the key's id and a random nonce, signed with the service's session secret (kept in
the database, so every replica accepts every session); it never holds the key. Each request looks the
key up again, so revoking a key ends its sessions within the cache window. The nonce seeds the CSRF
token (``csrf.py``) and is new on every login.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from alerts.model import ApiKey
from alerts.storage.base import Store

COOKIE = "runwatch_session"
MAX_AGE = 7 * 24 * 3600
_SECRET_KEY = ("_dashboard", "session_secret")
_KEY_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Session:
    key: ApiKey
    nonce: str


class Sessions:
    """Signs and reads session cookies; one per app."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._secret: str | None = None
        self._keys: dict[str, ApiKey] = {}
        self._keys_until = 0.0

    async def secret(self) -> str:
        """The signing secret, created once and shared through the store."""
        if self._secret is None:
            stored = await self._store.get_channel_state(*_SECRET_KEY)
            if not isinstance(stored, str):  # the first replica to write it wins; the others adopt its secret
                stored = await self._store.set_channel_state_once(*_SECRET_KEY, secrets.token_urlsafe(48),
                                                                  time.time())
            self._secret = str(stored)
        return self._secret

    async def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(await self.secret(), salt="runwatch-session")

    async def _key(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        if now >= self._keys_until:
            self._keys = {key.id: key for key in await self._store.list_api_keys() if key.revoked_at is None}
            self._keys_until = now + _KEY_CACHE_SECONDS
        return self._keys.get(key_id)

    async def read(self, request: Request) -> Session | None:
        """The request's session, or None (no cookie, bad signature, expired, key revoked)."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = (await self._serializer()).loads(raw, max_age=MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("k"), str) or not isinstance(data.get("n"), str):
            return None
        key = await self._key(data["k"])
        return Session(key, data["n"]) if key is not None else None

    async def start(self, response: Response, key: ApiKey, *, secure: bool) -> None:
        """Log ``key`` in: a fresh nonce, so a token seen before the login is worth nothing after it."""
        self._keys[key.id] = key
        value = (await self._serializer()).dumps({"k": key.id, "n": secrets.token_urlsafe(24)})
        response.set_cookie(COOKIE, value, max_age=MAX_AGE, httponly=True, samesite="strict", secure=secure,
                            path="/")

    @staticmethod
    def end(response: Response, *, secure: bool) -> None:
        response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=secure, path="/")
