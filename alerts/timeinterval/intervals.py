"""Time intervals for quiet hours (Alertmanager's ``time_intervals``, used by a route's ``mute_times``).

An interval holds at a moment when every one of its non-empty fields holds, each evaluated on the
moment's wall clock in ``location`` (an IANA zone, default UTC); an empty field means "any", so ``{}``
holds always:

- ``times``: ``"HH:MM-HH:MM"``, end exclusive, ``24:00`` allowed as an end. A range that crosses
  midnight (``"22:00-07:00"``) is accepted and means the two ranges ``22:00-24:00`` and ``00:00-07:00``
  (Alertmanager requires writing both; quiet hours are easier to read as one). Each part is still checked
  against the other fields on its own day: with ``weekdays: [mon-fri]``, Friday 23:00 is inside, Saturday
  03:00 is not, Monday 03:00 is. Alertmanager's ``{start_time: "22:00", end_time: "07:00"}`` is accepted.
- ``weekdays``: ``monday``..``sunday`` or ``mon``..``sun``, ranges ``mon-fri`` or ``monday:friday``; a
  range may wrap around the week (``fri-mon``).
- ``days_of_month``: ``"1"``, ``"1:5"``; negative days count from the end (``"-1"`` is the last day,
  ``"-3:-1"`` the last three, ``"1:-1"`` the whole month). A day a month lacks never matches.
- ``months``: ``january``..``december``, ``jan``..``dec`` or ``1``..``12``, ranges ``january:march`` or
  ``1:3``; a range may wrap around the year (``nov:feb``).
- ``years``: ``"2026"``, ``"2026:2027"``.

Wall-clock evaluation makes DST transitions behave as people expect: ``07:00`` in Europe/Berlin is
05:00 UTC in summer and 06:00 UTC in winter.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = ["MuteTimes", "TimeInterval", "TimeRange", "is_muted", "parse_mute_times"]

_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = [name.lower() for name in calendar.month_name[1:]]
_DAY_MINUTES = 24 * 60

_TIME_RANGE = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_RANGE = re.compile(r"\s*([^\s:-]+)\s*(?:[:-]\s*([^\s:-]+)\s*)?")  # "mon", "mon-fri", "1:3"
_DAY_RANGE = re.compile(r"\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?")
_YEAR_RANGE = re.compile(r"\s*(\d+)\s*(?:[:-]\s*(\d+)\s*)?")

_EXPECT_TIMES = "expected HH:MM-HH:MM with 00:00..24:00, e.g. 09:00-17:00 or 22:00-07:00"
_EXPECT_WEEKDAY = "expected monday..sunday or mon..sun, ranges like mon-fri"
_EXPECT_DAY = "expected a day 1..31 or -31..-1 (-1 is the last day), or a range like 1:5 or -3:-1"
_EXPECT_MONTH = "expected january..december, jan..dec or 1..12, ranges like january:march or 1:3"
_EXPECT_YEAR = "expected a year like 2026 or a range like 2026:2027"
# PyYAML reads an unquoted 1:5 as the base-60 integer 65; say so instead of only "65 is not a day".
_YAML_HINT = ' (an unquoted 1:5 in YAML is read as the number 65: quote ranges, "1:5")'


class TimeRange(BaseModel):
    """A daily time range in minutes after midnight, from ``"HH:MM-HH:MM"``; ``end`` is exclusive.

    ``start > end`` crosses midnight: ``"22:00-07:00"`` holds from 22:00 to 24:00 and from 00:00 to 07:00.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: int = Field(ge=0, lt=_DAY_MINUTES)
    end: int = Field(gt=0, le=_DAY_MINUTES)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return _time_range_fields(data)
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> TimeRange:
        if self.start == self.end:
            raise ValueError(f"invalid time range {self}: start and end are equal; {_EXPECT_TIMES}")
        return self

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """``"22:00-07:00"`` → ``TimeRange(start=1320, end=420)``; ``ValueError`` names the bad text."""
        try:
            return cls.model_validate(text)
        except ValidationError as exc:
            raise ValueError(_first_message(exc)) from None

    def contains(self, minute: int) -> bool:
        """Whether ``minute`` after local midnight (0..1439) is inside the range."""
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


