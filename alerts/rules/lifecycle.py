"""The alert lifecycle shared by every condition kind: inactive → pending → firing → resolved.

``for`` (consecutive evaluations, or a duration on the points' own timestamps) delays firing;
``keep_firing_for`` delays resolving; ``recover_when`` hysteresis arrives here as ``Verdict.recovered``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from alerts.model import Alert
from alerts.rules.conditions import Verdict
from alerts.rules.spec import RuleSpec


class Transition(Enum):
    FIRE = "fire"
    RESOLVE = "resolve"


@dataclass(slots=True)
class SeriesState:
    """Everything kept per (rule, run, metric key): bounded by the rule's window sizes."""

    eval_state: Any = None
    last_step: int = -1
    last_timestamp: float = float("-inf")
    pending_count: int = 0
    pending_since: float | None = None
    recovered_since: float | None = None
    alert: Alert | None = None
    """The firing alert, if any (persisted, so it survives restarts)."""

    @property
    def status(self) -> str:
        if self.alert is not None:
            return "firing"
        return "pending" if self.pending_count else "inactive"


def advance(spec: RuleSpec, state: SeriesState, verdict: Verdict, timestamp: float) -> Transition | None:
    """Apply one verdict; return the transition it causes, if any."""
    if state.alert is not None:
        if not verdict.recovered:
            state.recovered_since = None  # still failing, or inside the hysteresis band
            return None
        if state.recovered_since is None:
            state.recovered_since = timestamp
        if timestamp - state.recovered_since >= spec.keep_firing_for:
            state.recovered_since = None
            state.pending_count, state.pending_since = 0, None
            return Transition.RESOLVE
        return None
    if not verdict.holds:
        state.pending_count, state.pending_since = 0, None  # one good point resets `for`
        return None
    state.pending_count += 1
    if state.pending_since is None:
        state.pending_since = timestamp
    wait = spec.for_
    if isinstance(wait, int):
        met = state.pending_count >= max(1, wait)
    else:
        met = timestamp - state.pending_since >= wait
    return Transition.FIRE if met else None
