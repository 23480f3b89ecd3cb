"""The notification log: entries persist with the notifications and survive cache eviction."""

from __future__ import annotations

import pytest

from alerts.notify.nflog import LogEntry, NotificationLog, needs_update
from alerts.storage import Store


async def test_entries_written_with_notifications_reload_after_eviction(store: Store) -> None:
    log = NotificationLog(store, cache_size=2)
    entries = {f"g{i}": LogEntry(frozenset({f"a{i}"}), frozenset(), float(i)) for i in range(4)}
    await store.enqueue_notifications([], [log.state("hook", key, entry) for key, entry in entries.items()])
    for key, entry in entries.items():
        log.written("hook", key, entry)
    await log.load([("hook", "g0"), ("hook", "g1"), ("slack", "g0")])  # evicts g2 and g3, keeps what it loads
    assert log.get("hook", "g0") == entries["g0"] and log.get("slack", "g0") is None
    with pytest.raises(KeyError):
        log.get("hook", "g3")
    await log.load([("hook", "g3")])
    assert log.get("hook", "g3") == entries["g3"]  # read back from the store


def test_dedup_decisions() -> None:
    sent = LogEntry(frozenset({"a"}), frozenset(), 100.0)
    assert needs_update(None, frozenset({"a"}), frozenset(), send_resolved=True, repeat_interval=60, now=100)
    assert not needs_update(sent, frozenset({"a"}), frozenset(), send_resolved=True, repeat_interval=60, now=150)
    assert needs_update(sent, frozenset({"a"}), frozenset(), send_resolved=True, repeat_interval=60, now=160)
    assert needs_update(sent, frozenset({"a", "b"}), frozenset(), send_resolved=True, repeat_interval=60, now=101)
    assert needs_update(sent, frozenset(), frozenset({"a"}), send_resolved=True, repeat_interval=60, now=101)
    assert not needs_update(sent, frozenset(), frozenset({"a"}), send_resolved=False, repeat_interval=60, now=101)
