"""The ``email`` channel: one multipart/alternative mail (text + HTML) per notification over SMTP.

With a chart (``charts:``), the HTML part becomes multipart/related: the HTML shows the PNG inline
(``<img src="cid:...">``) and the image travels beside it with that ``Content-ID``; the text part is the
same as without. A chart not ready within ``charts.timeout`` is left out, and the HTML says so.

One thread per alert group: every mail carries ``Message-ID: <delivery id@runwatch>``, stable across
retries, so a retried send can never open a second thread (and mail clients that deduplicate by
Message-ID drop the copy). The first mail delivered for a group is the thread's root; its Message-ID is
remembered durably and every later mail of the group replies to it (``In-Reply-To``, ``References``)
under the same subject after the status tag.

Errors name the SMTP reply code and a reason of our own, never the server's reply text: servers echo
what they were sent, and that can include the credentials.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Annotated, Any, Literal

import aiosmtplib
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from alerts.durations import Duration
from alerts.errors import DeliveryError, PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels.base import Channel, ChannelConfig, ChannelContext, ChartImage, ChartSkipped, GroupLocks

log = logging.getLogger("alerts.notify.email")

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
MESSAGE_ID_DOMAIN = "runwatch"
# Headers the channel writes itself; ``headers:`` in the config may add any other.
MANAGED_HEADERS = frozenset({"from", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to",
                             "references", "mime-version", "content-type", "content-transfer-encoding",
                             "x-runwatch-delivery"})
SEVERITIES = ("info", "warning", "error", "critical")
SEVERITY_COLOURS = {"info": "#1f6feb", "warning": "#d29922", "error": "#db6d28", "critical": "#cf222e"}
# Labels that have their own column in the table; the labels column shows the others.
_SHOWN_LABELS = frozenset({"severity", "project", "run", "run_name", "metric"})
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[^@\s<>()\[\],;:\"\\]+$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII except ':'
_ENHANCED_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})(?:\s|$)")


def envelope_address(value: str) -> str:
    """The bare ``name@domain`` of ``name@domain`` or ``Name <name@domain>``; ``ValueError`` otherwise."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"invalid email address {value.strip()!r}: line breaks are not allowed")
    _name, address = parseaddr(value)
    if not address or not _ADDRESS.match(address):
        raise ValueError(f"invalid email address {value!r}: expected name@example.com or 'Name <name@example.com>'")
    return address


def _valid_address(value: str) -> str:
    envelope_address(value)
    return value


Address = Annotated[str, AfterValidator(_valid_address)]
"""``name@domain`` or ``Name <name@domain>``, checked when the config is loaded."""


class SmtpConfig(BaseModel):
    """The SMTP server to submit mail to; ``port`` defaults to 587 (starttls), 465 (tls) or 25 (none)."""

    # hide_input_in_errors: errors must not echo the password
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", hide_input_in_errors=True)

    host: str
    """SMTP server hostname or IP."""
    port: int = Field(default=DEFAULT_PORTS["starttls"], ge=1, le=65535)
    """Unset: 587 for starttls, 465 for tls, 25 for none (filled in before validation)."""
    username: str | None = None
    """AUTH user (with `password`)."""
    password: SecretStr | None = None
    """AUTH password (secret; use `${VAR}`)."""
    tls: Literal["starttls", "tls", "none"] = "starttls"
    """`starttls` (587), `tls` (implicit, 465) or `none` (25)."""
    ca_file: str | None = None
    """A PEM bundle of CAs to trust instead of the system's (self-hosted servers, tests)."""
    timeout: Duration | None = None
    """Bound on the whole SMTP exchange; the service's delivery timeout when unset."""

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None:
            tls = data.get("tls", "starttls")
            data = {**data, "port": DEFAULT_PORTS.get(tls, 587) if isinstance(tls, str) else 587}
        return data

    @field_validator("host")
    @classmethod
    def _hostname(cls, host: str) -> str:
        host = host.strip()
        if not host or any(c.isspace() for c in host) or "/" in host:
            raise ValueError("host must be a hostname or IP address (e.g. smtp.example.com), not a URL")
        return host

    @model_validator(mode="after")
    def _consistent(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both for AUTH, or neither")
        if self.ca_file is not None and self.tls == "none":
            raise ValueError("ca_file needs tls: starttls or tls")
        return self


class EmailConfig(ChannelConfig):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", populate_by_name=True,
                              hide_input_in_errors=True)

    type: Literal["email"]
    to: list[Address] = Field(min_length=1)
    """Recipients."""
    from_: Address = Field(alias="from")
    """Sender address."""
    smtp: SmtpConfig
    """The server to submit to."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers (e.g. ``Reply-To``, ``X-Priority``); the channel's own headers cannot be overridden."""
    subject_prefix: str = ""
    """Text put before every subject (e.g. `[ml]`)."""
    max_alerts: int = Field(default=50, ge=1)
    """Alerts listed per mail; the rest are counted in an "…and N more" line."""

    @field_validator("headers")
    @classmethod
    def _extra_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}: printable ASCII without spaces or ':'")
            if name.lower() in MANAGED_HEADERS:
                raise ValueError(f"header {name!r} is set by the channel and cannot be overridden")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r}: line breaks are not allowed in the value")
        return headers

    @field_validator("subject_prefix")
    @classmethod
    def _one_line(cls, prefix: str) -> str:
        if "\r" in prefix or "\n" in prefix:
            raise ValueError("subject_prefix: line breaks are not allowed")
        return prefix


