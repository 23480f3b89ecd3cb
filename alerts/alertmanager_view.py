"""Runwatch seen through Alertmanager's API v2: alerts, groups, silences, receivers and status in its JSON
shapes (``api/v2/openapi.yaml``), so ``amtool`` and Grafana's Alertmanager data source work unchanged.

Every alert is shown, not only Prometheus': rule alerts and ``alert()`` calls too, with their labels.
How ours map onto Alertmanager's model:

- an alert is listed while it fires, as Alertmanager lists an alert until its ``endsAt``. A rule alert
  fires until it resolves (``endsAt`` is Go's zero time, "not known"); a Prometheus alert until the
  ``endsAt`` of its last post; an ``alert()`` call, an event, for ``prometheus.resolve_timeout`` after it
  was made (what Alertmanager does with an alert posted without ``endsAt``);
- a receiver is a channel: an alert's receivers are the channels of the routes it takes, and a group of
  ours with two channels is two Alertmanager groups, one per receiver;
- ``annotations`` are a Prometheus alert's own; for the others ``summary`` (title), ``description``
  (text) and, when set, ``metric``, ``value``, ``threshold``, ``step``. ``generatorURL`` is the run page;
- silences are Runwatch's silences (one store: a silence added by ``amtool`` mutes a training run's alert).

Query filters follow Alertmanager's rules (``alertFilter``, ``matchFilterLabels``): a matcher with an
empty value also holds where the label is missing, and the receiver regex is anchored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml

from alerts import __version__
from alerts.dispatch.routes import Route
from alerts.durations import format_duration
from alerts.model import Alert, AlertSource, AlertStatus
from alerts.presentation import iso, json_float, run_url
from alerts.silence.matchers import Matcher, MatcherError
from alerts.silence.silences import Silence, new_silence

if TYPE_CHECKING:
    from alerts.service import Service

__all__ = ["ZERO_TIME", "AlertQuery", "InvalidInput", "alert_groups", "filter_matches", "gettable_alerts",
           "gettable_silence", "matcher_from_json", "parse_filter", "receivers", "seconds", "silence_filter_matches",
           "sorted_silences", "status", "store_silence"]

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's zero time: how Alertmanager's JSON says "no end known"."""
_SCAN = 100_000
"""The most alerts of one kind a listing reads."""
_SDK_SCAN = 1_000
"""The most recent ``alert()`` calls a listing reads (older ones ended long ago)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z: later times cannot be shown as dates
_NOBODY = "none"
"""The receiver of a route without channels, in the config ``/api/v2/status`` shows."""


class InvalidInput(ValueError):
    """A query or body value that cannot be used; ``loc`` names it (``["query", "filter", 0]``)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def parse_filter(texts: Iterable[str], where: tuple[str | int, ...]) -> list[Matcher]:
    """Matchers from ``filter`` values (``alertname="X"``, ``job=~"node.*"``; also ``{a="b"}`` as amtool
    may write it); :class:`InvalidInput` names the bad one."""
    found = []
    for index, text in enumerate(texts):
        inner = text.strip()
        if inner.startswith("{") and inner.endswith("}"):
            inner = inner[1:-1]
        try:
            found.append(Matcher.parse(inner))
        except MatcherError as exc:
            raise InvalidInput((*where, index), str(exc)) from None
    return found


