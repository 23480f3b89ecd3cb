"""Adapters that give silences and inhibition rules the pipeline's ``Muter`` shape."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from alerts.inhibit.inhibitor import Inhibitor, InhibitRule
from alerts.silence.silences import Silence, Silencer
from alerts.storage.base import Store

log = logging.getLogger(__name__)


class SilenceMuter:
    """Active silences, refreshed from the store (the CLI may add some while the service runs)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.silencer = Silencer()

    async def refresh(self) -> None:
        self.silencer.replace_all([Silence.from_json(row) for row in await self._store.list_silences()])

    def muted(self, labels: Mapping[str, str], now: float) -> bool:
        return bool(self.silencer.muting(labels, now))


class InhibitMuter:
    """Inhibition rules against the alerts firing right now (from the dispatcher's groups)."""

    def __init__(self, rules: list[InhibitRule], firing: Callable[[], list[dict[str, str]]]) -> None:
        self._firing = firing
        self.replace(rules)

    def replace(self, rules: list[InhibitRule]) -> None:
        """New rules (a config reload)."""
        self._inhibitor = Inhibitor(rules)
        self._enabled = bool(rules)

    def muted(self, labels: Mapping[str, str], now: float) -> bool:
        return self._enabled and self._inhibitor.inhibits(labels, self._firing())

    def inhibiting(self, labels: Mapping[str, str], firing: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
        """Which of ``firing`` (label sets, as given) mute an alert with ``labels`` under the rules in force."""
        return self._inhibitor.inhibiting(labels, firing) if self._enabled else []


