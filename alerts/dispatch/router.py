"""Routing: the channels and grouping for an alert.

Until the routing tree (``routes:``) lands, an alert goes to the channels its rule names in
``notify:``, else to ``defaults.channels``, grouped by ``defaults.group_by``.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.config.settings import DefaultsSettings
from alerts.model import Alert


@dataclass(frozen=True)
class Route:
    name: str
    channels: tuple[str, ...]
    group_by: tuple[str, ...]

    def group_labels(self, alert: Alert) -> dict[str, str]:
        return {label: alert.labels.get(label, "") for label in self.group_by}


class Router:
    def __init__(self, defaults: DefaultsSettings) -> None:
        self._default = Route(name="default", channels=tuple(defaults.channels),
                              group_by=tuple(defaults.group_by))

    def routes_for(self, alert: Alert) -> list[Route]:
        if alert.notify:  # a rule's `notify:` shortcut names the channels directly
            return [Route(name="notify", channels=alert.notify, group_by=self._default.group_by)]
        return [self._default]