def filter_matches(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Alertmanager's ``matchFilterLabels``: a matcher whose value is empty holds for a missing label
    (``=``, ``=~``) or a present one (``!=``, ``!~``) whatever it would say of ``""``."""
    for matcher in matchers:
        present = matcher.name in labels
        if matcher.value == "" and present == (matcher.op in ("!=", "!~")):
            continue
        if not matcher.matches(labels):
            return False
    return True


@dataclass(frozen=True)
class AlertQuery:
    """The query parameters of ``GET /api/v2/alerts`` and ``/alerts/groups``, as amtool sends them."""

    filter: list[Matcher] = field(default_factory=list)
    silenced: bool = True
    inhibited: bool = True
    active: bool = True
    receiver: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, *, filter: list[str] | None, silenced: bool, inhibited: bool, active: bool,
              receiver: str | None) -> AlertQuery:
        pattern = None
        if receiver:  # Go clients leave an empty receiver out; an empty one would match no channel
            try:
                pattern = re.compile(f"(?:{receiver})")
            except re.error as exc:
                raise InvalidInput(("query", "receiver"), f"invalid regular expression {receiver!r}: {exc}") from None
        return cls(parse_filter(filter or [], ("query", "filter")), silenced, inhibited, active, pattern)

    def takes_receiver(self, name: str) -> bool:
        return self.receiver is None or self.receiver.fullmatch(name) is not None


# Alerts ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Listed:
    alert: Alert
    ends: float | None
    """``endsAt``; None: not known (a rule alert fires until it resolves)."""
    url: str
    """``generatorURL``: a Prometheus alert's own; else the run page (the alert's page without a run)."""


async def _listed(service: Service, project: str | None, now: float) -> list[_Listed]:
    """The alerts Alertmanager would list, with their ``endsAt`` and ``generatorURL``."""
    store = service.store
    listed: list[tuple[Alert, float | None]] = []
    for alert in await store.list_alerts(project=project, status=AlertStatus.FIRING.value,
                                         source=AlertSource.RULE.value, limit=_SCAN):
        listed.append((alert, None))
    for alert in await store.list_alerts(project=project, status=AlertStatus.FIRING.value,
                                         source=AlertSource.PROMETHEUS.value, limit=_SCAN):
        if alert.expires_at is None or alert.expires_at > now:  # past it, the expiry job resolves it
            listed.append((alert, alert.expires_at))
    window = service.settings.prometheus.resolve_timeout
    for alert in await store.list_alerts(project=project, source=AlertSource.SDK.value, limit=_SDK_SCAN):
        if alert.created_at + window > now:
            listed.append((alert, alert.created_at + window))
    runs = await store.get_runs_by_pk(sorted({alert.run_pk for alert, _ in listed if alert.run_pk is not None}))
    public_url = service.public_url.rstrip("/")
    found = []
    for alert, ends in listed:
        run = runs.get(alert.run_pk) if alert.run_pk is not None else None
        if alert.source is AlertSource.PROMETHEUS:
            url = alert.generator_url or ""
        else:
            url = run_url(public_url, run.project, run.id) if run is not None else f"{public_url}/alerts/{alert.id}"
        found.append(_Listed(alert, ends, url))
    return found


def _channels(judge: _Judge, alert: Alert, routes: list[Route]) -> list[str]:
    shortcut = judge.notify.get(alert.rule or "")
    if shortcut:  # the rule's notify: shortcut bypasses the routes
        return list(shortcut)
    return list(dict.fromkeys(channel for route in routes for channel in route.channels))


def _annotations(alert: Alert) -> dict[str, str]:
    if alert.source is AlertSource.PROMETHEUS:
        return dict(alert.annotations or {})
    found = {"summary": alert.title, "description": alert.text}
    for name, value in (("metric", alert.metric), ("value", json_float(alert.value)),
                        ("threshold", json_float(alert.threshold)), ("step", alert.step)):
        if value is not None:
            found[name] = str(value)
    return found


class _Judge:
    """What mutes an alert now (silences, and the inhibition rules against the firing alerts), and where
    the rules' ``notify:`` shortcuts send their alerts."""

    def __init__(self, service: Service, now: float) -> None:
        self._service = service
        self._now = now
        self.notify = {rule.name: rule.spec.notify for rule in service.rules.rules if rule.spec.notify}
        self._sources = service.dispatcher.firing_alerts()
        self._labels = [source.labels for source in self._sources]
        self._by_labels = {id(labels): source for labels, source in zip(self._labels, self._sources, strict=True)}

    def status(self, alert: Alert) -> dict[str, Any]:
        silenced = self._service.silences.silencer.muting(alert.labels, self._now)
        inhibited = [self._by_labels[id(labels)].fingerprint
                     for labels in self._service.inhibitor.inhibiting(alert.labels, self._labels)]
        return {"state": "suppressed" if silenced or inhibited else "active", "silencedBy": silenced,
                "inhibitedBy": inhibited, "mutedBy": []}


def _gettable(listed: _Listed, receivers: list[str], status: dict[str, Any]) -> dict[str, Any]:
    alert = listed.alert
    shown: dict[str, Any] = {
        "labels": dict(alert.labels), "annotations": _annotations(alert),
        "receivers": [{"name": name} for name in receivers], "fingerprint": alert.fingerprint,
        "startsAt": iso(alert.starts_at), "updatedAt": iso(alert.created_at or alert.starts_at),
        "endsAt": iso(listed.ends) if listed.ends is not None else ZERO_TIME, "status": status,
    }
    if listed.url:  # Alertmanager leaves an empty one out
        shown["generatorURL"] = listed.url
    return shown


