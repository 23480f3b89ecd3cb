"""The ``webhook`` channel: SPEC §7 JSON over HTTP POST, signed with HMAC-SHA256 when a secret is set."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import httpx
import orjson
from pydantic import ConfigDict, Field, SecretStr, field_validator

from alerts.durations import Duration
from alerts.errors import PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels.base import Channel, ChannelConfig
from alerts.notify.channels.http_sender import HttpSender

USER_AGENT = "runwatch-alerts/0.1"


class WebhookConfig(ChannelConfig):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    type: Literal["webhook"]
    url: str
    """Where to POST (http or https)."""
    secret: SecretStr | None = None
    """HMAC-SHA256 signing secret: each request carries `X-Runwatch-Signature: t=...,v1=...`."""
    format: Literal["runwatch", "alertmanager"] = "runwatch"
    """`runwatch` (our JSON) or `alertmanager` (Alertmanager's webhook payload, version 4)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers (e.g. `Authorization`); never logged."""
    timeout: Duration | None = None
    """Bound on one request (default `delivery.timeout`)."""
    max_alerts: int = Field(default=0, ge=0)
    """Alerts per message (0 = all); the rest are counted in ``truncated_alerts``."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must start with http:// or https://")
        return url

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        # Caught here, not at the first delivery: a value HTTP cannot carry would fail every attempt.
        # Messages never quote the value (it is often a token).
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}: letters, digits and !#$%&'*+-.^_`|~ only")
            for position, char in enumerate(value, 1):
                if not (char == "\t" or " " <= char <= "~"):
                    raise ValueError(f"header {name!r}: character {position} of the value ({_describe(char)}) "
                                     "cannot be sent in an HTTP header; use printable ASCII")
        return headers


_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _describe(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}"


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


def classify_response(channel: str, response: httpx.Response,
                      secrets: Callable[[], Iterable[str]] = tuple) -> None:
    """Raise the classified error for a non-2xx answer (shared by HTTP-based channels).

    A permanent error quotes the start of the answer, which helps with "400 bad payload"; some servers
    echo the request, so every value ``secrets()`` gives is blanked out of the quote first."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise RecoverableDeliveryError(f"{channel}: receiver answered HTTP {status}",
                                       retry_after=retry_after_seconds(response))
    raise PermanentDeliveryError(f"{channel}: receiver answered HTTP {status} {response.reason_phrase}"
                                 f"{_short_body(response, secrets())}")


def _short_body(response: httpx.Response, secrets: Iterable[str]) -> str:
    text = response.text
    # Longest first, so a secret that contains another is blanked whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = text.strip().replace("\n", " ")
    return f": {text[:200]}" if text else ""


def request_secrets(url: str, headers: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """What a request to ``url`` with ``headers`` may reveal if echoed: the URL and its path and query,
    each query value, path segments long enough to be tokens, credentials and every header value."""
    parsed = httpx.URL(url)
    found = [url, parsed.raw_path.decode(errors="replace"), parsed.query.decode(errors="replace"),
             parsed.password or "", parsed.username or "", *extra]
    found += [value for _, value in parsed.params.multi_items()]
    found += [segment for segment in parsed.path.split("/") if len(segment) >= _TOKEN_LENGTH]
    found += [value for value in headers.values() if len(value) >= _TOKEN_LENGTH]
    return [value for value in found if value]


_TOKEN_LENGTH = 8  # shorter path segments and header values ("hook", "v1") are names, not secrets


class WebhookChannel(Channel):
    def __init__(self, name: str, config: WebhookConfig, *, timeout: float, public_url: str = "") -> None:
        super().__init__(name)
        self._config = config
        self._public_url = public_url
        self._http = HttpSender(config.url, timeout=config.timeout or timeout)

    def payload(self, notification: Notification) -> dict[str, Any]:
        message = notification.message
        alerts = message["alerts"]
        limit = self._config.max_alerts
        shown = alerts[:limit] if limit else alerts
        truncated = message.get("truncated_alerts", 0) + len(alerts) - len(shown)
        if self._config.format == "alertmanager":
            return alertmanager_payload(self.name, notification, shown, truncated, self._public_url)
        return {
            "version": "1",
            "status": message["status"],
            "receiver": self.name,
            "group_key": notification.group_key,
            "group_labels": message.get("group_labels", {}),
            "truncated_alerts": truncated,
            "alerts": shown,
        }

    async def send(self, notification: Notification) -> None:
        body = orjson.dumps(self.payload(notification))
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Runwatch-Delivery": notification.id, **self._config.headers}
        if self._config.secret is not None:
            secret = self._config.secret.get_secret_value().encode()
            headers["X-Runwatch-Signature"] = sign(secret, int(time.time()), body)
        try:
            response = await self._http.post(content=body, headers=headers)
        except httpx.TimeoutException:
            raise RecoverableDeliveryError(f"{self.name}: timed out") from None
        except httpx.TransportError as exc:
            # The exception text can contain the URL, which may carry a token: name only the kind.
            raise RecoverableDeliveryError(f"{self.name}: {type(exc).__name__}") from None
        classify_response(self.name, response, lambda: request_secrets(
            self._config.url, self._config.headers,
            [self._config.secret.get_secret_value()] if self._config.secret else []))

    async def aclose(self) -> None:
        await self._http.aclose()


_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: Alertmanager's "not resolved yet"


def alertmanager_payload(receiver: str, notification: Notification, alerts: list[dict[str, Any]], truncated: int,
                         external_url: str) -> dict[str, Any]:
    """Alertmanager's webhook v4 JSON, so existing receivers work unchanged."""
    labels = [alert["labels"] for alert in alerts]
    common = {k: v for k, v in labels[0].items() if all(other.get(k) == v for other in labels[1:])} if labels else {}
    annotations = [_annotations(alert) for alert in alerts]
    common_annotations = {k: v for k, v in annotations[0].items()
                          if all(other.get(k) == v for other in annotations[1:])} if annotations else {}
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": truncated,
        "status": notification.message["status"],
        "receiver": receiver,
        "groupLabels": notification.message.get("group_labels", {}),
        "commonLabels": common,
        "commonAnnotations": common_annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": alert["status"],
            "labels": alert["labels"],
            "annotations": annotation,
            "startsAt": alert["starts_at"],
            "endsAt": alert["ends_at"] or _ZERO_TIME,
            "generatorURL": alert["url"],
            "fingerprint": alert["fingerprint"],
        } for alert, annotation in zip(alerts, annotations, strict=True)],
    }


def _annotations(alert: dict[str, Any]) -> dict[str, str]:
    found = {"summary": alert["title"], "description": alert["text"]}
    for key in ("metric", "value", "threshold", "step", "resolved_reason"):
        if alert.get(key) is not None:
            found[key] = str(alert[key])
    return found
