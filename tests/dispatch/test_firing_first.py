"""Every firing is seen (issue 14): an alert that fires and resolves before its group's flush told it
firing (a NaN that clears within one batch, a one-step spike, a run that ends in the batch of its first
firing) is told firing first; its resolution follows at the group's next flush, ``group_interval`` later.

In process, as ``alerts/service.py`` wires them: the real dispatcher, pipeline (silences, inhibition,
dedup against the notification log) and outbox on a real SQLite store, with a fake clock. The delivery
loop is not started: every notification stays in the outbox, where the test reads it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from alerts.config.settings import AlertsSettings
from alerts.dispatch.groups import Dispatcher
from alerts.dispatch.router import Router
from alerts.model import Alert, AlertSource, AlertStatus, Notification, Severity, fingerprint
from alerts.notify.delivery import Deliverer
from alerts.notify.muting import InhibitMuter, SilenceMuter
from alerts.notify.nflog import NotificationLog
from alerts.notify.pipeline import Pipeline
from alerts.silence.matchers import Matcher
from alerts.silence.silences import new_silence
from alerts.storage import Store

T0 = 1_800_000_000.0
INTERVAL = 60.0


def settings(**defaults: Any) -> AlertsSettings:
    return AlertsSettings.model_validate({
        "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/"}},
        "defaults": {"channels": ["hook"], "group_by": ["project", "run"], "group_wait": "0s",
                     "group_interval": INTERVAL, "repeat_interval": "4h", "send_resolved": True, **defaults}})


@dataclass
class Stack:
    store: Store
    dispatcher: Dispatcher
    silences: SilenceMuter
    now: float = T0
    log_reads: list[list[tuple[str, str]]] = field(default_factory=list)

    async def submit(self, *alerts: Alert) -> None:
        await self.dispatcher.submit(list(alerts), None)

    async def flush_at(self, offset: float) -> list[Notification]:
        """Move the clock to ``T0 + offset``, flush what is due; the notifications that flush queued."""
        before = {n.id for n in await self.store.list_notifications(limit=10_000)}
        self.now = T0 + offset
        await self.dispatcher.flush_due()
        return sorted((n for n in await self.store.list_notifications(limit=10_000) if n.id not in before),
                      key=lambda n: n.id)


def build(store: Store, config: AlertsSettings) -> Stack:
    """``Service.__init__``'s notify wiring, with the clock and notification ids injected."""
    holder: list[Stack] = []
    ids = (f"n{i:03d}" for i in itertools.count())
    deliverer = Deliverer(store, {}, config.delivery, clock=lambda: holder[0].now)
    nflog = NotificationLog(store)
    silences = SilenceMuter(store)
    inhibitor = InhibitMuter(config.inhibit, lambda: holder[0].dispatcher.firing_labels())
    pipeline = Pipeline(store, deliverer, nflog, silencer=silences, inhibitor=inhibitor,
                        mute_times=lambda names, moment: False, clock=lambda: holder[0].now, new_id=lambda: next(ids))
    dispatcher = Dispatcher(Router.from_settings(config), pipeline.flush, public_url="http://localhost:8080",
                            clock=lambda: holder[0].now)
    stack = Stack(store, dispatcher, silences)
    holder.append(stack)
    load = nflog.load

    async def counting_load(keys: list[tuple[str, str]]) -> None:
        if keys:
            stack.log_reads.append(keys)
        await load(keys)

    nflog.load = counting_load  # type: ignore[method-assign]
    return stack


def fired(alert_id: str, *, rule: str = "loss-not-finite", at: float = T0) -> Alert:
    """A rule alert as the engine emits it when it fires (a snapshot: its resolution is another object)."""
    labels = {"alertname": rule, "rule": rule, "source": "rule", "severity": "critical", "project": "vision",
              "run": "r1", "run_name": "exp-1", "metric": "loss"}
    return Alert(id=alert_id, fingerprint=fingerprint(labels), source=AlertSource.RULE, project="vision",
                 title="loss is not finite", text="", severity=Severity.CRITICAL, labels=labels,
                 status=AlertStatus.FIRING, starts_at=at, rule=rule, metric="loss", value=float("nan"), step=2,
                 created_at=at)