def _takes(query: AlertQuery, status: dict[str, Any], labels: Mapping[str, str]) -> bool:
    """Alertmanager's ``alertFilter``, after the ``endsAt`` test."""
    if not query.active and status["state"] == "active":
        return False
    if not query.silenced and status["silencedBy"]:
        return False
    if not query.inhibited and status["inhibitedBy"]:
        return False
    return filter_matches(query.filter, labels)


async def gettable_alerts(service: Service, *, project: str | None, query: AlertQuery) -> list[dict[str, Any]]:
    """``GET /api/v2/alerts``: the alerts of ``project`` (None: every project) that ``query`` takes, by
    fingerprint."""
    now = time.time()
    judge = _Judge(service, now)
    found = []
    for listed in await _listed(service, project, now):
        alert = listed.alert
        receivers = _channels(judge, alert, service.dispatcher.router.routes_for(alert))
        if query.receiver is not None and not any(query.takes_receiver(name) for name in receivers):
            continue
        status = judge.status(alert)
        if _takes(query, status, alert.labels):
            found.append(_gettable(listed, receivers, status))
    return sorted(found, key=lambda shown: shown["fingerprint"])


async def alert_groups(service: Service, *, project: str | None, query: AlertQuery) -> list[dict[str, Any]]:
    """``GET /api/v2/alerts/groups``: the alerts ``query`` takes, grouped as our routes group them, one
    Alertmanager group per (group, channel)."""
    now = time.time()
    judge = _Judge(service, now)
    groups: dict[tuple[str, tuple[tuple[str, str], ...], str], list[tuple[float, dict[str, Any]]]] = {}
    for listed in await _listed(service, project, now):
        alert = listed.alert
        status = judge.status(alert)
        if not _takes(query, status, alert.labels):
            continue
        routes = service.dispatcher.router.routes_for(alert)
        receivers = _channels(judge, alert, routes)
        shown = _gettable(listed, receivers, status)
        for route in routes:
            labels = tuple(sorted(route.group_labels(alert).items()))
            for channel in route.channels:
                if query.takes_receiver(channel):
                    groups.setdefault((route.id, labels, channel), []).append((alert.starts_at, shown))
    return [{"labels": dict(labels), "receiver": {"name": channel},
             "alerts": [shown for _, shown in sorted(members, key=lambda pair: (pair[0], pair[1]["fingerprint"]))]}
            for (_, labels, channel), members in sorted(groups.items(), key=lambda item: (item[0][1], item[0][2]))]


# Silences -------------------------------------------------------------------------------------------
def seconds(loc: tuple[str | int, ...], moment: datetime) -> float:
    """UNIX seconds of a silence's time (RFC 3339 without an offset: UTC). A time before 1970 (Go's zero
    time among them) is 0, in the past like it; one after 9999 is :class:`InvalidInput`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    value = max(0.0, (moment - _EPOCH).total_seconds())
    if value > _LAST_TIME:
        raise InvalidInput(loc, "must not be after 9999-12-31T23:59:59Z")
    return value


def _matcher_json(matcher: Matcher) -> dict[str, Any]:
    return {"name": matcher.name, "value": matcher.value, "isRegex": matcher.op in ("=~", "!~"),
            "isEqual": matcher.op in ("=", "=~")}


def matcher_from_json(index: int, *, name: str, value: str, is_regex: bool, is_equal: bool | None) -> Matcher:
    """A matcher from Alertmanager's ``{name, value, isRegex, isEqual}`` (``isEqual`` defaults to true)."""
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
        (is_regex, True if is_equal is None else is_equal)]
    try:
        return Matcher(name, op, value)  # type: ignore[arg-type]  # one of the four operators
    except MatcherError as exc:
        raise InvalidInput(("body", "matchers", index), str(exc)) from None


def gettable_silence(silence: Silence, now: float) -> dict[str, Any]:
    return {"id": silence.id, "status": {"state": silence.state(now)}, "updatedAt": iso(silence.updated_at),
            "matchers": [_matcher_json(m) for m in silence.matchers], "startsAt": iso(silence.starts_at),
            "endsAt": iso(silence.ends_at), "createdBy": silence.created_by, "comment": silence.comment}


