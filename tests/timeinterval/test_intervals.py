"""Time intervals: each field, midnight-crossing times, time zones across DST, mute_times tables, errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from alerts.timeinterval.intervals import MuteTimes, TimeInterval, TimeRange, is_muted, parse_mute_times

BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def interval(**fields: Any) -> TimeInterval:
    return TimeInterval.model_validate(fields)


def test_empty_interval_holds_always() -> None:
    assert interval().contains(utc(2026, 1, 1, 0, 0))
    assert interval().contains(utc(2031, 7, 9, 13, 37))


def test_time_range_parse() -> None:
    assert TimeRange.parse("09:00-17:30") == TimeRange(start=540, end=1050)
    assert TimeRange.parse(" 9:05 - 17:30 ") == TimeRange(start=545, end=1050)
    assert TimeRange.parse("22:00-07:00") == TimeRange(start=1320, end=420)
    assert TimeRange.parse("22:00-24:00") == TimeRange.parse("22:00-00:00") == TimeRange(start=1320, end=1440)
    assert TimeRange.parse("00:00-24:00").contains(0) and TimeRange.parse("00:00-24:00").contains(1439)
    assert str(TimeRange.parse("22:00-07:00")) == "22:00-07:00"


@pytest.mark.parametrize("text", ["", "22:00", "7-8", "22:00-7", "24:00-07:00", "10:60-11:00", "10:00-24:01",
                                  "25:00-01:00", "10:00-10:00", "ab:cd-ef:gh", "10:00-11:00-12:00"])
def test_time_range_errors(text: str) -> None:
    with pytest.raises(ValueError, match=f"invalid time range '{text}': .*expected HH:MM-HH:MM"):
        TimeRange.parse(text)


def test_times_end_is_exclusive() -> None:
    office = interval(times=["09:00-17:00"])
    assert not office.contains(utc(2026, 1, 5, 8, 59))
    assert office.contains(utc(2026, 1, 5, 9, 0))
    assert office.contains(utc(2026, 1, 5, 16, 59, 59))
    assert not office.contains(utc(2026, 1, 5, 17, 0))


def test_times_crossing_midnight_mean_two_ranges() -> None:
    night = interval(times=["22:00-07:00"])
    assert night.contains(utc(2026, 1, 5, 22, 0))
    assert night.contains(utc(2026, 1, 5, 23, 59))
    assert night.contains(utc(2026, 1, 6, 0, 0))
    assert night.contains(utc(2026, 1, 6, 6, 59))
    assert not night.contains(utc(2026, 1, 6, 7, 0))
    assert not night.contains(utc(2026, 1, 6, 12, 0))
    assert not night.contains(utc(2026, 1, 6, 21, 59))


def test_several_times_any_holds() -> None:
    breaks = interval(times=["12:00-13:00", "15:00-15:15"])
    assert breaks.contains(utc(2026, 1, 5, 12, 30)) and breaks.contains(utc(2026, 1, 5, 15, 10))
    assert not breaks.contains(utc(2026, 1, 5, 14, 0))


def test_alertmanager_time_form() -> None:
    assert interval(times=[{"start_time": "22:00", "end_time": "07:00"}]).times == ["22:00-07:00"]


@pytest.mark.parametrize(("weekdays", "holds_on"), [
    (["monday"], {0}),
    (["mon", "wed", "Sunday"], {0, 2, 6}),
    (["mon-fri"], {0, 1, 2, 3, 4}),
    (["monday:friday"], {0, 1, 2, 3, 4}),
    (["sat-sun"], {5, 6}),
    (["fri-mon"], {4, 5, 6, 0}),  # wraps around the week
    (["tue-tue", "thu"], {1, 3}),
])
def test_weekdays(weekdays: list[str], holds_on: set[int]) -> None:
    days = interval(weekdays=weekdays)
    monday = utc(2026, 1, 5, 12, 0)
    assert {offset for offset in range(7) if days.contains(monday + timedelta(days=offset))} == holds_on


def test_weekday_and_night_are_checked_on_the_same_local_day() -> None:
    weeknights = interval(weekdays=["mon-fri"], times=["22:00-07:00"])
    assert weeknights.contains(utc(2026, 1, 9, 23, 0))  # Friday 23:00
    assert not weeknights.contains(utc(2026, 1, 10, 3, 0))  # Saturday 03:00
    assert weeknights.contains(utc(2026, 1, 12, 3, 0))  # Monday 03:00
    assert not weeknights.contains(utc(2026, 1, 12, 12, 0))  # Monday noon


@pytest.mark.parametrize(("days", "holds"), [
    (["1"], {1}),
    (["1:5"], {1, 2, 3, 4, 5}),
    (["-1"], {28}),  # February 2026 has 28 days
    (["-3:-1"], {26, 27, 28}),
    (["27:-1"], {27, 28}),
    (["1:-27"], {1, 2}),
    (["30", "31"], set()),  # February has neither
    ([1, 15], {1, 15}),  # YAML ints
])
def test_days_of_month(days: list[Any], holds: set[int]) -> None:
    every = interval(days_of_month=days)
    assert {day for day in range(1, 29) if every.contains(utc(2026, 2, day, 12, 0))} == holds


def test_last_day_follows_the_month_length() -> None:
    last = interval(days_of_month=["-1"])
    assert last.contains(utc(2028, 2, 29)) and not last.contains(utc(2028, 2, 28))
    assert last.contains(utc(2026, 4, 30)) and last.contains(utc(2026, 12, 31))
    assert not last.contains(utc(2026, 12, 30))


@pytest.mark.parametrize(("months", "holds"), [
    (["january"], {1}),
    (["jan", "March"], {1, 3}),
    (["january:march"], {1, 2, 3}),
    (["1:3"], {1, 2, 3}),
    (["1-3", "12"], {1, 2, 3, 12}),
    (["nov:feb"], {11, 12, 1, 2}),  # wraps around the year
    ([7], {7}),
])
def test_months(months: list[Any], holds: set[int]) -> None:
    some = interval(months=months)
    assert {month for month in range(1, 13) if some.contains(utc(2026, month, 10))} == holds


def test_years() -> None:
    some = interval(years=["2026:2027", "2030", 2032])
    assert [year for year in range(2025, 2034) if some.contains(utc(year, 6, 1))] == [2026, 2027, 2030, 2032]


def test_all_fields_must_hold() -> None:
    xmas = interval(months=["december"], days_of_month=["24:26"], years=["2026"], times=["00:00-24:00"])
    assert xmas.contains(utc(2026, 12, 25, 10))
    assert not xmas.contains(utc(2027, 12, 25, 10))
    assert not xmas.contains(utc(2026, 11, 25, 10))
    assert not xmas.contains(utc(2026, 12, 27, 10))


def test_location_converts_before_checking() -> None:
    tokyo_morning = interval(times=["08:00-09:00"], weekdays=["monday"], location="Asia/Tokyo")
    assert tokyo_morning.contains(utc(2026, 1, 4, 23, 30))  # Sunday in UTC, Monday 08:30 in Tokyo
    assert not tokyo_morning.contains(utc(2026, 1, 5, 23, 30))  # Monday in UTC, Tuesday in Tokyo
    assert not tokyo_morning.contains(utc(2026, 1, 5, 8, 30))  # 08:30 UTC is 17:30 in Tokyo
    # The zone the moment is given in does not matter, only the instant.
    assert tokyo_morning.contains(utc(2026, 1, 4, 23, 30).astimezone(ZoneInfo("America/New_York")))


def test_dst_day_in_berlin() -> None:
    # Berlin switches from CET (UTC+1) to CEST (UTC+2) at 02:00 local on Sunday 2026-03-29.
    night = interval(times=["22:00-07:00"], location="Europe/Berlin")
    assert night.contains(utc(2026, 3, 28, 21, 0))  # Saturday 22:00 CET
    assert not night.contains(utc(2026, 3, 28, 20, 59))
    assert night.contains(utc(2026, 3, 29, 4, 59))  # 06:59 CEST
    assert not night.contains(utc(2026, 3, 29, 5, 0))  # 07:00 CEST: the night ends an hour earlier in UTC
    assert night.contains(utc(2026, 3, 22, 5, 30))  # a week before: 06:30 CET, still night
    # ...and back to CET on 2026-10-25.
    assert night.contains(utc(2026, 10, 25, 5, 59))  # 06:59 CET
    assert not night.contains(utc(2026, 10, 25, 6, 0))
    sunday = interval(weekdays=["sunday"], location="Europe/Berlin")
    assert sunday.contains(utc(2026, 3, 28, 23, 0))  # Sunday 00:00 CET
    assert not sunday.contains(utc(2026, 3, 29, 22, 0))  # Monday 00:00 CEST


def test_naive_moment_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a host whose local zone is UTC, "naive means local" would pass too: run it in another zone.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        night = interval(times=["22:00-23:00"], location="Europe/Berlin")
        assert night.contains(datetime(2026, 1, 5, 21, 30))
        assert not night.contains(datetime(2026, 1, 5, 22, 30))
    finally:
        monkeypatch.undo()
        time.tzset()


def test_dump_keeps_the_written_form() -> None:
    data = {"times": ["22:00-07:00"], "weekdays": ["mon-fri"], "days_of_month": ["1:5"], "months": ["jan"],
            "years": ["2026"], "location": "Europe/Berlin"}
    night = interval(**data)
    assert night.model_dump() == data
    assert TimeInterval.model_validate_json(night.model_dump_json()).contains(utc(2026, 1, 5, 22))


@pytest.mark.parametrize(("fields", "message"), [
    ({"weekdays": ["mondey"]}, "invalid weekday 'mondey': expected monday..sunday or mon..sun, ranges like mon-fri"),
    ({"weekdays": ["mon-fir"]}, "invalid weekday 'mon-fir'"),
    ({"weekdays": ["mon-"]}, "invalid weekday 'mon-'"),
    ({"weekdays": ["1"]}, "invalid weekday '1'"),
    ({"times": ["22-07"]}, "invalid time range '22-07': expected HH:MM-HH:MM"),
    ({"days_of_month": ["0"]}, "invalid day of month '0': expected a day 1..31 or -31..-1"),
    ({"days_of_month": ["32"]}, "invalid day of month '32'"),
    ({"days_of_month": ["5:1"]}, "invalid day of month '5:1': the range starts after it ends"),
    ({"days_of_month": ["-1:-3"]}, "invalid day of month '-1:-3': the range starts after it ends"),
    ({"days_of_month": ["1:5:7"]}, "invalid day of month '1:5:7'"),
    ({"days_of_month": [65]}, 'invalid value 65 (an unquoted 1:5 in YAML is read as the number 65: quote ranges'),
    ({"months": ["13"]}, "invalid month '13': expected january..december, jan..dec or 1..12"),
    ({"months": ["janvier"]}, "invalid month 'janvier'"),
    ({"years": ["2027:2026"]}, "invalid year '2027:2026'"),
    ({"years": ["next"]}, "invalid year 'next': expected a year like 2026"),
    ({"location": "Mars/Olympus"}, "unknown location 'Mars/Olympus': expected an IANA time zone"),
    ({"location": "Europe"}, "unknown location 'Europe'"),
    ({"location": "../etc/passwd"}, "unknown location '../etc/passwd'"),
])
def test_validation_errors_name_the_value(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        interval(**fields)
    assert message in str(info.value)


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="days\n  Extra inputs are not permitted"):
        interval(days=["mon"])


SPEC_MUTE_TIMES = {"night": {"weekdays": ["mon-fri"], "times": ["22:00-07:00"], "location": "Europe/Berlin"}}


def test_parse_mute_times_single_or_list() -> None:
    table = parse_mute_times(SPEC_MUTE_TIMES | {
        "weekend": [{"weekdays": ["saturday", "sunday"]}, {"weekdays": ["friday"], "times": ["18:00-24:00"]}],
        "never": [],
    })
    assert [len(table[name]) for name in ("night", "weekend", "never")] == [1, 2, 0]
    friday_late = datetime(2026, 1, 9, 19, 0, tzinfo=BERLIN)
    assert is_muted(["weekend"], table, friday_late)
    assert not is_muted(["night"], table, friday_late)
    assert is_muted(["night", "weekend"], table, datetime(2026, 1, 9, 23, 0, tzinfo=BERLIN))
    assert not is_muted(["never"], table, friday_late)
    assert not is_muted([], table, friday_late)
    assert not is_muted(["unknown"], table, friday_late)


def test_mute_times_alias_holds_both_forms() -> None:
    raw: MuteTimes = {"one": TimeInterval(), "many": [TimeInterval(weekdays=["mon"])]}
    table = parse_mute_times(raw)
    assert table["one"] == [TimeInterval()] and table["many"] == [TimeInterval(weekdays=["mon"])]


def test_spec_night_in_berlin() -> None:
    table = parse_mute_times(SPEC_MUTE_TIMES)
    assert is_muted(["night"], table, utc(2026, 1, 5, 21, 30))  # Monday 22:30 CET
    assert not is_muted(["night"], table, utc(2026, 1, 5, 20, 30))  # Monday 21:30 CET
    assert not is_muted(["night"], table, utc(2026, 1, 10, 21, 30))  # Saturday


@pytest.mark.parametrize(("raw", "message"), [
    ({"night": {"weekdays": ["mondey"]}},
     "mute_times.night.weekdays: invalid weekday 'mondey': expected monday..sunday or mon..sun, ranges like mon-fri"),
    ({"night": [{}, {"times": ["7-9"]}]}, "mute_times.night[1].times: invalid time range '7-9'"),
    ({"night": {"location": "Berlin"}}, "mute_times.night.location: unknown location 'Berlin'"),
    ({"night": {"hours": ["22:00-07:00"]}}, "mute_times.night.hours: unknown field; expected times, weekdays"),
    ({"night": "22:00-07:00"}, "mute_times.night: expected an interval like"),
    ({"night": [None]}, "mute_times.night[0]: expected an interval like"),
    ({"": {}}, "mute_times: invalid interval name ''"),
])
def test_parse_mute_times_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_mute_times(raw)
    assert message in str(info.value)
