"""The ``slack`` channel: Block Kit messages through an incoming webhook or a bot token.

Webhook mode posts one message per notification. Bot-token mode keeps one living message per alert
group: the first notification posts it (its channel and ``ts`` are remembered durably), later ones
``chat.update`` it and add a thread reply saying what changed; a group that fires again after it was
resolved starts a new message. slack-sdk's own retry handlers are off: only the retry stage retries.

Charts (``charts:``): in bot-token mode the notification's chart is uploaded into the message's thread
(``files_upload_v2``: the bot needs the ``files:write`` scope) right after the message is posted or
updated; a chart not ready within ``charts.timeout`` is left out and the message ends with a line saying
so. A retried notification whose message went out never uploads again, and a failed upload is logged,
never a failed delivery.
In webhook mode Slack must fetch the image itself: an image block with the chart's signed URL when
``server.public_url`` is an address Slack can reach (not loopback), no image otherwise.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from alerts.durations import Duration
from alerts.errors import DeliveryError, PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels.base import Channel, ChannelConfig, ChannelContext, ChartImage, ChartSkipped, GroupLocks

log = logging.getLogger("alerts.notify.slack")

# Slack's documented Block Kit limits.
MAX_BLOCKS = 50
MAX_HEADER_CHARS = 150
MAX_SECTION_CHARS = 3000
MAX_FALLBACK_CHARS = 3000
MAX_ALT_TEXT_CHARS = 2000
_BLOCKS_PER_ALERT = 2  # a section and a context block
MAX_ALERTS_SHOWN = (MAX_BLOCKS - 2) // _BLOCKS_PER_ALERT  # room for the header and the "…and N more" line

SEVERITIES = ("info", "warning", "error", "critical")
# Slack error codes that a retry can fix; every other ``ok: false`` answer is permanent.
RECOVERABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                                "request_timeout"})
# chat.update cannot touch the remembered message any more: post a new one instead.
MESSAGE_GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
# Labels already visible in the header or the section; the context block shows the others.
_SHOWN_LABELS = frozenset({"severity", "project", "run", "run_name", "metric"})


class SlackConfig(ChannelConfig):
    """``webhook_url`` (incoming webhook) or ``token`` + ``channel`` (bot token), never both."""

    # hide_input_in_errors: errors must not echo the secrets
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", hide_input_in_errors=True)

    type: Literal["slack"]
    webhook_url: SecretStr | None = None
    """An incoming-webhook URL (secret)."""
    token: SecretStr | None = None
    """A bot token (`xoxb-...`, secret) for `chat.postMessage` and threads."""
    channel: str | None = None
    """The channel a bot token posts to (`#ml-alerts` or an id)."""
    base_url: str | None = None
    """Slack's Web API address (a proxy or test server)."""
    username: str | None = None
    """Display name of the messages."""
    icon_emoji: str | None = None
    """Icon of the messages (`:rotating_light:`)."""
    timeout: Duration | None = None
    """Bound on one request (default `delivery.timeout`)."""
    max_alerts: int = Field(10, ge=1, le=MAX_ALERTS_SHOWN)
    """Alerts shown per message; the rest are counted."""

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and not url.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("webhook_url must start with https:// (e.g. https://hooks.slack.com/services/...)")
        return url

    @field_validator("base_url")
    @classmethod
    def _base_is_http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https:// (e.g. https://slack.com/api/)")
        return url

    @model_validator(mode="after")
    def _one_mode(self) -> SlackConfig:
        if self.webhook_url is not None and (self.token is not None or self.channel is not None):
            raise ValueError("set either webhook_url (incoming webhook) or token + channel (bot token), not both")
        if self.webhook_url is None and (self.token is None or self.channel is None):
            missing = "channel" if self.token is not None else "token" if self.channel is not None else None
            raise ValueError(f"bot-token mode needs {missing} as well" if missing else
                             "set webhook_url (incoming webhook) or token + channel (bot token)")
        if self.webhook_url is not None and self.base_url is not None:
            raise ValueError("base_url applies to bot-token mode only; webhook_url is already the full address")
        return self


class _MessageGone(Exception):
    """The remembered message can no longer be updated."""


