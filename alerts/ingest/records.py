"""Decode the SDK's run records (docs/protocol.md) into a :class:`RecordBatch` for the store.

Metric values are numbers, booleans or the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
anything else (tables, images, histograms, charts, text, lists) is media, stored but never evaluated
by rules; the kinds the run page draws are checked first (``alerts.ingest.media``).
"""

from __future__ import annotations

import math
from typing import Any

from alerts.ingest.media import MediaError, check_media
from alerts.ingest.protocol import ConfigRecord, ExitRecord, HistoryRecord, PreemptingRecord, Record, SummaryRecord
from alerts.model import RunState
from alerts.storage.base import RecordBatch, RunExit

PREEMPTING = "preempting"
"""The reason of the run event ``mark_preempting()`` stores; a run that then goes silent was preempted."""

_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class RecordError(ValueError):
    """A record that cannot be applied; ``loc`` names the offending field of the request body."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def decode_value(value: Any) -> float | None:
    """The float a metric value stands for, or None if the value is media."""
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float: what IEEE arithmetic would make of it
            return math.inf if value > 0 else -math.inf
    if type(value) is bool:
        return 1.0 if value else 0.0
    if type(value) is str:
        return _SPECIAL_FLOATS.get(value)
    return None


def media_kind(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("_type"), str):
        return str(value["_type"])[:32]
    return "json"


def build_batch(records: list[Record], *, last_seq: int, delayed: bool = False) -> RecordBatch | None:
    """Records after ``last_seq`` as one batch; None if all were already applied (a re-sent batch).

    Raises :class:`RecordError` when seqs are not consecutive from ``last_seq + 1``: a gap means the
    client lost records, which must not be papered over.
    """
    fresh = [(index, record) for index, record in enumerate(records) if record.seq > last_seq]
    if not fresh:
        return None
    expected = last_seq + 1
    for index, record in fresh:
        if record.seq != expected:
            raise RecordError(("body", "records", index, "seq"),
                              f"expected seq {expected}, got {record.seq}: records must be consecutive")
        expected += 1
    batch = RecordBatch(first_seq=fresh[0][1].seq, last_seq=fresh[-1][1].seq, delayed=delayed)
    for index, record in fresh:
        if batch.exit is not None:
            raise RecordError(("body", "records", index, "type"), "no record may follow the exit record")
        if isinstance(record, HistoryRecord):
            _add_history(batch, record, index)
        elif isinstance(record, ConfigRecord):
            batch.config = record.config
        elif isinstance(record, SummaryRecord):
            batch.summary = record.summary
        elif isinstance(record, ExitRecord):
            batch.exit = RunExit(state=RunState(record.state), exit_code=record.exit_code, reason=record.reason,
                                 console_tail=record.console_tail, at=record.timestamp)
        elif isinstance(record, PreemptingRecord):
            batch.events.append((PREEMPTING, record.timestamp))
    return batch


def _add_history(batch: RecordBatch, record: HistoryRecord, index: int) -> None:
    step, timestamp = record.step, record.timestamp
    batch.steps.append((step, timestamp, record.runtime))
    points, media = batch.points, batch.media
    for key, value in record.data.items():
        number = decode_value(value)
        if number is not None:
            points.append((key, step, timestamp, number))
        else:
            kind = media_kind(value)
            try:
                check_media(kind, value)
            except MediaError as exc:
                raise RecordError(("body", "records", index, "data", key, *exc.loc), f"{kind} {key!r}: {exc}") from None
            media.append((key, step, kind, value))