def message_id(delivery_id: str) -> str:
    """The Message-ID of a notification's mail: the same on every retry."""
    return f"<{delivery_id}@{MESSAGE_ID_DOMAIN}>"


def chart_content_id(delivery_id: str) -> str:
    """The Content-ID of a notification's chart (without the angle brackets): the HTML's ``cid:`` target."""
    return f"chart.{delivery_id}@{MESSAGE_ID_DOMAIN}"


class EmailChannel(Channel):
    def __init__(self, name: str, config: EmailConfig, context: ChannelContext) -> None:
        super().__init__(name)
        self._config = config
        self._context = context
        self._charts = context.charts_for(config)
        self.draws_charts = self._charts is not None
        self._timeout = config.smtp.timeout or context.timeout
        self._sender = envelope_address(config.from_)
        self._recipients = [envelope_address(address) for address in config.to]
        self._tls_context: ssl.SSLContext | None = None
        self._locks = GroupLocks()  # recall → send → remember: exactly one mail becomes the thread's root
        if config.smtp.tls == "none" and config.smtp.username is not None:
            log.warning("%s: smtp.tls is none: the SMTP password is sent unencrypted", name)

    async def send(self, notification: Notification) -> None:
        # Before the group's lock: the group's other mails need not wait for this one's chart.
        chart = await self._charts.for_notification(notification.message["alerts"]) if self._charts else None
        async with self._locks.of(notification.group_key):
            root = await self._context.recall(self.name, notification.group_key)
            root = root if isinstance(root, str) and root != message_id(notification.id) else None
            mail = compose(notification, self._config, thread_root=root, public_url=self._context.public_url,
                           chart=chart)
            await self._submit(mail)
            if root is None:
                await self._remember_root(notification)

    async def _remember_root(self, notification: Notification) -> None:
        try:
            await self._context.remember(self.name, notification.group_key, message_id(notification.id))
        except Exception as exc:  # the mail is out: failing now would only send it twice
            log.warning("%s: cannot remember the thread of group %s (%s); its next mail starts a new thread",
                        self.name, notification.group_key, type(exc).__name__)

    async def _submit(self, mail: EmailMessage) -> None:
        smtp_config = self._config.smtp
        client = aiosmtplib.SMTP(hostname=smtp_config.host, port=smtp_config.port, timeout=self._timeout,
                                 use_tls=smtp_config.tls == "tls", start_tls=smtp_config.tls == "starttls",
                                 tls_context=self._ssl_context() if smtp_config.tls != "none" else None)
        phase = "connect"
        try:
            async with asyncio.timeout(self._timeout):
                await client.connect()
                if smtp_config.username is not None and smtp_config.password is not None:
                    phase = "auth"
                    await client.login(smtp_config.username, smtp_config.password.get_secret_value())
                phase = "send"
                refused, _reply = await client.send_message(mail, sender=self._sender, recipients=self._recipients)
        except Exception as exc:
            client.close()
            # ``from None``: the chained aiosmtplib exceptions carry the server's reply text.
            raise classify(self.name, exc, phase=phase, timeout=self._timeout) from None
        await _quit(client)
        if refused:
            log.warning("%s: delivered, but the server refused %s", self.name,
                        ", ".join(f"{address} ({reply.code})" for address, reply in sorted(refused.items())))

    def _ssl_context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            ca_file = self._config.smtp.ca_file
            try:
                self._tls_context = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise PermanentDeliveryError(f"{self.name}: cannot load smtp.ca_file {ca_file!r} "
                                             f"({type(exc).__name__}: {exc.strerror or 'not a PEM bundle'})") from None
        return self._tls_context


