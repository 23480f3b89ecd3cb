"""The notification log: what each (group, channel) was last told, persisted (Alertmanager's nflog).

It is what makes deduplication survive a restart: a firing group is not notified again until
something changed or ``repeat_interval`` passed.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.notify.channels.base import ChannelContext


@dataclass
class LogEntry:
    firing: frozenset[str]
    resolved: frozenset[str]
    at: float


class NotificationLog:
    def __init__(self, context: ChannelContext) -> None:
        self._context = context
        self._cache: dict[tuple[str, str], LogEntry | None] = {}

    async def get(self, channel: str, group_key: str) -> LogEntry | None:
        key = (channel, group_key)
        if key not in self._cache:
            raw = await self._context.recall(channel, "nflog:" + group_key)
            self._cache[key] = None if raw is None else LogEntry(frozenset(raw["firing"]),
                                                                  frozenset(raw["resolved"]), raw["at"])
        return self._cache[key]

    async def record(self, channel: str, group_key: str, entry: LogEntry) -> None:
        self._cache[(channel, group_key)] = entry
        await self._context.remember(channel, "nflog:" + group_key, {
            "firing": sorted(entry.firing), "resolved": sorted(entry.resolved), "at": entry.at})


def needs_update(entry: LogEntry | None, firing: frozenset[str], resolved: frozenset[str], *,
                 send_resolved: bool, repeat_interval: float, now: float) -> bool:
    """Alertmanager's DedupStage: new firing alerts, newly resolved ones, or the repeat interval."""
    if entry is None:
        return bool(firing) or (send_resolved and bool(resolved))
    if not firing <= entry.firing:
        return True
    if send_resolved and not resolved <= entry.resolved:
        return True
    if not firing:
        return False  # everything resolved, and resolved notifications are off or already sent
    return now - entry.at >= repeat_interval