class _Redactor(logging.Filter):
    """Replaces secrets in the records slack-sdk logs (its debug lines contain the webhook URL)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return True


class SlackChannel(Channel):
    def __init__(self, name: str, config: SlackConfig, context: ChannelContext) -> None:
        super().__init__(name)
        self._config = config
        self._context = context
        self._charts = context.charts_for(config)
        # Webhook mode draws only for image blocks, which need a public_url that Slack can reach.
        self.draws_charts = self._charts is not None and (config.webhook_url is None or self._charts.urls_reachable)
        self._timeout = config.timeout or context.timeout
        secrets = [config.token.get_secret_value() if config.token else ""]
        if config.webhook_url is not None:
            url = config.webhook_url.get_secret_value()
            path = urlsplit(url).path
            secrets += [url, path, path.rstrip("/").rsplit("/", 1)[-1]]
        self._redactor = _Redactor(secrets)
        # A private logger (not registered globally) so the filter sees everything slack-sdk logs.
        self._sdk_log = logging.Logger(f"{log.name}.sdk")
        self._sdk_log.parent = log
        self._sdk_log.addFilter(self._redactor)
        self._session: aiohttp.ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self._webhook: AsyncWebhookClient | None = None
        self._locks = GroupLocks()  # post → remember → update: one living message per group

    async def send(self, notification: Notification) -> None:
        if self._config.webhook_url is not None:
            await self._send_webhook(notification)
            return
        async with self._locks.of(notification.group_key):
            await self._send_bot(notification)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session, self._web, self._webhook = None, None, None

    # -- webhook mode ------------------------------------------------------------------------------

    async def _send_webhook(self, notification: Notification) -> None:
        assert self._config.webhook_url is not None
        if self._webhook is None:
            self._webhook = AsyncWebhookClient(self._config.webhook_url.get_secret_value(), timeout=self._int_timeout,
                                               session=self._http(), logger=self._sdk_log, retry_handlers=[])
        blocks, text = render(notification.message, max_alerts=self._config.max_alerts)
        chart = await self._chart_block(notification.message["alerts"])
        if chart is not None and len(blocks) < MAX_BLOCKS:
            blocks.append(chart)
        try:
            response = await self._webhook.send_dict(self._extras({"text": text, "blocks": blocks}))
        except Exception as exc:
            raise self._transport_error(exc) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        code = self._redactor.redact(str(response.body or "").strip().replace("\n", " "))[:200]
        detail = f"Slack webhook answered HTTP {status}" + (f" {code}" if code else "")
        if status in (408, 429) or status >= 500:
            raise RecoverableDeliveryError(f"{self.name}: {detail}", retry_after=_retry_after(response.headers))
        raise PermanentDeliveryError(f"{self.name}: {detail}")

    async def _chart_block(self, alerts: list[dict[str, Any]]) -> dict[str, Any] | None:
        """An image block of the first alert's chart that Slack can fetch, or a line saying it is not ready."""
        charts = self._charts
        if charts is None or not charts.urls_reachable:
            return None
        for alert in alerts:
            url = charts.chart_url(alert)
            if url is None:
                continue
            # Drawn now, within the bound: Slack fetches the URL as it takes the message, and a URL that
            # does not answer an image in time would make it refuse the whole message.
            chart = await charts.for_notification([alert])
            if isinstance(chart, ChartImage):
                return {"type": "image", "image_url": url, "alt_text": truncate(chart.alt_text, MAX_ALT_TEXT_CHARS)}
            return _note_block(chart.reason) if isinstance(chart, ChartSkipped) else None
        return None

    # -- bot-token mode ----------------------------------------------------------------------------

    async def _send_bot(self, notification: Notification) -> None:
        state = await self._context.recall(self.name, notification.group_key)
        if isinstance(state, dict) and state.get("delivery") == notification.id:
            # Done on an earlier attempt whose success was remembered but not recorded. Its chart was
            # uploaded then, or was lost with that attempt: never a second copy.
            return
        chart = await self._charts.for_notification(notification.message["alerts"]) if self._charts else None
        blocks, text = render(notification.message, max_alerts=self._config.max_alerts)
        if isinstance(chart, ChartSkipped) and len(blocks) < MAX_BLOCKS:
            blocks.append(_note_block(chart.reason))
        channel, ts = await self._post_or_update(notification, state, blocks, text)
        if isinstance(chart, ChartImage):
            await self._attach_chart(channel, ts, chart)

    async def _post_or_update(self, notification: Notification, state: Any, blocks: list[dict[str, Any]],
                              text: str) -> tuple[str, str]:
        """Post the group's message or update it (with a thread reply saying what changed); its (channel, ts)."""
        message = notification.message
        reopened = isinstance(state, dict) and state.get("status") == "resolved" and message["status"] == "firing"
        if not isinstance(state, dict) or reopened:
            return await self._post_new(notification, blocks, text)
        try:
            await self._call("chat.update", channel=state["channel"], ts=state["ts"], text=text, blocks=blocks)
        except _MessageGone:
            log.info("%s: message of group %s is gone; posting a new one", self.name, notification.group_key)
            return await self._post_new(notification, blocks, text)
        summary = change_summary(message, max_alerts=self._config.max_alerts)
        await self._call("chat.postMessage", **self._extras({"channel": state["channel"], "thread_ts": state["ts"],
                                                             "text": summary}))
        await self._context.remember(self.name, notification.group_key,
                                     {**state, "status": message["status"], "delivery": notification.id})
        return state["channel"], state["ts"]

    async def _post_new(self, notification: Notification, blocks: list[dict[str, Any]],
                        text: str) -> tuple[str, str]:
        data = await self._call("chat.postMessage", **self._extras({"channel": self._config.channel,
                                                                    "text": text, "blocks": blocks}))
        await self._context.remember(self.name, notification.group_key, {
            "channel": data["channel"], "ts": data["ts"], "status": notification.message["status"],
            "delivery": notification.id})
        return data["channel"], data["ts"]

    async def _attach_chart(self, channel: str, ts: str, chart: ChartImage) -> None:
        """The chart into the message's thread. The message is out and remembered: a failure here is
        logged, never retried (a retry would post the message again)."""
        try:
            await self._upload(channel, ts, chart)
        except DeliveryError as exc:
            log.warning("%s: the chart did not reach Slack (%s)", self.name, exc)

    async def _upload(self, channel: str, ts: str, chart: ChartImage) -> None:
        web = self._web_client()
        try:
            await web.files_upload_v2(filename="chart.png", content=chart.png, title=chart.alt_text,
                                      alt_txt=truncate(chart.alt_text, MAX_ALT_TEXT_CHARS), channel=channel,
                                      thread_ts=ts)
        except SlackApiError as exc:  # the step that failed: files.getUploadURLExternal or .completeUploadExternal
            step = str(getattr(exc.response, "api_url", "") or "files.upload").rsplit("/", 1)[-1]
            raise self._api_error(step, exc) from None
        except Exception as exc:
            raise self._transport_error(exc) from None

    def _web_client(self) -> AsyncWebClient:
        if self._web is None:
            assert self._config.token is not None
            self._web = AsyncWebClient(token=self._config.token.get_secret_value(), timeout=self._int_timeout,
                                       base_url=self._config.base_url or AsyncWebClient.BASE_URL,
                                       session=self._http(), logger=self._sdk_log, retry_handlers=[])
        return self._web

    async def _call(self, method: str, **arguments: Any) -> dict[str, Any]:
        web = self._web_client()
        try:
            response = await web.api_call(method, json=arguments)
        except SlackApiError as exc:
            raise self._api_error(method, exc) from None
        except Exception as exc:
            raise self._transport_error(exc) from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    def _api_error(self, method: str, exc: SlackApiError) -> Exception:
        response = exc.response
        status = int(getattr(response, "status_code", None) or getattr(response, "status", None) or 0)
        data = getattr(response, "data", None)
        data = data if isinstance(data, dict) else {}
        code = str(data.get("error") or f"HTTP {status}")
        if code in MESSAGE_GONE_ERRORS and method == "chat.update":
            return _MessageGone(code)
        details = (data.get("response_metadata") or {}).get("messages") or []
        detail = self._redactor.redact("; ".join(str(m) for m in details[:3]))[:300]
        text = f"{self.name}: Slack {method} failed: {code}" + (f" ({detail})" if detail else "")
        if status in (408, 429) or status >= 500 or code in RECOVERABLE_ERRORS:
            return RecoverableDeliveryError(text, retry_after=_retry_after(getattr(response, "headers", None)))
        return PermanentDeliveryError(text)

    # -- shared ------------------------------------------------------------------------------------

    def _transport_error(self, exc: Exception) -> RecoverableDeliveryError:
        # Exception texts can carry the URL (the webhook URL is a secret): name only the kind.
        if isinstance(exc, TimeoutError):
            return RecoverableDeliveryError(f"{self.name}: Slack timed out after {self._timeout:g}s")
        return RecoverableDeliveryError(f"{self.name}: cannot reach Slack ({type(exc).__name__})")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    @property
    def _int_timeout(self) -> int:
        return max(1, round(self._timeout))  # slack-sdk's type; our session's timeout is the exact one

    def _extras(self, body: dict[str, Any]) -> dict[str, Any]:
        body["unfurl_links"] = False
        body["unfurl_media"] = False
        if self._config.username:
            body["username"] = self._config.username
        if self._config.icon_emoji:
            body["icon_emoji"] = self._config.icon_emoji
        return body


