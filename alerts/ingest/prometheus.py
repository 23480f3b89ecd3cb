"""Alerts that Prometheus (or any Alertmanager client) posts to ``/api/v2/alerts``, as Alertmanager keeps them.

An alert's identity is the fingerprint of its labels, computed as Alertmanager does, so the same alert
has the same fingerprint here and there. Prometheus posts every firing alert again at each resend
interval, with ``endsAt`` a few intervals ahead:

- a post of a fingerprint that is not firing here starts a new alert (a new id: an episode, as a rule
  alert's firing is), which joins routes, groups, inhibition, silences and channels like any alert;
- a post of a firing one updates it (annotations, ``endsAt``): no new notification, as the group's
  dedup knows the alert's id; only a change people would see (title, text, severity) re-renders it;
- a post whose ``endsAt`` has passed resolves it (Prometheus' resolved alerts);
- an alert whose ``endsAt`` passes without a new post resolves (:meth:`PrometheusAlerts.expire`, a
  scheduled job): Prometheus went away, or stopped sending it.

The alert's project is the value of a label named in the config (``prometheus.project_label``); its
title and text are the ``summary`` and ``description`` annotations, as Alertmanager templates commonly
use them; its severity the ``severity`` label when it is one of ours. Runwatch adds the labels
``project`` and ``source: prometheus`` (and ``severity`` when missing), which routes and silences see;
the fingerprint is of the labels as posted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from alerts.model import Alert, AlertSource, AlertStatus, Run, Severity
from alerts.storage.base import Store

if TYPE_CHECKING:
    from alerts.config.settings import PrometheusSettings

__all__ = ["InvalidAlert", "PostedAlert", "PrometheusAlerts", "Received", "alertmanager_fingerprint",
           "posted_alert", "severity_of"]

log = logging.getLogger(__name__)

AlertSink = Callable[[list[Alert], Run | None], Awaitable[object]]

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero ``time.Time``, which Go clients (amtool, Prometheus) send for a time they leave unset."""
_LAST_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z: later times cannot be shown as dates
_SEVERITIES = {"critical": Severity.CRITICAL, "error": Severity.ERROR, "warning": Severity.WARNING,
               "warn": Severity.WARNING, "info": Severity.INFO}
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = 2**64 - 1


class InvalidAlert(ValueError):
    """A posted alert that cannot be taken; ``loc`` names the field of the request body."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


@dataclass(frozen=True)
class PostedAlert:
    """One alert of a post, checked: labels without empty values, times as UNIX seconds (None: not given)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float | None
    ends_at: float | None
    generator_url: str | None
    project: str = ""
    """Filled in by :meth:`PrometheusAlerts.with_project`."""


@dataclass
class Received:
    """What a post did: alerts that began firing, firing ones posted again, and ones it resolved."""

    received: int = 0
    new: int = 0
    updated: int = 0
    resolved: int = 0


