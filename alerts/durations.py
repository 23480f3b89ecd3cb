"""Durations as written in config and rule files: ``500ms``, ``30s``, ``5m``, ``4h``, ``1d`` (or seconds)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Spelled without \s and \d, so it means the same in JSON Schema (ECMA regexes) as here: schemas show it.
_SPACE = r"[ \t\n\r\f\v]*"
_DURATION = re.compile(rf"^{_SPACE}([0-9]+(?:\.[0-9]+)?){_SPACE}(ms|s|m|h|d){_SPACE}$")


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` naming the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 30s, 5m, 4h, 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 30s, 5m, 4h, 1d")
    if seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Shortest exact spelling of ``seconds`` in the config notation."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration),
                     WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                                               {"type": "string", "pattern": _DURATION.pattern}],
                                     "description": "seconds, or 500ms, 30s, 5m, 4h, 1d"})]
"""A pydantic field type: accepts the notation above, holds seconds as ``float``."""
