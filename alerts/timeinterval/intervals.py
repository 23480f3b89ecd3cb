"""Time intervals (Alertmanager's ``time_intervals``) for quiet hours.

An interval holds when every one of its non-empty fields holds: ``times`` (``"22:00-07:00"``; a range
that crosses midnight is accepted and means the two parts), ``weekdays`` (``monday``/``mon``, ranges
``mon-fri``), ``days_of_month`` (``"1:5"``, ``"-1"`` = the last day), ``months`` (names or numbers,
ranges ``january:march``), ``years`` (``"2026:2027"``), evaluated in ``location`` (an IANA zone).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = [m.lower() for m in calendar.month_name[1:]]


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    value = int(hours) * 60 + int(minutes)
    if not (0 <= int(minutes) < 60 and 0 <= value <= 24 * 60):
        raise ValueError
    return value


def _time_range(text: str) -> list[tuple[int, int]]:
    try:
        start_text, end_text = text.split("-")
        start, end = _minutes(start_text.strip()), _minutes(end_text.strip())
    except ValueError:
        raise ValueError(f"invalid time range {text!r}: expected HH:MM-HH:MM, e.g. 22:00-07:00") from None
    if start == end:
        raise ValueError(f"invalid time range {text!r}: start and end are equal")
    return [(start, end)] if start < end else [(start, 24 * 60), (0, end)]


def _named(value: str, names: list[str], what: str, example: str) -> int:
    text = value.strip().lower()
    for index, name in enumerate(names):
        if text in (name, name[:3]):
            return index + 1
    if text.isdigit() and what == "month" and 1 <= int(text) <= 12:
        return int(text)
    raise ValueError(f"invalid {what} {value!r}: expected {example}")


def _ranges(items: list[str], parse: Any, separators: str) -> list[tuple[int, int]]:
    found = []
    for item in items:
        for sep in separators:
            if sep in item.strip()[1:]:
                head, _, tail = item.strip().partition(sep) if not item.strip().startswith("-") else \
                    ("-" + item.strip()[1:].partition(sep)[0], sep, item.strip()[1:].partition(sep)[2])
                found.append((parse(head), parse(tail)))
                break
        else:
            value = parse(item)
            found.append((value, value))
    return found


class TimeInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    times: list[str] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str] = Field(default_factory=list)
    months: list[str] = Field(default_factory=list)
    years: list[str] = Field(default_factory=list)
    location: str = "UTC"

    @field_validator("times")
    @classmethod
    def _times(cls, value: list[str]) -> list[str]:
        for item in value:
            _time_range(item)
        return value

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[str]) -> list[str]:
        _ranges(value, lambda t: _named(t, _DAYS, "weekday", "monday..sunday or mon..sun, ranges like mon-fri"),
                "-:")
        return value

    @field_validator("months")
    @classmethod
    def _months(cls, value: list[str]) -> list[str]:
        _ranges(value, lambda t: _named(t, _MONTHS, "month", "january..december, jan..dec or 1..12"), ":-")
        return value

    @field_validator("days_of_month", "years")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        for item in value:
            for part in str(item).lstrip("-").split(":"):
                if not part.strip().lstrip("-").isdigit():
                    raise ValueError(f"invalid value {item!r}: expected a number or a range like 1:5")
        return value

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown location {value!r}: expected an IANA time zone such as Europe/Berlin") \
                from None
        return value

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.location))
        if self.times:
            minute = local.hour * 60 + local.minute
            if not any(start <= minute < end for item in self.times for start, end in _time_range(item)):
                return False
        if self.weekdays:
            day = local.isoweekday()
            pairs = _ranges(self.weekdays, lambda t: _named(t, _DAYS, "weekday", ""), "-:")
            if not any(start <= day <= end for start, end in pairs):
                return False
        if self.days_of_month:
            last = calendar.monthrange(local.year, local.month)[1]

            def day_number(text: str) -> int:
                value = int(text)
                return last + 1 + value if value < 0 else value

            pairs = _ranges([str(d) for d in self.days_of_month], day_number, ":")
            if not any(start <= local.day <= end for start, end in pairs):
                return False
        if self.months:
            pairs = _ranges(self.months, lambda t: _named(t, _MONTHS, "month", ""), ":-")
            if not any(start <= local.month <= end for start, end in pairs):
                return False
        if self.years:
            pairs = _ranges([str(y) for y in self.years], int, ":")
            if not any(start <= local.year <= end for start, end in pairs):
                return False
        return True


def parse_mute_times(raw: Mapping[str, Any]) -> dict[str, list[TimeInterval]]:
    """``{name: interval or [intervals]}`` from the config; ``ValueError`` names the bad entry."""
    table: dict[str, list[TimeInterval]] = {}
    for name, value in raw.items():
        items = value if isinstance(value, list) else [value]
        try:
            table[name] = [item if isinstance(item, TimeInterval) else TimeInterval.model_validate(item)
                           for item in items]
        except Exception as exc:
            messages = getattr(exc, "errors", None)
            detail = "; ".join(e["msg"].removeprefix("Value error, ") for e in messages()) if messages else str(exc)
            raise ValueError(f"mute_times.{name}: {detail}") from None
    return table


def is_muted(names: Iterable[str], table: Mapping[str, list[TimeInterval]], moment: datetime) -> bool:
    return any(interval.contains(moment) for name in names for interval in table.get(name, ()))