def _note_block(note: str) -> dict[str, Any]:
    """A small italic line at the end of the message ("chart not ready in time")."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": f"_{escape(note)}_"}]}


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


# -- Block Kit --------------------------------------------------------------------------------------

def render(message: dict[str, Any], *, max_alerts: int) -> tuple[list[dict[str, Any]], str]:
    """The Block Kit blocks and the plain-text fallback of one notification, within Slack's limits."""
    alerts: list[dict[str, Any]] = message["alerts"]
    shown = alerts[:min(max_alerts, MAX_ALERTS_SHOWN)]
    header = _header(message, alerts)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                                  "text": truncate(header, MAX_HEADER_CHARS)}}]
    lines = [header]
    for alert in shown:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _alert_section(alert)}})
        context = _alert_context(alert)
        if context:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        run = alert.get("run") or {}
        lines.append(f"• {alert['title']} ({alert['project']}/{run.get('name') or run.get('id') or '-'})")
    if len(alerts) > len(shown):
        more = f"…and {len(alerts) - len(shown)} more"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"_{more}_"}})
        lines.append(more)
    return blocks, truncate(escape("\n".join(lines)), MAX_FALLBACK_CHARS)


def change_summary(message: dict[str, Any], *, max_alerts: int) -> str:
    """The thread reply of an update: one line per alert saying what changed."""
    alerts: list[dict[str, Any]] = message["alerts"]
    lines = []
    for alert in alerts[:max_alerts]:
        title = escape(alert["title"])
        if alert["status"] == "resolved":
            reason = alert.get("resolved_reason")
            lines.append(f"✅ *Resolved:* {title}" + (f" — {escape(reason)}" if reason else ""))
        else:
            lines.append(f"🔥 *Still firing:* {title}" + (f" — {_measurement(alert)}" if alert.get("metric") else ""))
    if len(alerts) > max_alerts:
        lines.append(f"…and {len(alerts) - max_alerts} more")
    return truncate("\n".join(lines), MAX_SECTION_CHARS)