def silence_filter_matches(silence: Silence, matchers: list[Matcher]) -> bool:
    """Alertmanager's ``CheckSilenceMatchesFilterLabels``: every filter matcher is one of the silence's."""
    return all(wanted in silence.matchers for wanted in matchers)


def sorted_silences(silences: Iterable[Silence], now: float) -> list[Silence]:
    """Active ones first (the next to end first), then pending (the next to start), then expired (the
    latest to end first), as Alertmanager sorts them."""
    order = {"active": 0, "pending": 1, "expired": 2}

    def key(silence: Silence) -> tuple[int, float]:
        state = silence.state(now)
        moment = silence.starts_at if state == "pending" else silence.ends_at
        return order[state], -moment if state == "expired" else moment

    return sorted(silences, key=key)


def store_silence(existing: Silence | None, matchers: list[Matcher], *, starts_at: float, ends_at: float,
                  created_by: str, comment: str, now: float) -> tuple[Silence, Silence | None]:
    """``POST /api/v2/silences`` as Alertmanager's ``Silences.Set``: the silence to store and, when it
    replaces ``existing``, that one expired. ``existing`` (the silence the body's ``id`` names) is updated in
    place while it has not expired and its matchers stay the same; otherwise it is expired (if it is not
    already) and a new silence takes its place. A start in the past becomes now. Raises ``ValueError``
    naming the field (``new_silence``'s checks)."""
    starts_at = max(starts_at, now)
    if existing is not None and existing.state(now) != "expired" and existing.matchers == matchers:
        kept_id = existing.id
        if existing.state(now) == "active":  # an active silence keeps its start
            starts_at = existing.starts_at
        updated = new_silence(matchers, starts_at=starts_at, ends_at=ends_at, created_by=created_by,
                              comment=comment, now=now, new_id=lambda: kept_id)
        return updated, None
    fresh = new_silence(matchers, starts_at=starts_at, ends_at=ends_at, created_by=created_by, comment=comment,
                        now=now)
    if existing is None or existing.state(now) == "expired":
        return fresh, None
    existing.ends_at = now
    existing.starts_at = min(existing.starts_at, now)
    existing.updated_at = now
    return fresh, existing


# Receivers and status -------------------------------------------------------------------------------
def receivers(service: Service) -> list[dict[str, Any]]:
    return [{"name": name} for name in service.channels]


def status(service: Service) -> dict[str, Any]:
    """``GET /api/v2/status``: Runwatch's version, a cluster that is "disabled" (replicas share one
    database instead of gossiping), and the routing tree as an Alertmanager config (receivers by name only:
    no channel settings, so no secret)."""
    return {
        "cluster": {"status": "disabled", "peers": []},
        "versionInfo": {"version": __version__, "revision": "", "branch": "", "buildUser": "runwatch",
                        "buildDate": "", "goVersion": "none (Runwatch, Python)"},
        "config": {"original": _config_text(service)},
        "uptime": iso(service.started_at),
    }


def _config_text(service: Service) -> str:
    root = service.dispatcher.router.root
    names = list(service.channels)
    if not all(route.channels for route in root.walk()):
        names.append(_NOBODY)
    config = {"route": _route_config(root, top=True), "receivers": [{"name": name} for name in names]}
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    return ("# Runwatch's routing (alerts.yaml) as an Alertmanager config: each channel is a receiver; a route\n"
            "# with several channels sends to each (one child route per channel, continue: true). Quiet hours\n"
            "# (mute_times), inhibition and channel settings are left out.\n" + text)


def _route_config(route: Route, *, top: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {"receiver": route.channels[0] if route.channels else _NOBODY,
                              "group_by": list(route.group_by),
                              "group_wait": _duration(route.group_wait),
                              "group_interval": _duration(route.group_interval),
                              "repeat_interval": _duration(route.repeat_interval)}
    if not top:
        config["matchers"] = [str(matcher) for matcher in route.matchers]
        config["continue"] = route.continue_
    children = [_route_config(child) for child in route.children]
    if len(route.channels) > 1:
        children += [{"receiver": channel, "continue": True} for channel in route.channels]
    if children:
        config["routes"] = children
    return config


def _duration(seconds: float) -> str:
    return format_duration(seconds) if seconds else "0s"
