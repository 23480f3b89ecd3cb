"""API keys: random secrets shown once, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import time

from alerts.model import ApiKey
from alerts.storage.base import Store

KEY_PREFIX = "rwk_"


def hash_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(store: Store, *, project: str | None, admin: bool) -> tuple[ApiKey, str]:
    """Store a new key and return it with its secret (which is never stored or shown again)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=secrets.token_hex(4), project=project, admin=admin, created_at=time.time())
    await store.insert_api_key(key, hash_key(secret))
    return key, secret
