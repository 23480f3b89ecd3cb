"""``runwatch.login``: verify an API key against ``GET /api/v1/auth`` and store it (SPEC 3.1)."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any

from .errors import Error
from .settings import DEFAULT_BASE_URL, load_api_key, store_api_key

__all__ = ["login", "verify_key"]

HOW_TO = (
    "provide an API key: set the environment variable RUNWATCH_API_KEY, run `runwatch login KEY`, "
    "or create one on the server with `alerts keys create --project P`"
)


def verify_key(base_url: str, api_key: str, timeout: float = 10.0) -> dict[str, Any]:
    """Return the ``/api/v1/auth`` answer; raise ``Error`` (without the key) if the key is refused."""
    import httpx

    try:
        resp = httpx.get(
            f"{base_url.rstrip('/')}/api/v1/auth",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise Error(f"cannot reach the Runwatch service at {base_url}: {type(exc).__name__}") from None
    if resp.status_code in (401, 403):
        raise Error(f"the service at {base_url} refused the API key (HTTP {resp.status_code})")
    if resp.status_code >= 400:
        raise Error(f"the service at {base_url} answered HTTP {resp.status_code} to /api/v1/auth")
    try:
        data = resp.json()
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def login(key: str | None = None, host: str | None = None, relogin: bool = False, *, verify: bool = True) -> bool:
    """Make sure a working API key is configured for ``host`` (default ``RUNWATCH_BASE_URL``).

    - ``key`` given: verify it and store it in ``~/.config/runwatch/credentials.json`` (mode 0600).
    - no ``key`` but one configured (env ``RUNWATCH_API_KEY`` or the file), and not ``relogin``:
      only verify it.
    - nothing configured: prompt on a terminal; otherwise raise ``Error`` saying how to provide one.
    Returns True when a key was verified.
    """
    base_url = (host or os.environ.get("RUNWATCH_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if key is None and not relogin:
        configured = os.environ.get("RUNWATCH_API_KEY") or load_api_key(base_url)
        if configured:
            if verify:
                verify_key(base_url, configured)
            return True
    if key is None:
        if not (sys.stdin is not None and sys.stdin.isatty()):
            raise Error(f"no Runwatch API key configured for {base_url}; {HOW_TO}")
        key = getpass.getpass(f"Runwatch API key for {base_url}: ").strip()
        if not key:
            raise Error(f"no API key entered; {HOW_TO}")
    if verify:
        verify_key(base_url, key)
    store_api_key(base_url, key)
    return True
