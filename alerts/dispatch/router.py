"""Routing: the routes (channels, grouping, timers) that an alert goes to.

The rule-level ``notify:`` shortcut bypasses the tree: the alert goes to the named channels with the
root route's grouping and timers.
"""

from __future__ import annotations

from dataclasses import replace

from alerts.dispatch.routes import Route, build_tree, match_routes
from alerts.model import Alert


class Router:
    def __init__(self, root: Route) -> None:
        self.root = root

    @classmethod
    def from_settings(cls, settings: object) -> Router:
        return cls(build_tree(settings.defaults, settings.routes))  # type: ignore[attr-defined]

    def routes_for(self, alert: Alert) -> list[Route]:
        if alert.notify:
            return [replace(self.root, id="notify:" + ",".join(alert.notify), channels=alert.notify,
                            children=())]
        return match_routes(self.root, alert.labels)
