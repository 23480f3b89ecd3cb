"""``alert()`` (SPEC 3.5): levels, wait_duration, usage errors."""

from __future__ import annotations

import datetime

import pytest
import runwatch
from _sdkutil import offline, spool_lines
from runwatch.alert import parse_level, parse_wait_duration


def test_alert_before_init_raises_error_naming_init() -> None:
    with pytest.raises(runwatch.Error, match=r"call runwatch.init\(\) first"):
        runwatch.alert("t", "x")
    with pytest.raises(runwatch.Error, match=r"runwatch.init\(\)"):
        runwatch.log({"a": 1})
    with pytest.raises(runwatch.Error):
        runwatch.finish()
    assert runwatch.run is None


def test_alert_after_finish_raises_usage_error() -> None:
    run = offline()
    run.finish()
    with pytest.raises(runwatch.UsageError):
        run.alert("t", "x")
    with pytest.raises(runwatch.UsageError):
        runwatch.alert("t", "x")
    with pytest.raises(runwatch.UsageError):
        run.log({"a": 1})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, runwatch.AlertLevel.INFO),
        ("info", runwatch.AlertLevel.INFO),
        ("WARN", runwatch.AlertLevel.WARN),
        ("Warning", runwatch.AlertLevel.WARN),
        ("error", runwatch.AlertLevel.ERROR),
        (runwatch.AlertLevel.ERROR, runwatch.AlertLevel.ERROR),
    ],
)
def test_level_parsing(given: object, expected: runwatch.AlertLevel) -> None:
    assert parse_level(given) is expected


def test_level_values_and_wire_names() -> None:
    assert [lv.value for lv in runwatch.AlertLevel] == ["INFO", "WARN", "ERROR"]
    assert [lv.wire for lv in runwatch.AlertLevel] == ["info", "warning", "error"]
    with pytest.raises(ValueError):
        parse_level("critical")


def test_wait_duration_parsing() -> None:
    assert parse_wait_duration(None) == 60.0
    assert parse_wait_duration(0) == 0.0
    assert parse_wait_duration(2.5) == 2.5
    assert parse_wait_duration(datetime.timedelta(minutes=5)) == 300.0
    with pytest.raises(ValueError):
        parse_wait_duration(-1)
    with pytest.raises(ValueError):
        parse_wait_duration(datetime.timedelta(seconds=-1))
    with pytest.raises(TypeError):
        parse_wait_duration("60")


def test_alert_record_in_offline_spool() -> None:
    ids = iter(["uuid-1", "uuid-2"])
    run = runwatch.init(
        project="p", mode="offline", settings={"console": False, "signals": False}, new_uuid=lambda: next(ids)
    )
    run.log({"a": 1})
    runwatch.alert("Low acc", "acc < 0.3", level="warning", wait_duration=datetime.timedelta(seconds=0))
    run.alert("Again", "x")
    with pytest.raises(ValueError):
        run.alert("bad", "x", wait_duration=-5)
    run.finish()
    alerts = [r["alert"] for r in spool_lines(run) if r.get("type") == "alert"]
    assert [(a["id"], a["title"], a["level"], a["wait_duration"], a["step"], a["delayed"]) for a in alerts] == [
        ("uuid-1", "Low acc", "warning", 0.0, 0, False),  # the step that was just logged
        ("uuid-2", "Again", "info", 60.0, 0, False),
    ]


def test_alert_chart_names_a_metric_key_and_is_keyword_only() -> None:
    ids = iter(["uuid-1", "uuid-2", "uuid-3"])
    run = offline(new_uuid=lambda: next(ids))
    run.log({"val/acc": 0.2})
    run.alert("Low acc", "acc < 0.3", chart="val/acc")
    runwatch.alert("Typo", "never logged: the alert goes, without a chart", chart="val/acc_typo")
    runwatch.alert("No chart", "as before")
    with pytest.raises(TypeError, match="positional arguments"):  # keyword-only: W&B's signature stays
        run.alert("t", "x", None, None, "val/acc")  # type: ignore[misc]
    run.finish()
    alerts = [r["alert"] for r in spool_lines(run) if r.get("type") == "alert"]
    assert [(a["title"], a.get("chart")) for a in alerts] == [
        ("Low acc", "val/acc"), ("Typo", "val/acc_typo"), ("No chart", None)]
    assert "chart" not in alerts[2]  # without chart= the call is what older services know


@pytest.mark.parametrize(
    ("chart", "error", "message"),
    [
        (3, TypeError, r"alert chart must be a metric key \(str\).*got int"),
        (["val/acc"], TypeError, r"alert chart must be a metric key \(str\).*got list"),
        ("", ValueError, r"alert chart must be a non-empty metric key"),
        ("k" * 301, ValueError, r"alert chart must be a metric key of at most 300 characters, got 301"),
    ],
)
def test_bad_chart_fails_the_call_and_nothing_else(chart: object, error: type[Exception], message: str) -> None:
    run = offline()
    with pytest.raises(error, match=message):
        run.alert("t", "x", chart=chart)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        runwatch.alert("t", "x", chart=chart)  # type: ignore[arg-type]
    run.alert("after", "the sender still works", chart="k" * 300)
    run.finish()
    alerts = [r["alert"] for r in spool_lines(run) if r.get("type") == "alert"]
    assert [(a["title"], len(a["chart"])) for a in alerts] == [("after", 300)]