def _time_range_fields(text: str) -> dict[str, int]:
    found = _TIME_RANGE.fullmatch(text)
    if found is None:
        raise ValueError(f"invalid time range {text!r}: {_EXPECT_TIMES}")
    start_h, start_m, end_h, end_m = (int(part) for part in found.groups())
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start_m >= 60 or end_m >= 60 or start >= _DAY_MINUTES or end > _DAY_MINUTES:
        raise ValueError(f"invalid time range {text!r}: {_EXPECT_TIMES}")
    if start == end:
        raise ValueError(f"invalid time range {text!r}: start and end are equal; {_EXPECT_TIMES}")
    # "22:00-00:00" means until midnight, the same as "22:00-24:00".
    return {"start": start, "end": end or _DAY_MINUTES}


def _named(text: str, names: list[str], *, numbers: bool) -> int | None:
    """1-based index of a (possibly 3-letter) name, or of a number when ``numbers``; ``None`` if invalid."""
    lowered = text.lower()
    for index, name in enumerate(names):
        if lowered in (name, name[:3]):
            return index + 1
    if numbers and lowered.isdecimal() and 1 <= int(lowered) <= len(names):
        return int(lowered)
    return None


def _cyclic_set(item: str, names: list[str], *, numbers: bool, what: str, expected: str) -> set[int]:
    """The values a name or range stands for; a range whose end comes first wraps around."""
    found = _RANGE.fullmatch(item)
    first = _named(found.group(1), names, numbers=numbers) if found else None
    last = first if found and found.group(2) is None else (
        _named(found.group(2), names, numbers=numbers) if found else None)
    if first is None or last is None:
        raise ValueError(f"invalid {what} {item!r}: {expected}")
    if first <= last:
        return set(range(first, last + 1))
    return set(range(first, len(names) + 1)) | set(range(1, last + 1))


def _day_range(item: str) -> tuple[int, int]:
    found = _DAY_RANGE.fullmatch(item)
    if found is None:
        raise ValueError(f"invalid day of month {item!r}: {_EXPECT_DAY}")
    start = int(found.group(1))
    end = start if found.group(2) is None else int(found.group(2))
    if not all(1 <= abs(day) <= 31 for day in (start, end)):
        raise ValueError(f"invalid day of month {item!r}: {_EXPECT_DAY}")
    # With mixed signs the order depends on the month's length (1:-1), so only same-sign ranges are checked.
    if (start > 0) == (end > 0) and start > end:
        raise ValueError(f"invalid day of month {item!r}: the range starts after it ends; {_EXPECT_DAY}")
    return start, end


def _year_range(item: str) -> tuple[int, int]:
    found = _YEAR_RANGE.fullmatch(item)
    if found is None:
        raise ValueError(f"invalid year {item!r}: {_EXPECT_YEAR}")
    start = int(found.group(1))
    end = start if found.group(2) is None else int(found.group(2))
    if not (1 <= start <= end <= 9999):
        raise ValueError(f"invalid year {item!r}: {_EXPECT_YEAR}, with the start not after the end")
    return start, end


def _resolve_day(day: int, last: int) -> int:
    return last + 1 + day if day < 0 else day


def _zone(location: str) -> ZoneInfo:
    try:
        return ZoneInfo(location)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: e.g. "Europe" is a directory
        raise ValueError(f"unknown location {location!r}: expected an IANA time zone such as Europe/Berlin "
                         "or UTC") from None


