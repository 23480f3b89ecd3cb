"""Webhook bodies from templates: Jinja2 in the sandbox rendering JSON text (``template:`` and the presets).

The context is the notification the plain webhook would send (SPEC §7) plus what providers need:

    status            "firing" (any alert of the group fires) or "resolved"
    alerts            the alert objects (SPEC §7 fields and ``chart_url``: the signed URL of the alert's
                      chart, or null), after the channel's ``max_alerts``
    firing, resolved  the same alerts split by their status
    truncated_alerts  how many alerts of the group are not in ``alerts``
    group_labels      the labels that make the group;  common_labels: the labels every alert shares
    severity          the highest severity among the firing alerts (among all when none fires)
    receiver, channel the channel's name (both names mean the same)
    group_key         the group's key;  dedup_key: ``runwatch-<hash of channel and group key>``, the
                      same for every notification of the group (PagerDuty's dedup_key, Opsgenie's alias)
    public_url        the dashboard's address
    (presets only)    their options: chat_id, parse_mode, routing_key

Filters ``tojson`` (any value as JSON: the only safe way to put text into the output), ``clip(n)`` (at
most n characters, "…" at the end when cut), ``html`` (``& < > "`` escaped), ``number`` (6 significant
digits); the function ``fit(parts, limit, separator="\\n", hidden=0, html=False)`` joins as many leading
parts as fit in ``limit`` characters and ends with "…and N more" for the rest (plus ``hidden``).

A template is compiled and rendered against sample notifications when the config loads, so a syntax
error, an undefined name or output that is not JSON is a config error; at delivery, output that is
not JSON is a permanent error (retrying renders the same text).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from html import unescape
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateError, Undefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from alerts.model import Alert, AlertSource, AlertStatus, Run, RunState, Severity
from alerts.notify.message import group_key as make_group_key
from alerts.presentation import alert_object, json_bytes

SEVERITIES = ("info", "warning", "error", "critical")
ELLIPSIS = "…"


class TemplateOutputError(ValueError):
    """A template failed to render, or rendered text that is not JSON."""


def clip(value: Any, limit: int) -> str:
    """``value`` as text of at most ``limit`` characters, ending with "…" when it was cut."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return text[:max(0, limit - 1)] + ELLIPSIS if limit > 0 else ""


def html(value: Any) -> str:
    """HTML text and attribute escaping: ``&``, ``<``, ``>`` and ``"`` (what Telegram's HTML mode needs)."""
    text = "" if value is None else str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def number(value: Any) -> str:
    """A float with 6 significant digits (``0.213``, ``1e+09``); anything else as text."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def tojson(value: Any) -> str:
    """``value`` as JSON text (strings quoted and escaped), unlike ``{{ value }}``, which is Python's text."""
    try:
        return orjson.dumps(value, default=_undefined_fails, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, UndefinedError):
            raise exc.__cause__ from None
        return json_bytes(value).decode()  # integers past 64 bits, spelled out


