"""History export (SPEC §3.9, §8): every metric row of a run as a CSV or JSON byte stream.

Both formats read the store page by page (``Store.history_pages``) and encode each page as it comes, so
the memory an export takes is one page's, however long the run. Rows are chosen as ``Store.history``
chooses them: every step, or with ``keys`` only the steps that logged one of them (W&B's
``history(keys=...)``).

- CSV (W&B's column layout): a header ``_step,_timestamp,<keys>`` (the keys asked for, in that order,
  else every metric key of the run, sorted), one line per step; an empty cell where the step did not log
  the key; finite floats in ``repr`` form (they read back to the same float); ``NaN``, ``Infinity`` and
  ``-Infinity`` for the non-finite values (Python's ``float()`` and pandas read all three).
- JSON: an array of the row objects of the paged endpoint (``_step``, ``_timestamp``, ``_runtime`` and the
  keys the step logged; non-finite values spelled as strings), one object per line, so a client can
  decode it line by line while it downloads.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator
from typing import Any

import orjson

from alerts.presentation import history_row_json
from alerts.storage.base import Store

__all__ = ["history_csv", "history_json"]


async def history_csv(store: Store, run_pk: int, *, keys: list[str] | None, columns: list[str],
                      after_step: int = -1) -> AsyncIterator[bytes]:
    """The CSV export: ``columns`` name the key columns (a key the run never logged is an empty column)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180; keys may hold commas or quotes
    writer.writerow(["_step", "_timestamp", *columns])
    yield _take(buffer)
    async for page in store.history_pages(run_pk, keys=keys, after_step=after_step):
        writer.writerows([row["_step"], _cell(row["_timestamp"]), *[_cell(row.get(key)) for key in columns]]
                         for row in page)
        yield _take(buffer)


async def history_json(store: Store, run_pk: int, *, keys: list[str] | None,
                       after_step: int = -1) -> AsyncIterator[bytes]:
    """The JSON export: ``[`` and ``]`` on lines of their own, one row object per line between them.

    The comma goes before a row, not after it, so every line a chunk carries is complete: a client
    decoding line by line gets the last row of a page without waiting for the next page.
    """
    yield b"[\n"
    separator = b""
    async for page in store.history_pages(run_pk, keys=keys, after_step=after_step):
        lines = []
        for row in page:
            lines.append(separator + orjson.dumps(history_row_json(row)) + b"\n")
            separator = b","
        yield b"".join(lines)
    yield b"]\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _take(buffer: io.StringIO) -> bytes:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text.encode("utf-8")
