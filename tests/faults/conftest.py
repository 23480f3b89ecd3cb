"""The fault suite's fixtures, and its report: every outage test records what was delivered and how long
recovery took, and the run ends with that table (the numbers a closing note quotes come from here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

_REPORT: list[dict[str, Any]] = []
_COLUMNS = ("outage", "channel", "notifications", "delivered", "doubled", "max attempts", "recovery s")


@pytest.fixture
def fault_report() -> Callable[..., None]:
    """``fault_report(outage=..., channel=..., ...)``: one row of the table printed after the run."""
    def record(**row: Any) -> None:
        _REPORT.append(row)
    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _REPORT:
        return
    terminalreporter.section("fault suite: outages")
    widths = [max(len(column), *(len(str(row.get(column, ""))) for row in _REPORT)) for column in _COLUMNS]
    terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)))
    for row in _REPORT:
        terminalreporter.write_line("  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(_COLUMNS, widths,
                                                                                             strict=True)))