def resolved(alert: Alert, *, at: float = T0, reason: str = "condition cleared") -> Alert:
    return replace(alert, status=AlertStatus.RESOLVED, ends_at=at, resolved_reason=reason)


def told(notification: Notification) -> list[tuple[str, str]]:
    return [(alert["id"], alert["status"]) for alert in notification.message["alerts"]]


async def test_an_alert_that_fires_and_resolves_in_one_submit_is_told_firing_then_resolved(store: Store) -> None:
    """loss 1.0, 0.9, NaN, 0.8 in one batch: the rule fires at step 2 and clears at step 3, and both
    changes come in one submit. Without the fix the resolution replaced the firing entry before the
    flush: the only notification said "resolved"."""
    stack = build(store, settings())
    nan = fired("a1")
    await stack.submit(nan, resolved(nan))
    assert stack.dispatcher.firing_labels() == [], "a resolved alert inhibits nothing, told or not"
    (first,) = await stack.flush_at(0)
    assert first.message["status"] == "firing" and told(first) == [("a1", "firing")]
    assert first.message["alerts"][0]["ends_at"] is None and first.message["alerts"][0]["value"] == "NaN"
    assert stack.log_reads == [], "nobody can have been told of a new group's alerts: no log read"
    assert await stack.flush_at(INTERVAL / 2) == [], "the group's next flush is group_interval later"
    (second,) = await stack.flush_at(INTERVAL)
    assert second.message["status"] == "resolved" and told(second) == [("a1", "resolved")]
    assert second.group_key == first.group_key and second.channel == first.channel
    assert second.message["alerts"][0]["ends_at"] is not None
    assert second.message["alerts"][0]["resolved_reason"] == "condition cleared"
    assert stack.log_reads, "the resolution of an alert told firing is checked against the log (not fresh)"
    assert stack.dispatcher.groups == {}
    assert await stack.flush_at(3 * INTERVAL) == []


async def test_a_resolution_in_a_later_submit_before_the_first_flush_follows_the_firing(store: Store) -> None:
    """A run that ends (resolving its alerts, "run finished") before its new group's group_wait is over."""
    stack = build(store, settings(group_wait="30s"))
    alert = fired("a1")
    await stack.submit(alert)
    stack.now = T0 + 5
    await stack.submit(resolved(alert, at=T0 + 5, reason="run finished"))
    assert await stack.flush_at(10) == []
    (first,) = await stack.flush_at(30)
    assert told(first) == [("a1", "firing")]
    (second,) = await stack.flush_at(30 + INTERVAL)
    assert told(second) == [("a1", "resolved")]
    assert second.message["alerts"][0]["resolved_reason"] == "run finished"


async def test_without_send_resolved_only_the_firing_goes_out(store: Store) -> None:
    stack = build(store, settings(send_resolved=False))
    alert = fired("a1")
    await stack.submit(alert, resolved(alert))
    (first,) = await stack.flush_at(0)
    assert first.message["status"] == "firing" and told(first) == [("a1", "firing")]
    assert await stack.flush_at(INTERVAL) == []
    assert stack.dispatcher.groups == {}, "the resolution left the group at the flush that did not send it"


async def test_a_series_that_fires_again_before_the_flush_tells_each_alert_firing_first(store: Store) -> None:
    stack = build(store, settings())
    first, second = fired("a1"), fired("a2")
    await stack.submit(first, resolved(first), second)
    (notification,) = await stack.flush_at(0)
    assert sorted(told(notification)) == [("a1", "firing"), ("a2", "firing")]
    (notification,) = await stack.flush_at(INTERVAL)
    assert sorted(told(notification)) == [("a1", "resolved"), ("a2", "firing")]
    held = [(e.alert.id, e.alert.status) for group in stack.dispatcher.groups.values() for e in group.alerts.values()]
    assert held == [("a2", AlertStatus.FIRING)]
    # The second episode resolves too, and a third comes and goes, all before the next flush.
    third = fired("a3")
    await stack.submit(resolved(second), third, resolved(third))
    (notification,) = await stack.flush_at(2 * INTERVAL)
    assert sorted(told(notification)) == [("a2", "resolved"), ("a3", "firing")]
    (notification,) = await stack.flush_at(3 * INTERVAL)
    assert told(notification) == [("a3", "resolved")]
    assert stack.dispatcher.groups == {}


