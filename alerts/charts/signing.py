"""Signed chart URLs: ``{public_url}/charts/{alert_id}.png?exp=<unix>&sig=<hmac>``, fetchable without a key.

The signature is HMAC-SHA256 over ``"<alert_id>.<exp>"`` with a key derived from a secret kept in the
database (as the dashboard keeps its session secret, ``alerts/web/session.py``), so every replica
accepts every replica's URLs and a restart does not break the links already sent. A URL proves only
that this service made it for that alert, until ``exp``: it names no project and carries no key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from urllib.parse import quote

from alerts.storage.base import Store

_SECRET_KEY = ("_charts", "url_secret")
_SALT = b"runwatch-chart-url"
_ALERT_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")


async def load_secret(store: Store) -> bytes:
    """The signing key: the stored secret (created by the first replica to ask) run through the salt."""
    stored = await store.get_channel_state(*_SECRET_KEY)
    if not isinstance(stored, str):  # the first replica to write it wins; the others adopt its secret
        stored = await store.set_channel_state_once(*_SECRET_KEY, secrets.token_urlsafe(48), time.time())
    return hmac.new(str(stored).encode(), _SALT, hashlib.sha256).digest()


class UrlSigner:
    """Makes and checks chart URLs with one key."""

    def __init__(self, key: bytes, public_url: str) -> None:
        self._key = key
        self._base = public_url.rstrip("/")

    def _signature(self, alert_id: str, expires: int) -> str:
        return hmac.new(self._key, f"{alert_id}.{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, alert_id: str, *, expires: int) -> str:
        signature = self._signature(alert_id, expires)
        return f"{self._base}/charts/{quote(alert_id, safe='')}.png?exp={expires}&sig={signature}"

    def valid(self, alert_id: str, exp: str | None, sig: str | None, *, now: float | None = None) -> bool:
        """Whether the URL's parts were signed by us and have not expired. Malformed parts are simply
        invalid: the caller answers every failure the same way, so nothing tells a prober which part was wrong."""
        if exp is None or sig is None or not exp.isdigit() or len(exp) > 12 or not _SIGNATURE.match(sig) \
                or not _ALERT_ID.match(alert_id):
            return False
        expected = self._signature(alert_id, int(exp))
        # compare_digest first and always: the comparison's time must not depend on the expiry either.
        return hmac.compare_digest(expected, sig) and int(exp) > (time.time() if now is None else now)
