"""The ``webhook`` channel: SPEC §7 JSON over HTTP POST, signed with HMAC-SHA256 when a secret is set.

The body is the plain payload (``format: runwatch`` or ``alertmanager``), or what a ``template:`` or a
``preset:`` (Discord, Teams, Telegram, PagerDuty, Opsgenie) renders: a preset is a built-in template
plus the address, path and headers its provider needs (``webhook_presets.py``), so both take one path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from alerts.durations import Duration
from alerts.errors import PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels.base import Channel, ChannelConfig, ChannelContext, GroupLocks
from alerts.notify.channels.http_sender import HttpSender
from alerts.notify.channels.webhook_presets import OPTION_DEFAULTS, OPTION_KEYS, PRESETS
from alerts.notify.channels.webhook_template import TemplateOutputError, WebhookTemplate, check_template, context

USER_AGENT = "runwatch-alerts/0.1"


class WebhookConfig(ChannelConfig):
    """JSON over HTTP POST: the plain payload (`format`), a `template:` of your own, or a `preset:` for
    Discord, Teams, Telegram, PagerDuty or Opsgenie (one of the three)."""

    # hide_input_in_errors: errors must not echo the secrets (a token in the url, routing_key, api_key)
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", hide_input_in_errors=True)

    type: Literal["webhook"]
    url: str | None = None
    """Where to POST (http or https); `preset: pagerduty` and `opsgenie` default to their public APIs.
    With `preset: telegram` it carries the bot token: `https://api.telegram.org/bot<token>/sendMessage`."""
    secret: SecretStr | None = None
    """HMAC-SHA256 signing secret: each request carries `X-Runwatch-Signature: t=...,v1=...`."""
    format: Literal["runwatch", "alertmanager"] = "runwatch"
    """`runwatch` (our JSON) or `alertmanager` (Alertmanager's webhook payload, version 4); the plain webhook only."""
    template: str | None = None
    """Jinja2 (sandboxed) rendering the JSON body from the notification (README: Notifications); checked
    against sample notifications when the config loads."""
    preset: Literal["discord", "teams", "telegram", "pagerduty", "opsgenie"] | None = None
    """A provider's body, address and headers built in (README: Notifications); not with `template`."""
    chat_id: int | str | None = None
    """`preset: telegram`: the chat to post to (a numeric id or `@channelname`)."""
    parse_mode: Literal["HTML", "plain"] | None = None
    """`preset: telegram`: `HTML` (the default: bold titles, links, text escaped) or `plain` text."""
    routing_key: SecretStr | None = None
    """`preset: pagerduty`: the Events API v2 integration key (secret)."""
    api_key: SecretStr | None = None
    """`preset: opsgenie`: the API integration key, sent as `Authorization: GenieKey <key>` (secret)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers (e.g. `Authorization`); never logged."""
    timeout: Duration | None = None
    """Bound on one request (default `delivery.timeout`)."""
    max_alerts: int = Field(default=0, ge=0)
    """Alerts per message (0 = all); the rest are counted in ``truncated_alerts``."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must start with http:// or https://")
        return url

    @field_validator("template")
    @classmethod
    def _template_renders(cls, source: str | None) -> str | None:
        if source is not None:
            check_template(source)  # a ValueError names the problem; the loader adds file:line
        return source

    @field_validator("api_key")
    @classmethod
    def _sendable_key(cls, key: SecretStr | None) -> SecretStr | None:
        # Sent in a header: a character HTTP cannot carry would fail every attempt, with the value in the error.
        if key is not None and not all("!" <= char <= "~" for char in key.get_secret_value()):
            raise ValueError("api_key must be printable ASCII without spaces (it is sent in a header)")
        return key

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

    @model_validator(mode="after")
    def _one_body(self) -> WebhookConfig:
        preset = PRESETS[self.preset] if self.preset is not None else None
        if preset is not None and self.template is not None:
            raise ValueError("set either preset or template, not both (a preset is a built-in template)")
        if (preset is not None or self.template is not None) and "format" in self.model_fields_set:
            raise ValueError("format applies to the plain webhook; a preset or template makes its own body")
        for key in OPTION_KEYS:
            if getattr(self, key) is not None and (preset is None or key not in preset.options):
                users = [f"preset: {name}" for name, found in PRESETS.items() if key in found.options]
                raise ValueError(f"{key} applies to {' or '.join(users)} only")
        if preset is not None:
            missing = [key for key in preset.required if getattr(self, key) is None]
            if missing:
                raise ValueError(f"preset: {preset.name} needs {' and '.join(missing)}")
        if self.url is None and (preset is None or preset.url is None):
            raise ValueError("url is required" + (f" for preset: {preset.name}" if preset is not None else ""))
        if preset is not None and preset.url_path_suffix and self.url is not None \
                and not urlsplit(self.url).path.endswith(preset.url_path_suffix):
            # Never quote the url: it carries the bot token.
            raise ValueError(f"preset: {preset.name} needs a url whose path ends with {preset.url_path_suffix}")
        return self


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
    text = redact(response.text, secrets).strip().replace("\n", " ")
    return f": {text[:200]}" if text else ""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` blanked out as ``***``."""
    # Longest first, so a secret that contains another is blanked whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


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
    """Posts each notification; for an incident preset (PagerDuty, Opsgenie) with a ``context``, also
    remembers per alert group when the newest delivered notification was made, and drops an older one
    still being retried (a permanent error that says so): a trigger retried after the group's resolve
    went out would reopen a closed incident. Alertmanager drops such a stale flush the same way."""

    def __init__(self, name: str, config: WebhookConfig, *, timeout: float, public_url: str = "",
                 context: ChannelContext | None = None) -> None:
        super().__init__(name)
        self._config = config
        self._public_url = public_url
        preset = PRESETS[config.preset] if config.preset is not None else None
        self._preset = preset
        self.keeps_incidents = preset is not None and preset.incidents
        self._context = context if self.keeps_incidents else None
        self._charts = context.charts_for(config) if context is not None else None
        self._locks = GroupLocks()  # recall → send → remember of an incident preset's newest delivery
        url = config.url or (preset.url if preset is not None else None)
        assert url is not None  # WebhookConfig requires one unless the preset has it
        self._url = url
        self._body: WebhookTemplate | None = None
        self._path: WebhookTemplate | None = None
        self._options: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if config.template is not None:
            self._body = WebhookTemplate(config.template)
        elif preset is not None:
            self._body = preset.body
            self._path = WebhookTemplate(preset.path) if preset.path else None
            for key in preset.options:
                value = getattr(config, key)
                value = value.get_secret_value() if isinstance(value, SecretStr) else value
                self._options[key] = OPTION_DEFAULTS.get(key) if value is None else value
            headers = {header: WebhookTemplate(source).render_text(self._options)
                       for header, source in preset.headers.items()}
        self._headers = {**headers, **config.headers}
        revealed = [value.get_secret_value() for value in (config.secret, config.routing_key, config.api_key)
                    if value is not None]
        # A bot token in the path (Telegram's /bot<token>/sendMessage) could be echoed without its prefix.
        revealed += [part.removeprefix("bot") for part in urlsplit(url).path.split("/")
                     if part.startswith("bot") and len(part) >= 3 + _TOKEN_LENGTH]
        self._secrets = request_secrets(url, self._headers, revealed)
        self._http = HttpSender(url, timeout=config.timeout or timeout)

    def _shown(self, notification: Notification) -> tuple[list[dict[str, Any]], int]:
        """The alerts this channel shows (``max_alerts``), each with its ``chart_url``, and how many of the
        group's it leaves out."""
        message = notification.message
        alerts = message["alerts"]
        limit = self._config.max_alerts
        shown = alerts[:limit] if limit else alerts
        charts = self._charts
        shown = [{**alert, "chart_url": charts.chart_url(alert) if charts is not None else None} for alert in shown]
        return shown, message.get("truncated_alerts", 0) + len(alerts) - len(shown)

    def payload(self, notification: Notification) -> dict[str, Any]:
        """The plain webhook's JSON (``format``)."""
        message = notification.message
        shown, truncated = self._shown(notification)
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

    def request(self, notification: Notification) -> tuple[str, bytes]:
        """Where to POST ``notification`` and the JSON body: the plain payload, or what the template or
        preset renders (once per attempt; the same message renders the same). Output that is not JSON
        is a permanent error: retrying would render it again."""
        if self._body is None:
            return self._url, orjson.dumps(self.payload(notification))
        shown, truncated = self._shown(notification)
        values = context(channel=self.name, group_key=notification.group_key, message=notification.message,
                         alerts=shown, truncated=truncated, public_url=self._public_url, options=self._options)
        try:
            body = self._body.render_json(values)
            path = self._path.render_text(values) if self._path is not None else ""
        except TemplateOutputError as exc:
            what = f"preset {self._preset.name}" if self._preset is not None else "template"
            raise PermanentDeliveryError(f"{self.name}: {what}: {redact(str(exc), self._secrets)}") from None
        return (self._url.rstrip("/") + path if path else self._url), body

    async def send(self, notification: Notification) -> None:
        if self._context is None:
            await self._post(notification)
            return
        async with self._locks.of(notification.group_key):
            newest = await self._context.recall(self.name, notification.group_key)
            if isinstance(newest, dict) and notification.created_at < newest.get("created_at", 0.0):
                raise PermanentDeliveryError(
                    f"{self.name}: superseded: a later notification of this alert group was delivered first, "
                    f"and sending this {notification.message['status']} one now would undo it")
            await self._post(notification)
            await self._context.remember(self.name, notification.group_key, {"created_at": notification.created_at,
                                                                             "delivery": notification.id})

    async def _post(self, notification: Notification) -> None:
        url, body = self.request(notification)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Runwatch-Delivery": notification.id, **self._headers}
        if self._config.secret is not None:
            secret = self._config.secret.get_secret_value().encode()
            headers["X-Runwatch-Signature"] = sign(secret, int(time.time()), body)
        try:
            response = await self._http.post(content=body, headers=headers, url=url)
        except httpx.TimeoutException:
            raise RecoverableDeliveryError(f"{self.name}: timed out") from None
        except httpx.TransportError as exc:
            # The exception text can contain the URL, which may carry a token: name only the kind.
            raise RecoverableDeliveryError(f"{self.name}: {type(exc).__name__}") from None
        classify_response(self.name, response, lambda: self._secrets)

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
            # A Prometheus alert links back to its expression, as Alertmanager's payload does.
            "generatorURL": alert.get("generator_url") or alert["url"],
            "fingerprint": alert["fingerprint"],
        } for alert, annotation in zip(alerts, annotations, strict=True)],
    }


def _annotations(alert: dict[str, Any]) -> dict[str, str]:
    if alert.get("annotations") is not None:  # a Prometheus alert: its own annotations, as posted
        return {"summary": alert["title"], "description": alert["text"], **alert["annotations"]}
    found = {"summary": alert["title"], "description": alert["text"]}
    for key in ("metric", "value", "threshold", "step", "resolved_reason", "chart_url"):
        if alert.get(key) is not None:
            found[key] = str(alert[key])
    return found
