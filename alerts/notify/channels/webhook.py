"""The ``webhook`` channel: SPEC §7 JSON over HTTP POST, signed with HMAC-SHA256 when a secret is set."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from alerts.durations import Duration
from alerts.errors import PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels.base import Channel

USER_AGENT = "runwatch-alerts/0.1"


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    format: Literal["runwatch"] = "runwatch"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must start with http:// or https://")
        return url


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Runwatch-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def classify_response(channel: str, response: httpx.Response) -> None:
    """Raise the classified error for a non-2xx answer (shared by HTTP-based channels)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise RecoverableDeliveryError(f"{channel}: receiver answered HTTP {status}",
                                       retry_after=retry_after_seconds(response))
    raise PermanentDeliveryError(f"{channel}: receiver answered HTTP {status} {response.reason_phrase}"
                                 f"{_short_body(response)}")


def _short_body(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return f": {text[:200]}" if text else ""


class WebhookChannel(Channel):
    def __init__(self, name: str, config: WebhookConfig, *, timeout: float) -> None:
        super().__init__(name)
        self._config = config
        self._client = httpx.AsyncClient(timeout=config.timeout or timeout, follow_redirects=False)

    def payload(self, notification: Notification) -> dict[str, Any]:
        message = notification.message
        return {
            "version": "1",
            "status": message["status"],
            "receiver": self.name,
            "group_key": notification.group_key,
            "group_labels": message.get("group_labels", {}),
            "truncated_alerts": message.get("truncated_alerts", 0),
            "alerts": message["alerts"],
        }

    async def send(self, notification: Notification) -> None:
        body = orjson.dumps(self.payload(notification))
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Runwatch-Delivery": notification.id, **self._config.headers}
        if self._config.secret is not None:
            secret = self._config.secret.get_secret_value().encode()
            headers["X-Runwatch-Signature"] = sign(secret, int(time.time()), body)
        try:
            response = await self._client.post(self._config.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise RecoverableDeliveryError(f"{self.name}: timed out") from None
        except httpx.TransportError as exc:
            # The exception text can contain the URL, which may carry a token: name only the kind.
            raise RecoverableDeliveryError(f"{self.name}: {type(exc).__name__}") from None
        classify_response(self.name, response)

    async def aclose(self) -> None:
        await self._client.aclose()