def alertmanager_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (Prometheus' ``LabelSet.Fingerprint``: FNV-1a 64 over the
    sorted names and values, each followed by the byte 0xff), as 16 hex digits."""
    digest = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                digest = ((digest ^ byte) * _FNV_PRIME) & _MASK
            digest = ((digest ^ 0xFF) * _FNV_PRIME) & _MASK
    return f"{digest:016x}"


def severity_of(labels: Mapping[str, str]) -> Severity:
    """Our severity from the ``severity`` label: ``critical``, ``error``, ``warning`` (``warn``) or ``info``,
    in any case; anything else (or none) is ``warning``."""
    return _SEVERITIES.get(labels.get("severity", "").strip().lower(), Severity.WARNING)


def _seconds(index: int, field: str, moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # RFC 3339 requires an offset; a time without one is taken as UTC
        moment = moment.replace(tzinfo=UTC)
    if moment <= _GO_ZERO_TIME:
        return None
    seconds = (moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
    if not 0 <= seconds <= _LAST_TIME:
        raise InvalidAlert(("body", index, field), f"{field} must be between 1970-01-01T00:00:00Z and "
                                                   f"9999-12-31T23:59:59Z (or Go's zero time, for none)")
    return seconds


def posted_alert(index: int, *, labels: Mapping[str, str], annotations: Mapping[str, str] | None,
                 starts_at: datetime | None, ends_at: datetime | None, generator_url: str | None) -> PostedAlert:
    """One alert of a ``POST /api/v2/alerts`` body, checked as Alertmanager checks it: label and annotation
    names are Prometheus label names, labels with an empty value are dropped and at least one must remain,
    ``endsAt`` is not before ``startsAt``. Raises :class:`InvalidAlert` naming the field (``index`` is the
    alert's place in the body)."""
    for where, names in (("labels", labels), ("annotations", annotations or {})):
        for name in names:
            if _LABEL_NAME.fullmatch(name) is None:
                raise InvalidAlert(("body", index, where, name),
                                   f"invalid {where[:-1]} name {name!r}: expected [a-zA-Z_][a-zA-Z0-9_]*")
    kept = {name: value for name, value in labels.items() if value != ""}
    if not kept:
        raise InvalidAlert(("body", index, "labels"), "an alert needs at least one label with a non-empty value")
    starts, ends = _seconds(index, "startsAt", starts_at), _seconds(index, "endsAt", ends_at)
    if starts is not None and ends is not None and ends < starts:
        raise InvalidAlert(("body", index, "endsAt"), "endsAt must not be before startsAt")
    return PostedAlert(labels=kept, annotations=dict(annotations or {}), starts_at=starts, ends_at=ends,
                       generator_url=generator_url or None)


class PrometheusAlerts:
    """The firing alerts Prometheus posted, by fingerprint: what a post changes, and what expires.

    ``cache``: this process is the database's only writer (SQLite), so the firing alerts it has read stay
    true in memory; otherwise (replicas) every post reads the firing alerts of its fingerprints first.
    """

    def __init__(self, store: Store, sink: AlertSink, settings: PrometheusSettings, *, cache: bool,
                 clock: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self._store = store
        self._sink = sink
        self.settings = settings
        self._cache = cache
        self._clock = clock
        self._new_id = new_id
        self._firing: dict[str, Alert] = {}
        # One post (or expiry turn) at a time: two posts of one new alert must not both start it.
        self._lock = asyncio.Lock()
        self.may_expire: Callable[[], bool] = lambda: True
        """Replicas: only the dispatch leader resolves expired alerts (one resolution, not one per replica)."""

    async def start(self) -> None:
        if self._cache:
            self._firing = {alert.fingerprint: alert for alert in await self._firing_stored()}

    def with_project(self, index: int, alert: PostedAlert, *, fallback: str | None) -> PostedAlert:
        """The alert with its project: the value of ``project_label``, else ``fallback`` (a project key's
        own project), else ``default_project``. Raises :class:`InvalidAlert` for a value that cannot name a
        project."""
        name = self.settings.project_label
        project = alert.labels.get(name) or fallback or self.settings.default_project
        if len(project) > 200 or _PROJECT.fullmatch(project) is None:
            raise InvalidAlert(("body", index, "labels", name),
                               f"label {name!r} names the project: {project!r} is not a project name "
                               "(letters, digits, '_', '.', '-'; at most 200)")
        return replace(alert, project=project)

    async def receive(self, posted: list[PostedAlert]) -> Received:
        """Apply a post (alerts with their projects, in the order posted): start, update or resolve."""
        result = Received(received=len(posted))
        async with self._lock:
            now = self._clock()
            prints = [alertmanager_fingerprint(alert.labels) for alert in posted]
            firing = self._firing if self._cache else {
                alert.fingerprint: alert for alert in await self._firing_stored(sorted(set(prints)))}
            changed: dict[str, Alert] = {}  # by fingerprint: what this post makes of each alert
            told: dict[str, Alert] = {}  # the changes the groups hear of
            for item, fingerprint in zip(posted, prints, strict=True):
                before = changed.get(fingerprint) or firing.get(fingerprint)
                if before is not None and before.status is not AlertStatus.FIRING:
                    before = None  # resolved earlier in this post: a later copy starts it again
                ends = item.ends_at if item.ends_at is not None else now + self.settings.resolve_timeout
                if ends > now:
                    after = self._firing_alert(item, fingerprint, before, ends, now)
                    if before is None:
                        result.new += 1
                        told[fingerprint] = after
                    else:
                        result.updated += 1
                        if _shown(before) != _shown(after) or fingerprint in told:
                            told[fingerprint] = after
                elif before is not None:
                    result.resolved += 1
                    after = self._resolved(before, max(ends, before.starts_at), "resolved in Prometheus")
                    told[fingerprint] = after
                else:
                    continue  # a resolution of nothing firing here: nothing to tell
                changed[fingerprint] = after
            await self._store.save_alerts(list(changed.values()))
            if self._cache:
                for fingerprint, alert in changed.items():
                    if alert.status is AlertStatus.FIRING:
                        self._firing[fingerprint] = alert
                    else:
                        self._firing.pop(fingerprint, None)
        if result.new or result.resolved:
            log.info("prometheus: %d alerts posted, %d new, %d resolved", result.received, result.new,
                     result.resolved)
        if told:
            await self._sink(list(told.values()), None)
        return result

    async def expire(self) -> int:
        """Resolve the firing alerts whose ``endsAt`` has passed without a new post; how many."""
        if not self.may_expire():
            return 0
        async with self._lock:
            now = self._clock()
            firing = list(self._firing.values()) if self._cache else await self._firing_stored()
            expired = [self._resolved(alert, alert.expires_at, "not sent again before its endsAt")
                       for alert in firing if alert.expires_at is not None and alert.expires_at <= now]
            if not expired:
                return 0
            await self._store.save_alerts(expired)
            for alert in expired:
                self._firing.pop(alert.fingerprint, None)
        log.info("prometheus: %d alerts resolved: not sent again before their endsAt", len(expired))
        await self._sink(expired, None)
        return len(expired)

    async def _firing_stored(self, fingerprints: list[str] | None = None) -> list[Alert]:
        return await self._store.list_alerts(project=None, status=AlertStatus.FIRING.value,
                                             source=AlertSource.PROMETHEUS.value, fingerprints=fingerprints,
                                             limit=10**9)

    def _firing_alert(self, posted: PostedAlert, fingerprint: str, before: Alert | None, ends: float,
                      now: float) -> Alert:
        labels = {**posted.labels, "project": posted.project, "source": AlertSource.PROMETHEUS.value}
        labels.setdefault("severity", severity_of(posted.labels).value)
        annotations = posted.annotations
        title = annotations.get("summary") or posted.labels.get("alertname") or "Prometheus alert"
        text = annotations.get("description", "")
        if before is not None:
            return replace(before, title=title, text=text, severity=severity_of(posted.labels), labels=labels,
                           annotations=annotations, generator_url=posted.generator_url, expires_at=ends)
        starts = posted.starts_at if posted.starts_at is not None else now
        return Alert(id=self._new_id(), fingerprint=fingerprint, source=AlertSource.PROMETHEUS,
                     project=posted.project, title=title, text=text, severity=severity_of(posted.labels),
                     labels=labels, status=AlertStatus.FIRING, starts_at=starts, created_at=now,
                     annotations=annotations, generator_url=posted.generator_url, expires_at=ends)

    @staticmethod
    def _resolved(alert: Alert, at: float, reason: str) -> Alert:
        ends = at if math.isfinite(at) else alert.starts_at
        return replace(alert, status=AlertStatus.RESOLVED, ends_at=max(ends, alert.starts_at),
                       resolved_reason=reason)


def _shown(alert: Alert) -> tuple[object, ...]:
    """What a notification shows of a firing alert (an ``endsAt`` pushed on at each resend is not news)."""
    return alert.title, alert.text, alert.severity, alert.labels, alert.annotations, alert.generator_url
