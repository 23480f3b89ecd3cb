"""Checks on the media objects the run page draws (docs/protocol.md, "Media encoding").

Most media is stored as sent. Two kinds are read field by field when drawn, so they are checked on the
way in, with bounded sizes and an error naming the offending field:

- ``{"_type": "histogram", "values": [n, ...], "bins": [edge, ...], "nonfinite": {"nan": n, ...}}``:
  1..512 finite counts, one more finite non-decreasing edge, optional non-negative NaN/±inf counts.
- a table with a ``chart`` spec (``runwatch.plot``): ``columns`` (strings), ``data`` (rows of exactly
  one cell per column, at most :data:`MAX_CHART_ROWS`), and ``chart`` with ``kind``, ``spec``,
  ``fields`` (role -> column name or null), ``title``, ``string_fields``, ``split_table``.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_BINS = 512
MAX_CHART_ROWS = 100_000
MAX_COLUMNS = 1_000
MAX_SPEC_ENTRIES = 64
MAX_TEXT = 1_000
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_NONFINITE_KEYS = ("nan", "inf", "-inf")

Loc = tuple[str | int, ...]


class MediaError(ValueError):
    """A media object that cannot be stored; ``loc`` is the path of the offending field inside it."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc


def check_media(kind: str, value: Any) -> None:
    """Raise :class:`MediaError` if ``value`` (of media ``kind``) is not a well-formed drawable object."""
    if kind == "histogram":
        _check_histogram(value)
    elif kind == "table" and isinstance(value, dict) and "chart" in value:
        _check_chart_table(value)


def _is_number(v: Any) -> bool:
    return (type(v) is int or type(v) is float) and math.isfinite(v)


def _check_histogram(value: dict[str, Any]) -> None:
    counts = value.get("values")
    if not isinstance(counts, list) or not 1 <= len(counts) <= MAX_BINS:
        raise MediaError(("values",), f"a histogram needs a list of 1 to {MAX_BINS} counts")
    for i, c in enumerate(counts):
        if not _is_number(c):
            raise MediaError(("values", i), f"histogram counts must be finite numbers, got {c!r:.50}")
    edges = value.get("bins")
    if not isinstance(edges, list) or len(edges) != len(counts) + 1:
        raise MediaError(("bins",), f"a histogram of {len(counts)} counts needs a list of {len(counts) + 1} bin edges")
    for i, e in enumerate(edges):
        if not _is_number(e):
            raise MediaError(("bins", i), f"bin edges must be finite numbers, got {e!r:.50}")
        if i and e < edges[i - 1]:
            raise MediaError(("bins", i), "bin edges must not decrease")
    nonfinite = value.get("nonfinite")
    if nonfinite is None:
        return
    if not isinstance(nonfinite, dict):
        raise MediaError(("nonfinite",), 'nonfinite must be an object like {"nan": 0, "inf": 0, "-inf": 0}')
    for key, n in nonfinite.items():
        if key not in _NONFINITE_KEYS:
            raise MediaError(("nonfinite", key), 'nonfinite counts are keyed "nan", "inf" and "-inf"')
        if type(n) is not int or n < 0:
            raise MediaError(("nonfinite", key), f"nonfinite counts must be non-negative integers, got {n!r:.50}")


def _check_text(value: Any, loc: Loc, *, nullable: bool = False, limit: int = MAX_TEXT) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str) or len(value) > limit:
        raise MediaError(loc, f"must be a string of at most {limit} characters" + (" or null" if nullable else ""))


def _check_chart_table(value: dict[str, Any]) -> None:
    columns = value.get("columns")
    if not isinstance(columns, list) or len(columns) > MAX_COLUMNS:
        raise MediaError(("columns",), f"a chart's table needs a list of at most {MAX_COLUMNS} column names")
    for i, name in enumerate(columns):
        _check_text(name, ("columns", i), limit=300)
    rows = value.get("data")
    if not isinstance(rows, list) or len(rows) > MAX_CHART_ROWS:
        raise MediaError(("data",), f"a chart's table needs a list of at most {MAX_CHART_ROWS} rows")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise MediaError(("data", i), f"each row needs one cell per column ({len(columns)})")
    chart = value["chart"]
    if not isinstance(chart, dict):
        raise MediaError(("chart",), "chart must be an object with kind, spec and fields")
    kind = chart.get("kind")
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise MediaError(("chart", "kind"), "chart kind must be a lowercase name like line, scatter or roc")
    _check_text(chart.get("spec", ""), ("chart", "spec"), limit=200)
    _check_text(chart.get("title"), ("chart", "title"), nullable=True)
    fields = chart.get("fields", {})
    if not isinstance(fields, dict) or len(fields) > MAX_SPEC_ENTRIES:
        raise MediaError(("chart", "fields"), f"fields must be an object of at most {MAX_SPEC_ENTRIES} entries")
    for role, column in fields.items():
        _check_text(role, ("chart", "fields", role), limit=100)
        _check_text(column, ("chart", "fields", role), nullable=True, limit=300)
    strings = chart.get("string_fields", {})
    if not isinstance(strings, dict) or len(strings) > MAX_SPEC_ENTRIES:
        raise MediaError(("chart", "string_fields"),
                         f"string_fields must be an object of at most {MAX_SPEC_ENTRIES} entries")
    for name, text in strings.items():
        _check_text(name, ("chart", "string_fields", name), limit=100)
        if isinstance(text, str):
            _check_text(text, ("chart", "string_fields", name))
        elif text is not None and not isinstance(text, (int, float, bool)):
            raise MediaError(("chart", "string_fields", name), "string_fields values must be strings or numbers")
    if not isinstance(chart.get("split_table", False), bool):
        raise MediaError(("chart", "split_table"), "split_table must be true or false")
