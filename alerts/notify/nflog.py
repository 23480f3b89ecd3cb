"""The notification log: what each (group, channel) was last told, persisted (Alertmanager's nflog).

It is what makes deduplication survive a restart: a firing group is not notified again until
something changed or ``repeat_interval`` passed. Entries live in the store's channel state under
``nflog:<group key>`` and are written in the same transaction as the notifications they describe.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.storage.base import ChannelState, Store

Key = tuple[str, str]
"""(channel, group key)"""


@dataclass
class LogEntry:
    firing: frozenset[str]
    resolved: frozenset[str]
    at: float


class NotificationLog:
    def __init__(self, store: Store, *, cache_size: int = 100_000) -> None:
        self._store = store
        self._cache: dict[Key, LogEntry | None] = {}  # oldest first; the store has every entry
        self._cache_size = cache_size

    async def load(self, keys: list[Key]) -> None:
        """Read the entries of ``keys`` not yet cached, in one query."""
        self._evict(keep=set(keys))
        missing = [key for key in keys if key not in self._cache]
        if not missing:
            return
        stored = await self._store.get_channel_states([(channel, _state_key(group)) for channel, group in missing])
        for channel, group in missing:
            raw = stored.get((channel, _state_key(group)))
            self._cache[(channel, group)] = None if raw is None else LogEntry(
                frozenset(raw["firing"]), frozenset(raw["resolved"]), raw["at"])

    def clear(self) -> None:
        """Forget the cached entries: another process (a former dispatch leader) may have written since."""
        self._cache.clear()

    def get(self, channel: str, group_key: str) -> LogEntry | None:
        """The entry (``load`` it first); None if the group was never notified on this channel."""
        return self._cache[(channel, group_key)]

    @staticmethod
    def state(channel: str, group_key: str, entry: LogEntry) -> ChannelState:
        """The row to write with the notification (see ``Store.enqueue_notifications``)."""
        return ChannelState(channel, _state_key(group_key), {
            "firing": sorted(entry.firing), "resolved": sorted(entry.resolved), "at": entry.at}, entry.at)

    def written(self, channel: str, group_key: str, entry: LogEntry) -> None:
        """Cache an entry once its transaction committed."""
        self._cache.pop((channel, group_key), None)  # to the young end
        self._cache[(channel, group_key)] = entry

    def _evict(self, keep: set[Key]) -> None:
        """Bound the memory of a long-running service: groups not notified for longest go first."""
        excess = len(self._cache) - self._cache_size
        if excess <= 0:
            return
        for key in [key for key in self._cache if key not in keep][:excess]:
            del self._cache[key]


def _state_key(group_key: str) -> str:
    return "nflog:" + group_key


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