def _header(message: dict[str, Any], alerts: list[dict[str, Any]]) -> str:
    resolved = message["status"] == "resolved"
    severity = max((a["severity"] for a in alerts), key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else -1,
                   default="info")
    title = alerts[0]["title"] if alerts else ""
    if len(alerts) > 1:
        title += f" (+{len(alerts) - 1} more)"
    return f"{'✅ RESOLVED' if resolved else '🔥 FIRING'} · {severity} · {title}"


def _alert_section(alert: dict[str, Any]) -> str:
    run = alert.get("run") or {}
    icon = "✅" if alert["status"] == "resolved" else "🔥"
    title = escape(truncate(alert["title"], 300))
    lines = [f"{icon} *{link(alert.get('url'), title)}*"]
    if alert.get("text"):
        lines.append(escape(truncate(alert["text"], 1500)))
    facts = [f"*Project:* {escape(alert['project'])}"]
    if run:
        name = escape(truncate(str(run.get("name") or run.get("id")), 200))
        state = f" ({escape(run['state'])})" if run.get("state") else ""
        facts.append(f"*Run:* {link(run.get('url'), name)}{state}")
    lines.append("  ·  ".join(facts))
    if alert.get("metric"):
        lines.append(_measurement(alert, labelled=True))
    elif alert.get("step") is not None:
        lines.append(f"*Step:* {alert['step']}")
    if alert["status"] == "resolved" and alert.get("resolved_reason"):
        lines.append(f"*Resolved:* {escape(truncate(alert['resolved_reason'], 300))}")
    if alert.get("suppressed_count"):
        lines.append(f"_{alert['suppressed_count']} similar alerts suppressed_")
    return truncate("\n".join(lines), MAX_SECTION_CHARS)


def _measurement(alert: dict[str, Any], *, labelled: bool = False) -> str:
    metric = "`" + escape(truncate(str(alert["metric"]).replace("`", "'"), 200)) + "`"
    parts = [("Metric", metric), ("Value", _number(alert.get("value"))),
             ("Threshold", _number(alert.get("threshold"))), ("Step", _number(alert.get("step")))]
    if labelled:
        return "  ·  ".join(f"*{label}:* {value}" for label, value in parts if value is not None)
    value, threshold, step = (part[1] for part in parts[1:])
    return (metric + (f" = {value}" if value is not None else "")
            + (f" (threshold {threshold})" if threshold is not None else "")
            + (f" at step {step}" if step is not None else ""))


def _alert_context(alert: dict[str, Any]) -> str:
    labels = [f"{escape(k)}={escape(str(v))}" for k, v in sorted(alert.get("labels", {}).items())
              if k not in _SHOWN_LABELS]
    times = [f"since {alert['starts_at']}"] if alert.get("starts_at") else []
    if alert.get("ends_at"):
        times.append(f"until {alert['ends_at']}")
    return truncate("  ·  ".join(labels + times), MAX_SECTION_CHARS)


def _number(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:.6g}"
    return escape(str(value))


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only ``&``, ``<`` and ``>`` are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str | None, label: str) -> str:
    """``<url|label>`` with an already escaped label; the bare label without a URL."""
    if not url:
        return label
    return f"<{url.replace('|', '%7C').replace('>', '%3E')}|{label}>"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a trailing "…", never inside a link or an entity."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[:cut.rfind("<")]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp <= 5:
        cut = cut[:amp]
    return cut + "…"