class TimeInterval(BaseModel):
    """One interval of a ``mute_times`` entry; see the module docstring for the field forms.

    Fields keep the text the user wrote (so a dump reads like the config); the parsed form is built once
    at validation and used by :meth:`contains`.
    """

    model_config = ConfigDict(extra="forbid")

    times: list[str] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str] = Field(default_factory=list)
    months: list[str] = Field(default_factory=list)
    years: list[str] = Field(default_factory=list)
    location: str = "UTC"

    _times: list[TimeRange] = PrivateAttr(default_factory=list)
    _weekdays: set[int] = PrivateAttr(default_factory=set)
    _days: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _months: set[int] = PrivateAttr(default_factory=set)
    _years: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _zone: ZoneInfo = PrivateAttr(default_factory=lambda: ZoneInfo("UTC"))

    @field_validator("times", mode="before")
    @classmethod
    def _times_text(cls, value: Any) -> Any:
        # Alertmanager writes times as [{start_time: "22:00", end_time: "07:00"}]; keep configs portable.
        if isinstance(value, list):
            return [f"{item.get('start_time')}-{item.get('end_time')}"
                    if isinstance(item, Mapping) and set(item) == {"start_time", "end_time"} else item
                    for item in value]
        return value

    @field_validator("days_of_month", "months", "years", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any, info: ValidationInfo) -> Any:
        # YAML gives `days_of_month: [1, 15]` as ints; the fields are text so ranges and numbers mix.
        if not isinstance(value, list):
            return value
        texts: list[Any] = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                if item >= 60 and info.field_name != "years":
                    raise ValueError(f"invalid value {item}{_YAML_HINT}")
                texts.append(str(item))
            else:
                texts.append(item)
        return texts

    @field_validator("times")
    @classmethod
    def _check_times(cls, value: list[str]) -> list[str]:
        for item in value:
            _time_range_fields(item)
        return value

    @field_validator("weekdays")
    @classmethod
    def _check_weekdays(cls, value: list[str]) -> list[str]:
        for item in value:
            _cyclic_set(item, _DAYS, numbers=False, what="weekday", expected=_EXPECT_WEEKDAY)
        return value

    @field_validator("days_of_month")
    @classmethod
    def _check_days(cls, value: list[str]) -> list[str]:
        for item in value:
            _day_range(item)
        return value

    @field_validator("months")
    @classmethod
    def _check_months(cls, value: list[str]) -> list[str]:
        for item in value:
            _cyclic_set(item, _MONTHS, numbers=True, what="month", expected=_EXPECT_MONTH)
        return value

    @field_validator("years")
    @classmethod
    def _check_years(cls, value: list[str]) -> list[str]:
        for item in value:
            _year_range(item)
        return value

    @field_validator("location")
    @classmethod
    def _check_location(cls, value: str) -> str:
        _zone(value)
        return value

    def model_post_init(self, context: Any) -> None:
        self._times = [TimeRange.parse(item) for item in self.times]
        self._weekdays = set().union(*(
            _cyclic_set(item, _DAYS, numbers=False, what="weekday", expected="") for item in self.weekdays))
        self._days = [_day_range(item) for item in self.days_of_month]
        self._months = set().union(*(
            _cyclic_set(item, _MONTHS, numbers=True, what="month", expected="") for item in self.months))
        self._years = [_year_range(item) for item in self.years]
        self._zone = _zone(self.location)

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` falls in the interval, judged on the wall clock in ``location``.

        A naive ``moment`` is taken as UTC (never as the host's zone, which would make results depend
        on where the service runs).
        """
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        local = moment.astimezone(self._zone)
        if self._times and not any(r.contains(local.hour * 60 + local.minute) for r in self._times):
            return False
        if self._weekdays and local.isoweekday() not in self._weekdays:
            return False
        if self._days:
            last = calendar.monthrange(local.year, local.month)[1]
            if not any(_resolve_day(start, last) <= local.day <= _resolve_day(end, last)
                       for start, end in self._days):
                return False
        if self._months and local.month not in self._months:
            return False
        return not self._years or any(start <= local.year <= end for start, end in self._years)


MuteTimes = dict[str, list[TimeInterval] | TimeInterval]
"""The config's ``mute_times``: each name maps to one interval or a list of them (any one holding mutes)."""


def _first_message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return str(error["msg"]).removeprefix("Value error, ")


def _describe(exc: ValidationError, where: str) -> str:
    parts = []
    for error in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = ("unknown field; expected times, weekdays, days_of_month, months, years or location")
        parts.append(f"{where}{loc}: {message}")
    return "; ".join(parts)


def parse_mute_times(raw: Mapping[str, Any]) -> dict[str, list[TimeInterval]]:
    """``{name: interval or [intervals]}`` from the config, every value as a list.

    ``ValueError`` names the entry and the field (``mute_times.night[1].weekdays: invalid weekday ...``).
    """
    table: dict[str, list[TimeInterval]] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"mute_times: invalid interval name {name!r}: expected a non-empty string")
        many = isinstance(value, list | tuple)
        items = list(value) if many else [value]
        intervals: list[TimeInterval] = []
        for index, item in enumerate(items):
            where = f"mute_times.{name}" + (f"[{index}]" if many else "")
            if isinstance(item, TimeInterval):
                intervals.append(item)
                continue
            if not isinstance(item, Mapping):
                raise ValueError(f"{where}: expected an interval like {{weekdays: [mon-fri], times: "
                                 f'["22:00-07:00"]}} or a list of them, got {item!r}')
            try:
                intervals.append(TimeInterval.model_validate(item))
            except ValidationError as exc:
                raise ValueError(_describe(exc, where)) from None
        table[name] = intervals
    return table


def is_muted(names: Iterable[str], table: Mapping[str, list[TimeInterval]], moment: datetime) -> bool:
    """Whether any interval of any of the named entries contains ``moment``.

    Unknown names are ignored here: the config check reports them (``AlertsSettings``), and the
    notification path must not fail on them.
    """
    return any(interval.contains(moment) for name in names for interval in table.get(name, ()))
