"""The routing tree (SPEC §4.2 ``routes``), resolved against ``defaults`` like Alertmanager's.

A route inherits every setting it does not set from its parent; the root is ``defaults``. An alert
walks the children in order: the first matching child takes it (and descends), unless that child says
``continue: true``, in which case the following siblings are tried too. A node none of whose children
match handles the alert itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alerts.durations import Duration
from alerts.model import Alert
from alerts.silence.matchers import Matcher, MatcherList, matches_all


class RouteConfig(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", populate_by_name=True)

    match: MatcherList = Field(default_factory=list)
    """Matchers on alert labels (`{severity: critical}` or `["rule=~loss.*"]`); empty matches every alert."""
    channels: list[str] | None = None
    """Channels of the alerts this route takes (default: the parent's)."""
    continue_: bool = Field(default=False, alias="continue")
    """Go on to the next sibling routes after this one matched."""
    group_by: list[str] | None = None
    """As `defaults.group_by`, for this route (default: the parent's)."""
    group_wait: Duration | None = None
    """As `defaults.group_wait` (default: the parent's)."""
    group_interval: Duration | None = None
    """As `defaults.group_interval` (default: the parent's)."""
    repeat_interval: Duration | None = None
    """As `defaults.repeat_interval` (default: the parent's)."""
    send_resolved: bool | None = None
    """As `defaults.send_resolved` (default: the parent's)."""
    mute_times: list[str] | None = None
    """As `defaults.mute_times` (default: the parent's)."""
    routes: list[RouteConfig] = Field(default_factory=list)
    """Child routes, tried in order."""


@dataclass(frozen=True, eq=False)
class Route:
    id: str
    matchers: tuple[Matcher, ...]
    channels: tuple[str, ...]
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    send_resolved: bool
    mute_times: tuple[str, ...]
    continue_: bool = False
    children: tuple[Route, ...] = field(default_factory=tuple)

    def group_labels(self, alert: Alert) -> dict[str, str]:
        if "..." in self.group_by:  # Alertmanager's "group by every label"
            return dict(alert.labels)
        return {label: alert.labels.get(label, "") for label in self.group_by}

    def walk(self) -> list[Route]:
        return [self, *(node for child in self.children for node in child.walk())]


def build_tree(defaults: Any, routes: list[RouteConfig]) -> Route:
    """The root route from ``defaults`` (channels, group_by, timers, send_resolved) and ``routes``."""
    root = Route(id="{}", matchers=(), channels=tuple(defaults.channels), group_by=tuple(defaults.group_by),
                 group_wait=defaults.group_wait, group_interval=defaults.group_interval,
                 repeat_interval=defaults.repeat_interval, send_resolved=defaults.send_resolved,
                 mute_times=tuple(getattr(defaults, "mute_times", ()) or ()))
    return _with_children(root, routes)


def _with_children(parent: Route, configs: list[RouteConfig]) -> Route:
    children = []
    seen: dict[str, int] = {}
    for config in configs:
        # Alertmanager's route key: the path of matchers from the root, numbered only among siblings
        # with the same matchers. It survives a reload that adds, removes or reorders other routes,
        # so the notification log (keyed by it) keeps a reload from notifying groups again.
        path = f"{parent.id}/{{{', '.join(str(matcher) for matcher in config.match)}}}"
        seen[path] = seen.get(path, 0) + 1
        node = Route(
            id=path if seen[path] == 1 else f"{path}#{seen[path]}",
            matchers=tuple(config.match),
            channels=tuple(config.channels) if config.channels is not None else parent.channels,
            group_by=tuple(config.group_by) if config.group_by is not None else parent.group_by,
            group_wait=config.group_wait if config.group_wait is not None else parent.group_wait,
            group_interval=config.group_interval if config.group_interval is not None else parent.group_interval,
            repeat_interval=config.repeat_interval if config.repeat_interval is not None else parent.repeat_interval,
            send_resolved=config.send_resolved if config.send_resolved is not None else parent.send_resolved,
            mute_times=tuple(config.mute_times) if config.mute_times is not None else parent.mute_times,
            continue_=config.continue_,
        )
        children.append(_with_children(node, config.routes))
    return Route(**{**parent.__dict__, "children": tuple(children)})


def match_routes(route: Route, labels: dict[str, str]) -> list[Route]:
    """The routes that handle an alert with ``labels`` (Alertmanager's ``Route.Match``)."""
    if not matches_all(route.matchers, labels):
        return []
    found: list[Route] = []
    for child in route.children:
        matched = match_routes(child, labels)
        found.extend(matched)
        if matched and not child.continue_:
            break
    return found or [route]
