"""``AlertLevel`` and the argument parsing of ``alert()`` (SPEC 3.5)."""

from __future__ import annotations

import datetime
import enum
import math
from typing import Any

__all__ = ["DEFAULT_WAIT_DURATION", "MAX_CHART_KEY", "AlertLevel", "parse_chart", "parse_level",
           "parse_wait_duration"]

DEFAULT_WAIT_DURATION = 60.0
MAX_CHART_KEY = 300
"""The longest metric key the service stores (the protocol's bound on a history key)."""


class AlertLevel(str, enum.Enum):  # noqa: UP042 - W&B's AlertLevel is a str Enum; StrEnum changes str()
    """Severity of an ``alert()`` call; the service receives ``info``, ``warning`` or ``error``."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"

    @property
    def wire(self) -> str:
        """The protocol's severity string."""
        return _WIRE[self]

    def __str__(self) -> str:
        return self.value


_WIRE = {AlertLevel.INFO: "info", AlertLevel.WARN: "warning", AlertLevel.ERROR: "error"}
_ALIASES = {
    "info": AlertLevel.INFO,
    "warn": AlertLevel.WARN,
    "warning": AlertLevel.WARN,
    "error": AlertLevel.ERROR,
}


def parse_level(level: Any) -> AlertLevel:
    """``AlertLevel`` or a case-insensitive string (``"warning"`` = WARN); None means INFO."""
    if level is None:
        return AlertLevel.INFO
    if isinstance(level, AlertLevel):
        return level
    if isinstance(level, str):
        found = _ALIASES.get(level.strip().lower())
        if found is not None:
            return found
    raise ValueError(
        f"alert level must be runwatch.AlertLevel.INFO/WARN/ERROR or one of 'info', 'warn', "
        f"'warning', 'error' (any case), got {level!r}"
    )


def parse_wait_duration(wait_duration: Any) -> float:
    """Seconds (int/float) or ``timedelta``; None means 60 s; 0 means no throttling; < 0 is an error."""
    if wait_duration is None:
        return DEFAULT_WAIT_DURATION
    if isinstance(wait_duration, datetime.timedelta):
        seconds = wait_duration.total_seconds()
    elif isinstance(wait_duration, (int, float)) and not isinstance(wait_duration, bool):
        seconds = float(wait_duration)
    else:
        raise TypeError(
            f"wait_duration must be seconds (int/float) or a datetime.timedelta, "
            f"got {type(wait_duration).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"wait_duration must be a finite number of seconds >= 0, got {wait_duration!r}")
    return seconds


def parse_chart(chart: Any) -> str | None:
    """The metric key whose chart the alert carries (``alert(chart=...)``), or None for no chart.

    Checked here, in the caller, because the service rejects a batch with a bad one: a mistake must
    fail the call, never lose the alert in the sender thread."""
    if chart is None:
        return None
    if not isinstance(chart, str):
        raise TypeError(f"alert chart must be a metric key (str) logged by this run, got {type(chart).__name__}")
    if not chart:
        raise ValueError("alert chart must be a non-empty metric key logged by this run, got ''")
    if len(chart) > MAX_CHART_KEY:
        raise ValueError(f"alert chart must be a metric key of at most {MAX_CHART_KEY} characters, got {len(chart)}")
    return chart