def _undefined_fails(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises, naming what is undefined
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def more_line(count: int) -> str:
    return f"{ELLIPSIS}and {count} more"


def fit(parts: Iterable[Any], limit: int, separator: str = "\n", hidden: int = 0, html: bool = False) -> str:
    """As many leading ``parts`` as fit in ``limit`` characters, joined by ``separator``; when some are
    left out (or ``hidden`` > 0) a last line says how many: "…and N more". A part that does not fit in
    what is left ends the list (order is kept); no part is cut, so markup in a part stays whole.

    ``html=True`` counts characters as HTML shows them (tags left out, ``&lt;`` one character), which
    is how Telegram counts its 4,096 in HTML mode."""
    measure = visible_length if html else len
    items = [str(part) for part in parts]
    whole = separator.join(items)
    if not hidden and measure(whole) <= limit:
        return whole
    # Room for the longest "…and N more" this can end with.
    reserve = measure(separator) + len(more_line(len(items) + hidden))
    kept: list[str] = []
    used = 0
    for item in items:
        extra = measure(item) + (measure(separator) if kept else 0)
        if used + extra + reserve > limit:
            break
        kept.append(item)
        used += extra
    left_out = len(items) - len(kept) + hidden
    if not left_out:
        return separator.join(kept)
    if not kept:
        return clip(more_line(left_out), limit)
    return separator.join([*kept, more_line(left_out)])


_TAG = re.compile(r"<[^>]*>")


def visible_length(text: str) -> int:
    """The length of HTML ``text`` as shown: without its tags, each entity one character."""
    return len(unescape(_TAG.sub("", text)))


_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
_ENV.filters.update({"tojson": tojson, "clip": clip, "html": html, "number": number})
_ENV.globals.update({"fit": fit})


class WebhookTemplate:
    """A compiled template: the body (JSON, :meth:`render_json`) or a piece of text (a preset's path, headers)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._compiled = _ENV.from_string(source)

    def render_text(self, context: Mapping[str, Any]) -> str:
        """The rendered text; raises :class:`TemplateOutputError` naming what went wrong."""
        try:
            return self._compiled.render(context)
        except TemplateError as exc:
            raise TemplateOutputError(_describe(exc, _template_line(exc))) from None
        except Exception as exc:  # a filter given the wrong kind of value, a sandbox refusal, ...
            line = _template_line(exc)
            raise TemplateOutputError(f"{type(exc).__name__}: {exc}"
                                      + (f" (template line {line})" if line else "")) from None

    def render_json(self, context: Mapping[str, Any]) -> bytes:
        """The rendered JSON, compact; raises :class:`TemplateOutputError` for output that is not JSON.

        The message gives the parser's position, never the text (it may hold a routing key)."""
        text = self.render_text(context)
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise TemplateOutputError(f"the output is not valid JSON ({exc.msg}: line {exc.lineno} column "
                                      f"{exc.colno}); put values in with the tojson filter") from None
        return json_bytes(value)


def _describe(exc: TemplateError, lineno: int | None = None) -> str:
    lineno = getattr(exc, "lineno", None) or lineno
    return (exc.message or type(exc).__name__) + (f" (template line {lineno})" if lineno else "")


def _template_line(exc: BaseException) -> int | None:
    """The template line a render error came from: Jinja maps the traceback's frames onto the template."""
    found = None
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            found = trace.tb_lineno
        trace = trace.tb_next
    return found


def dedup_key(channel: str, group_key: str) -> str:
    """A key stable for one alert group on one channel (across restarts and reloads): its hash."""
    digest = hashlib.sha256(f"{channel}\n{group_key}".encode()).hexdigest()
    return f"runwatch-{digest[:32]}"


def context(*, channel: str, group_key: str, message: Mapping[str, Any], alerts: list[dict[str, Any]],
            truncated: int, public_url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a template sees for one notification (see the module docstring); ``options`` are the
    preset's own keys (``chat_id``, ``routing_key``, ...)."""
    firing = [alert for alert in alerts if alert["status"] == "firing"]
    labels = [alert.get("labels") or {} for alert in alerts]
    common = {k: v for k, v in labels[0].items() if all(other.get(k) == v for other in labels[1:])} if labels else {}
    ranked = [alert["severity"] for alert in (firing or alerts)]
    severity = max(ranked, key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else -1, default="warning")
    return {
        "status": message["status"],
        "alerts": alerts,
        "firing": firing,
        "resolved": [alert for alert in alerts if alert["status"] == "resolved"],
        "truncated_alerts": truncated,
        "group_labels": dict(message.get("group_labels") or {}),
        "common_labels": common,
        "severity": severity,
        "receiver": channel,
        "channel": channel,
        "group_key": group_key,
        "dedup_key": dedup_key(channel, group_key),
        "public_url": public_url,
        **(options or {}),
    }


SAMPLE_PUBLIC_URL = "http://localhost:8080"


def sample_contexts(options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """A firing and a resolved notification of two alerts (a rule's and an ``alert()`` call's), built by
    the code that builds real alert objects, so a template checked against them sees every name."""
    run = Run(pk=1, project="sample-project", id="abc123", name="sample-run", state=RunState.RUNNING, config={},
              tags=["sample"], notes=None, group=None, job_type=None, summary={}, created_at=1.8e9,
              started_at=1.8e9, last_contact=1.8e9)
    labels = {"alertname": "sample-rule", "rule": "sample-rule", "source": "rule", "severity": "warning",
              "project": run.project, "run": run.id, "run_name": run.name, "metric": "val/accuracy"}
    rule = Alert(id="0" * 32, fingerprint="0" * 16, source=AlertSource.RULE, project=run.project,
                 title="Accuracy low in sample-run", text="val/accuracy = 0.21 at step 12 (floor 0.3)",
                 severity=Severity.WARNING, labels=labels, status=AlertStatus.FIRING, starts_at=1.8e9,
                 rule="sample-rule", metric="val/accuracy", value=0.21, threshold=0.3, step=12)
    event = Alert(id="1" * 32, fingerprint="1" * 16, source=AlertSource.SDK, project=run.project,
                  title="Sample alert() call", text="", severity=Severity.ERROR,
                  labels={"alertname": "sdk", "source": "sdk", "severity": "error", "project": run.project,
                          "run": run.id, "run_name": run.name},
                  status=AlertStatus.FIRING, starts_at=1.8e9, step=12)
    group_labels = {"project": run.project, "run": run.id}
    key = make_group_key("{}", group_labels)
    found = []
    for status in ("firing", "resolved"):
        if status == "resolved":
            rule.status, rule.ends_at, rule.resolved_reason = AlertStatus.RESOLVED, 1.8e9 + 60, "metric recovered"
            event.status, event.ends_at = AlertStatus.RESOLVED, 1.8e9 + 60
        chart_url = f"{SAMPLE_PUBLIC_URL}/charts/{rule.id}.png?exp=1800086400&sig={'0' * 64}"
        alerts = [{**alert_object(rule, run, SAMPLE_PUBLIC_URL), "chart_url": chart_url},
                  {**alert_object(event, run, SAMPLE_PUBLIC_URL), "chart_url": None}]
        message = {"status": status, "group_labels": group_labels, "alerts": alerts, "truncated_alerts": 0}
        found.append(context(channel="sample-channel", group_key=key, message=message, alerts=alerts, truncated=1,
                             public_url=SAMPLE_PUBLIC_URL, options=options))
    return found


def check_template(source: str, options: Mapping[str, Any] | None = None) -> WebhookTemplate:
    """Compile ``source`` and render it against :func:`sample_contexts`; ``ValueError`` names the problem."""
    try:
        template = WebhookTemplate(source)
    except TemplateError as exc:
        raise ValueError(f"invalid template: {_describe(exc)}") from None
    for sample in sample_contexts(options):
        try:
            template.render_json(sample)
        except TemplateOutputError as exc:
            raise ValueError(f"template fails on a sample {sample['status']} notification: {exc}") from None
    return template