async def test_an_update_after_the_resolution_keeps_it_waiting_for_the_firing(store: Store) -> None:
    """A follow-up followed by yet another update: the latest resolution follows, once."""
    stack = build(store, settings())
    alert = fired("a1")
    again = resolved(alert, reason="run finished")
    await stack.submit(alert, resolved(alert), again, replace(alert, value=2.0))
    (first,) = await stack.flush_at(0)
    assert told(first) == [("a1", "firing")]
    (second,) = await stack.flush_at(INTERVAL)
    assert told(second) == [("a1", "resolved")]
    assert second.message["alerts"][0]["resolved_reason"] == "run finished"
    assert await stack.flush_at(2 * INTERVAL) == [] and stack.dispatcher.groups == {}


async def test_a_resolution_of_an_alert_already_told_is_not_delayed(store: Store) -> None:
    stack = build(store, settings())
    alert = fired("a1")
    await stack.submit(alert)
    assert [told(n) for n in await stack.flush_at(0)] == [[("a1", "firing")]]
    stack.now = T0 + 1
    await stack.submit(resolved(alert, at=T0 + 1))
    assert [told(n) for n in await stack.flush_at(INTERVAL)] == [[("a1", "resolved")]]
    assert stack.dispatcher.groups == {}


async def test_a_reload_keeps_the_resolution_waiting_for_the_firing(store: Store) -> None:
    stack = build(store, settings(group_wait="10m"))
    alert = fired("a1")
    await stack.submit(alert, resolved(alert))
    await stack.dispatcher.reroute(Router.from_settings(settings(group_wait="0s")))
    (first,) = await stack.flush_at(0)
    assert told(first) == [("a1", "firing")]
    (second,) = await stack.flush_at(INTERVAL)
    assert told(second) == [("a1", "resolved")]


@pytest.mark.parametrize("silenced_for", [INTERVAL / 2, 2 * INTERVAL])
async def test_a_silenced_firing_counts_as_told(store: Store, silenced_for: float) -> None:
    """A flush that mutes an alert counts as telling it: its resolution takes its place, and the next
    flush mutes it or tells it as any resolution (a silence over by then does not hold it back)."""
    stack = build(store, settings())
    silence = new_silence([Matcher("run", "=", "r1")], starts_at=T0, ends_at=T0 + silenced_for, created_by="test",
                          comment="maintenance", now=T0)
    await store.save_silence(silence.to_json())
    await stack.silences.refresh()
    alert = fired("a1")
    await stack.submit(alert, resolved(alert))
    assert await stack.flush_at(0) == [], "silenced"
    expected = [[("a1", "resolved")]] if silenced_for < INTERVAL else []
    assert [told(n) for n in await stack.flush_at(INTERVAL)] == expected
    assert stack.dispatcher.groups == {}


async def test_alert_events_are_unaffected(store: Store) -> None:
    stack = build(store, settings())
    labels = {"alertname": "sdk", "source": "sdk", "severity": "warning", "project": "vision", "run": "r1",
              "run_name": "exp-1"}
    event = Alert(id="e1", fingerprint=fingerprint({**labels, "title": "diverged"}), source=AlertSource.SDK,
                  project="vision", title="diverged", text="", severity=Severity.WARNING, labels=labels,
                  status=AlertStatus.FIRING, starts_at=T0, created_at=T0)
    await stack.submit(event, replace(event))
    (notification,) = await stack.flush_at(0)
    assert told(notification) == [("e1", "firing")]
    assert await stack.flush_at(INTERVAL) == [] and stack.dispatcher.groups == {}