async def _quit(client: aiosmtplib.SMTP) -> None:
    """A polite QUIT after a delivered mail; its failure changes nothing."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        client.close()


# -- error classification ---------------------------------------------------------------------------

_PHASE_REASONS = {"connect": "the server refused the session", "auth": "authentication failed",
                  "send": "the server rejected the message"}


def classify(channel: str, exc: BaseException, *, phase: str, timeout: float) -> DeliveryError:
    """The classified error for a failed SMTP exchange: 4xx and network trouble recoverable, 5xx and TLS
    certificate problems permanent. Only reply codes and our own words: never the server's reply text."""
    prefix = f"{channel}: SMTP"
    tls_error = _tls_cause(exc)
    if isinstance(tls_error, ssl.SSLCertVerificationError):
        detail = tls_error.verify_message or "certificate verify failed"
        return PermanentDeliveryError(f"{prefix} server certificate not trusted ({detail}); "
                                      f"set smtp.ca_file to the CA that signed it")
    if tls_error is not None and not isinstance(tls_error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        reason = tls_error.reason or type(tls_error).__name__
        return PermanentDeliveryError(f"{prefix} TLS handshake failed ({reason}); check smtp.tls "
                                      f"(starttls on port 587, tls on port 465)")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        listed = ", ".join(f"{refusal.recipient} ({_code(refusal.code, refusal.message)})"
                           for refusal in exc.recipients)
        if codes and all(500 <= code < 600 for code in codes):
            return PermanentDeliveryError(f"{prefix} all recipients refused: {listed}")
        return RecoverableDeliveryError(f"{prefix} all recipients refused: {listed}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            reason = "sender address refused"
        elif isinstance(exc, aiosmtplib.SMTPHeloError):
            reason = "EHLO/HELO refused"
        else:
            reason = _PHASE_REASONS.get(phase, "the server refused")
        text = f"{prefix} {reason}: {_code(exc.code, exc.message)}"
        if 500 <= exc.code < 600:
            return PermanentDeliveryError(text)
        return RecoverableDeliveryError(text)  # 4xx (421, 450, 451, 452, 454 ...) and anything unexpected
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts and our overall deadline
        return RecoverableDeliveryError(f"{prefix} timed out after {timeout:g}s ({phase})")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return RecoverableDeliveryError(f"{prefix} server closed the connection ({phase})")
    if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        return RecoverableDeliveryError(f"{prefix} cannot connect ({type(cause).__name__})")
    if isinstance(exc, aiosmtplib.SMTPException):
        # Raised by aiosmtplib itself when the server lacks something the config asks for.
        text = str(exc).lower()
        if "starttls" in text:
            return PermanentDeliveryError(f"{prefix} server does not offer STARTTLS; set smtp.tls to tls or none")
        if "auth" in text:
            return PermanentDeliveryError(f"{prefix} server does not offer AUTH over this connection; "
                                          f"check smtp.tls, or remove username and password")
        return PermanentDeliveryError(f"{prefix} {phase} failed ({type(exc).__name__})")
    if isinstance(exc, ValueError):
        return PermanentDeliveryError(f"{prefix} message cannot be sent ({type(exc).__name__})")
    return RecoverableDeliveryError(f"{prefix} {phase} failed ({type(exc).__name__})")


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _code(code: int, reply: str) -> str:
    """``535 5.7.8``: the reply code and, when present, the enhanced status code (RFC 3463)."""
    enhanced = _ENHANCED_STATUS.match(reply or "")
    return f"{code} {enhanced.group(1)}" if enhanced else str(code)


# -- the message ------------------------------------------------------------------------------------

def compose(notification: Notification, config: EmailConfig, *, thread_root: str | None = None,
            public_url: str = "", chart: ChartImage | ChartSkipped | None = None) -> EmailMessage:
    """The mail of one notification; the same notification always gives the same headers. A chart
    image is shown inline in the HTML part; a skipped one is mentioned there."""
    message = notification.message
    mail = EmailMessage()
    mail["From"] = config.from_
    mail["To"] = ", ".join(config.to)
    mail["Subject"] = subject(message, prefix=config.subject_prefix)
    mail["Date"] = formatdate(notification.created_at or None, usegmt=True)
    mail["Message-ID"] = message_id(notification.id)
    if thread_root is not None:
        mail["In-Reply-To"] = thread_root
        mail["References"] = thread_root
    mail["X-Runwatch-Delivery"] = notification.id
    for name, value in config.headers.items():
        mail[name] = value
    mail.set_content(render_text(message, max_alerts=config.max_alerts, public_url=public_url))
    inline = (chart_content_id(notification.id), chart.alt_text) if isinstance(chart, ChartImage) else None
    mail.add_alternative(render_html(message, max_alerts=config.max_alerts, public_url=public_url, chart=inline,
                                     chart_note=chart.reason if isinstance(chart, ChartSkipped) else None),
                         subtype="html")
    if isinstance(chart, ChartImage) and inline is not None:
        for part in mail.iter_parts():  # the HTML part becomes multipart/related: the HTML, then the image
            if part.get_content_type() == "text/html":
                part.add_related(chart.png, maintype="image", subtype="png", cid=f"<{inline[0]}>",
                                 disposition="inline", filename="chart.png")
    return mail


def subject(message: dict[str, Any], *, prefix: str = "") -> str:
    """``[FIRING:N] <group>`` or ``[RESOLVED] <group>``; the part after the tag is the same for a group."""
    alerts: list[dict[str, Any]] = message["alerts"]
    if message["status"] == "resolved":
        tag = "[RESOLVED]"
    else:
        tag = f"[FIRING:{sum(1 for alert in alerts if alert['status'] == 'firing')}]"
    return " ".join(part for part in (prefix.strip(), tag, group_text(message)) if part)


def group_text(message: dict[str, Any]) -> str:
    """The group labels as ``k=v`` in ``group_by`` order (labels with an empty value are left out)."""
    labels: dict[str, Any] = message.get("group_labels") or {}
    pairs = [f"{key}={value}" for key, value in labels.items() if value not in (None, "")]
    return " ".join(pairs) or "runwatch"


def _shown(message: dict[str, Any], max_alerts: int) -> tuple[list[dict[str, Any]], int]:
    alerts: list[dict[str, Any]] = message["alerts"]
    shown = alerts[:max_alerts]
    return shown, len(alerts) - len(shown) + int(message.get("truncated_alerts") or 0)


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _labels(alert: dict[str, Any]) -> list[str]:
    return [f"{key}={value}" for key, value in sorted((alert.get("labels") or {}).items())
            if key not in _SHOWN_LABELS]


def _heading(message: dict[str, Any]) -> str:
    alerts: list[dict[str, Any]] = message["alerts"]
    if message["status"] == "resolved":
        return f"RESOLVED: {len(alerts)} alert{'s' if len(alerts) != 1 else ''} for {group_text(message)}"
    firing = sum(1 for alert in alerts if alert["status"] == "firing")
    return f"FIRING: {firing} alert{'s' if firing != 1 else ''} for {group_text(message)}"


def render_text(message: dict[str, Any], *, max_alerts: int, public_url: str = "") -> str:
    shown, more = _shown(message, max_alerts)
    lines = [_heading(message), ""]
    for alert in shown:
        state = "RESOLVED" if alert["status"] == "resolved" else "FIRING"
        lines.append(f"[{state}] [{alert['severity'].upper()}] {alert['title']}")
        if alert.get("text"):
            lines += [f"  {line}" for line in str(alert["text"]).splitlines()]
        run = alert.get("run") or {}
        facts = [f"Project: {alert['project']}"]
        if run:
            state_note = f" ({run['state']})" if run.get("state") else ""
            facts.append(f"Run: {run.get('name') or run.get('id')}{state_note} {run.get('url') or ''}".rstrip())
        lines.append("  " + "   ".join(facts))
        measured = [(label, _number(alert.get(key))) for label, key in
                    (("Metric", "metric"), ("Value", "value"), ("Threshold", "threshold"), ("Step", "step"))]
        if any(value for _, value in measured):
            lines.append("  " + "   ".join(f"{label}: {value}" for label, value in measured if value))
        if alert["status"] == "resolved" and alert.get("resolved_reason"):
            lines.append(f"  Resolved: {alert['resolved_reason']}")
        if alert.get("suppressed_count"):
            lines.append(f"  {alert['suppressed_count']} similar alerts suppressed")
        labels = _labels(alert)
        if labels:
            lines.append(f"  Labels: {', '.join(labels)}")
        if alert.get("starts_at"):
            until = f" until {alert['ends_at']}" if alert.get("ends_at") else ""
            lines.append(f"  Since {alert['starts_at']}{until}")
        lines.append("")
    if more:
        lines += [f"…and {more} more alert{'s' if more != 1 else ''} not listed here.", ""]
    lines.append("-- ")
    lines.append(f"Sent by Runwatch {public_url}".rstrip())
    return "\n".join(lines) + "\n"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _link(url: Any, label: str) -> str:
    """An ``<a>`` around an already escaped label; only http(s) URLs become links."""
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return f'<a href="{_e(url)}" style="color:#0969da">{label}</a>'
    return label


_CELL = "padding:6px 8px;border:1px solid #d0d7de;vertical-align:top;text-align:left"


def render_html(message: dict[str, Any], *, max_alerts: int, public_url: str = "",
                chart: tuple[str, str] | None = None, chart_note: str | None = None) -> str:
    """The HTML part; ``chart`` is (Content-ID, alt text) of an inline chart, ``chart_note`` the line shown
    instead of one."""
    shown, more = _shown(message, max_alerts)
    resolved = message["status"] == "resolved"
    colour = "#1a7f37" if resolved else "#cf222e"
    columns = ("Status", "Severity", "Alert", "Project", "Run", "Metric", "Value", "Threshold", "Step", "Labels")
    head = "".join(f'<th style="{_CELL};background:#f6f8fa">{name}</th>' for name in columns)
    rows = [_html_row(alert) for alert in shown]
    if more:
        rows.append(f'<tr><td colspan="{len(columns)}" style="{_CELL};font-style:italic">…and {more} more '
                    f'alert{"s" if more != 1 else ""} not listed here.</td></tr>')
    footer = f"Sent by {_link(public_url, 'Runwatch')}" if public_url else "Sent by Runwatch"
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
        '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#1f2328">'
        f'<h2 style="color:{colour};font-size:18px">{_e(_heading(message))}</h2>'
        f"{_chart_html(chart, chart_note)}"
        '<table style="border-collapse:collapse" cellspacing="0">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<p style="color:#656d76;font-size:12px">{footer}</p>'
        "</body></html>\n"
    )


def _chart_html(chart: tuple[str, str] | None, note: str | None) -> str:
    if chart is not None:
        content_id, alt_text = chart
        return (f'<p><img src="cid:{_e(content_id)}" alt="{_e(alt_text)}" width="800" '
                'style="display:block;max-width:100%;height:auto;border:1px solid #d0d7de"></p>')
    if note:
        return f'<p style="color:#656d76;font-size:12px;font-style:italic">{_e(note)}</p>'
    return ""


def _html_row(alert: dict[str, Any]) -> str:
    severity = str(alert["severity"])
    status = "resolved" if alert["status"] == "resolved" else "firing"
    alert_cell = f"<strong>{_link(alert.get('url'), _e(alert['title']))}</strong>"
    if alert.get("text"):
        alert_cell += "<br>" + _e(alert["text"]).replace("\n", "<br>")
    if status == "resolved" and alert.get("resolved_reason"):
        alert_cell += f"<br><em>Resolved: {_e(alert['resolved_reason'])}</em>"
    if alert.get("suppressed_count"):
        alert_cell += f"<br><em>{_e(alert['suppressed_count'])} similar alerts suppressed</em>"
    if alert.get("starts_at"):
        since = f"since {_e(alert['starts_at'])}" + (f" until {_e(alert['ends_at'])}" if alert.get("ends_at") else "")
        alert_cell += f'<br><span style="color:#656d76;font-size:12px">{since}</span>'
    run = alert.get("run") or {}
    run_cell = ""
    if run:
        run_cell = _link(run.get("url"), _e(run.get("name") or run.get("id") or ""))
        if run.get("state"):
            run_cell += f" ({_e(run['state'])})"
    colour = SEVERITY_COLOURS.get(severity, "#1f2328")
    cells = [
        _e(status.upper()),
        f'<span style="color:{colour};font-weight:bold">{_e(severity)}</span>',
        alert_cell,
        _e(alert.get("project") or ""),
        run_cell,
        f"<code>{_e(alert['metric'])}</code>" if alert.get("metric") else "",
        _e(_number(alert.get("value"))),
        _e(_number(alert.get("threshold"))),
        _e(_number(alert.get("step"))),
        "<br>".join(_e(label) for label in _labels(alert)),
    ]
    return "<tr>" + "".join(f'<td style="{_CELL}">{cell}</td>' for cell in cells) + "</tr>"
