"""The fast path (issue 11): with ``group_wait: 0`` an alert goes from ``submit`` to the outbox to the
channel without waiting for a timer or a turn of the delivery loop, and keeps every guarantee: the
outbox row is committed (claimed) before the send, concurrency slots are honoured, a restart still
deduplicates against the notification log, and a graceful stop gives unsent claims back.

In process, against a real SQLite store, with a channel that records what the store held at each send.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alerts.config.settings import AlertsSettings
from alerts.dispatch.groups import Dispatcher
from alerts.dispatch.router import Router
from alerts.model import Alert, AlertSource, AlertStatus, Notification, NotificationStatus, Severity
from alerts.notify.channels.base import Channel
from alerts.notify.delivery import Deliverer
from alerts.notify.nflog import NotificationLog
from alerts.notify.pipeline import Pipeline
from alerts.storage import Store


class Recorder(Channel):
    """Records each send with the outbox row as the store had it at that moment."""

    def __init__(self, store: Store, *, gate: asyncio.Event | None = None) -> None:
        super().__init__("hook")
        self.store = store
        self.gate = gate
        self.sent: list[tuple[Notification, Notification | None, float]] = []
        self.delivered = asyncio.Event()

    async def send(self, notification: Notification) -> None:
        rows = {n.id: n for n in await self.store.list_notifications(limit=10_000)}
        self.sent.append((notification, rows.get(notification.id), time.time()))
        if self.gate is not None:
            await self.gate.wait()
        self.delivered.set()


class NeverMuted:
    def muted(self, labels: Any, now: float) -> bool:
        return False


@dataclass
class Stack:
    store: Store
    channel: Recorder
    deliverer: Deliverer
    pipeline: Pipeline
    dispatcher: Dispatcher
    claims: list[float] = field(default_factory=list)
    log_reads: list[list[tuple[str, str]]] = field(default_factory=list)

    async def stop(self) -> None:
        await self.dispatcher.stop()
        await self.deliverer.stop()


def settings(**defaults: Any) -> AlertsSettings:
    return AlertsSettings.model_validate({
        "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/"}},
        "defaults": {"channels": ["hook"], "group_wait": "0s", "group_interval": "1h", "repeat_interval": "4h",
                     "group_by": ["..."], **defaults}})


async def build(store: Store, *, concurrency: int = 32, gate: asyncio.Event | None = None,
                **defaults: Any) -> Stack:
    config = settings(**defaults)
    channel = Recorder(store, gate=gate)
    deliverer = Deliverer(store, {"hook": channel}, config.delivery, concurrency={"hook": concurrency})
    nflog = NotificationLog(store)
    pipeline = Pipeline(store, deliverer, nflog, inhibitor=NeverMuted(), silencer=NeverMuted(),
                        mute_times=lambda names, moment: False)
    dispatcher = Dispatcher(Router.from_settings(config), pipeline.flush, public_url="http://localhost:8080")
    stack = Stack(store, channel, deliverer, pipeline, dispatcher)
    claim, load = store.claim_notifications, nflog.load

    async def counting_claim(**kwargs: Any) -> Any:
        stack.claims.append(time.time())
        return await claim(**kwargs)

    async def counting_load(keys: list[tuple[str, str]]) -> None:
        if keys:
            stack.log_reads.append(keys)
        await load(keys)

    store.claim_notifications = counting_claim  # type: ignore[method-assign]
    nflog.load = counting_load  # type: ignore[method-assign]
    deliverer.start()
    dispatcher.start()
    await asyncio.sleep(0.05)  # the loop's first turn (marking unrouted rows) is over
    stack.claims.clear()
    return stack


def make_alert(*, source: AlertSource = AlertSource.RULE, status: AlertStatus = AlertStatus.FIRING,
               metric: str = "loss", alert_id: str | None = None) -> Alert:
    labels = {"alertname": "loss-high", "rule": "loss-high", "source": source.value, "severity": "warning",
              "project": "vision", "run": "r1", "run_name": "exp-1", "metric": metric}
    return Alert(id=alert_id or uuid.uuid4().hex, fingerprint=f"fp-{metric}", source=source, project="vision",
                 title=f"{metric} high", text="", severity=Severity.WARNING, labels=labels, status=status,
                 starts_at=time.time(), rule="loss-high", metric=metric, value=2.0,
                 ends_at=time.time() if status is AlertStatus.RESOLVED else None)


async def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_new_group_goes_straight_to_the_channel_committed_first(store: Store) -> None:
    stack = await build(store)
    try:
        alert = make_alert()
        await stack.dispatcher.submit([alert], None)
        await wait_until(lambda: len(stack.channel.sent) == 1)
        notification, row, _ = stack.channel.sent[0]
        assert row is not None, "the outbox row must be committed before the send"
        assert row.status is NotificationStatus.PENDING and row.next_attempt_at > time.time() + 10, \
            "written already claimed (a lease), so no other worker takes it"
        assert [a["id"] for a in notification.message["alerts"]] == [alert.id]
        assert stack.claims == [], "no turn of the delivery loop between the pipeline and the channel"
        assert stack.log_reads == [], "a group of alerts nobody was told of needs no log read"
    finally:
        await stack.stop()
    delivered = await store.list_notifications(status="delivered")
    assert [n.id for n in delivered] == [notification.id]


async def test_many_submits_at_once_are_one_flush_and_each_sent_once(store: Store) -> None:
    stack = await build(store)
    try:
        alerts = [make_alert(metric=f"m{i}") for i in range(50)]
        await asyncio.gather(*(stack.dispatcher.submit([alert], None) for alert in alerts))
        await wait_until(lambda: len(stack.channel.sent) == 50)
        await asyncio.sleep(0.2)
        sent_ids = sorted(a["id"] for n, _, _ in stack.channel.sent for a in n.message["alerts"])
        assert sent_ids == sorted(a.id for a in alerts)
        assert len({n.created_at for n, _, _ in stack.channel.sent}) == 1, "one flush, one transaction"
    finally:
        await stack.stop()


async def test_a_full_channel_queues_in_the_outbox_and_the_loop_delivers_later(store: Store) -> None:
    gate = asyncio.Event()
    stack = await build(store, concurrency=1, gate=gate)
    try:
        first, second = make_alert(metric="a"), make_alert(metric="b")
        await stack.dispatcher.submit([first], None)
        await wait_until(lambda: len(stack.channel.sent) == 1)
        await stack.dispatcher.submit([second], None)
        await asyncio.sleep(0.3)
        assert len(stack.channel.sent) == 1, "concurrency 1: the second waits for the slot"
        pending = await store.list_notifications(status="pending")
        assert len(pending) == 2
        gate.set()
        await wait_until(lambda: len(stack.channel.sent) == 2)
        assert stack.channel.sent[1][0].message["alerts"][0]["id"] == second.id
        assert stack.claims, "the queued one went the outbox's ordinary way"
        await wait_until(lambda: not stack.deliverer._in_flight)
        assert stack.deliverer._busy["hook"] == 0
    finally:
        await stack.stop()


async def test_the_log_still_deduplicates_after_a_restart(store: Store) -> None:
    first = await build(store, group_interval="100ms")
    alert = make_alert()
    try:
        await first.dispatcher.submit([alert], None)
        await wait_until(lambda: len(first.channel.sent) == 1)
    finally:
        await first.stop()
    # A new process: the firing alert is restored into its group; the log knows it was notified.
    second = await build(store, group_interval="100ms")
    try:
        second.dispatcher.restore([alert], {})
        await asyncio.sleep(0.5)  # several group_interval flushes
        # An update of that alert (same id) while it fires is not news either.
        await second.dispatcher.submit([alert], None)
        await asyncio.sleep(0.5)
        assert second.channel.sent == []
        assert second.log_reads, "alerts of an earlier process are checked against the log"
        resolved = make_alert(status=AlertStatus.RESOLVED, alert_id=alert.id)
        await second.dispatcher.submit([resolved], None)
        await wait_until(lambda: len(second.channel.sent) == 1)
        assert second.channel.sent[0][0].message["status"] == "resolved"
    finally:
        await second.stop()


async def test_an_update_during_a_flush_is_not_taken_for_news(store: Store) -> None:
    stack = await build(store, group_interval="200ms")
    try:
        alert = make_alert()
        await stack.dispatcher.submit([alert], None)
        await stack.dispatcher.submit([alert], None)  # the same alert again, before the flush ran
        await wait_until(lambda: len(stack.channel.sent) == 1)
        await stack.dispatcher.submit([alert], None)
        await asyncio.sleep(0.8)  # group_interval flushes see it; the log says it was told
        assert len(stack.channel.sent) == 1
    finally:
        await stack.stop()


async def test_events_are_sent_once_each(store: Store) -> None:
    stack = await build(store)
    try:
        events = [make_alert(source=AlertSource.SDK, metric="e") for _ in range(3)]
        for event in events:
            await stack.dispatcher.submit([event], None)
            await wait_until(lambda e=event: any(a["id"] == e.id for n, _, _ in stack.channel.sent
                                                 for a in n.message["alerts"]))
        await asyncio.sleep(0.3)
        assert sorted(a["id"] for n, _, _ in stack.channel.sent for a in n.message["alerts"]) == \
            sorted(e.id for e in events)
    finally:
        await stack.stop()


async def test_a_graceful_stop_gives_unsent_claims_back(store: Store) -> None:
    gate = asyncio.Event()  # never set: the send hangs until the stop cancels it
    stack = await build(store, gate=gate)
    await stack.dispatcher.submit([make_alert()], None)
    await wait_until(lambda: len(stack.channel.sent) == 1)
    before = time.time()
    await stack.stop()
    pending = await store.list_notifications(status="pending")
    assert len(pending) == 1 and pending[0].next_attempt_at <= before + 1, \
        "a restart sends it at once instead of waiting for the lease to run out"
    assert pending[0].attempts == 0


async def test_a_series_that_fires_again_before_its_last_alert_was_told_keeps_both(store: Store) -> None:
    """A batch that caught up after an outage can hold whole episodes of one series: each alert is told."""
    stack = await build(store, group_interval="200ms", send_resolved=True)
    try:
        first = make_alert(alert_id="first")
        await stack.dispatcher.submit([first], None)
        await wait_until(lambda: len(stack.channel.sent) == 1)
        # Before the next flush: the first resolves, and the series fires again, then again.
        second, third = make_alert(alert_id="second"), make_alert(alert_id="third")
        await stack.dispatcher.submit([make_alert(alert_id="first", status=AlertStatus.RESOLVED), second,
                                       make_alert(alert_id="second", status=AlertStatus.RESOLVED), third], None)
        # The second fired and resolved before any flush told it: told firing first, its resolution next.
        await wait_until(lambda: len(stack.channel.sent) == 3)
        told = [{(a["id"], a["status"]) for a in n.message["alerts"]} for n, _, _ in stack.channel.sent[1:]]
        assert told == [{("first", "resolved"), ("second", "firing"), ("third", "firing")},
                        {("second", "resolved"), ("third", "firing")}]
        await stack.dispatcher.submit([make_alert(alert_id="third", status=AlertStatus.RESOLVED)], None)
        await wait_until(lambda: len(stack.channel.sent) == 4)
        assert [(a["id"], a["status"]) for a in stack.channel.sent[3][0].message["alerts"]] == [("third", "resolved")]
        assert stack.dispatcher.groups == {}
    finally:
        await stack.stop()
