"""The sender's batch fast path (plain rows: one type check, one summary fold, one encoder call per
column) encodes exactly what the general per-row path does, in order, with the same summary."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import runwatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runwatch import values
from runwatch.sender import BARRIER, CONFIG, HISTORY, Barrier, Sender, _valid_records
from runwatch.summary import SummaryState
from runwatch.values import dumps, encode_history, encode_records, json_safe, normalize_row, plain_rows

START = 1_700_000_000.0

# Keys that hold the text the batch encoders split at, quotes, escapes and non-ASCII.
keys = st.one_of(
    st.sampled_from(["loss", "acc", "train/loss", '},{"seq":', "},{", '"', "\\", "\n", "é", "a.b"]),
    st.text(max_size=8),
)
plain_values = st.one_of(st.floats(-1e300, 1e300), st.integers(-(2**62), 2**62))  # sums stay finite
any_values = st.one_of(
    plain_values,
    st.floats(),  # NaN and ±inf: kept, as strings on the wire
    st.booleans(),
    st.integers(),  # beyond 64 bits too
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(keys, plain_values, max_size=3),  # nested: flattened with dots
)
plain_rows_st = st.lists(st.dictionaries(keys, plain_values, max_size=5), min_size=1, max_size=20)
any_rows_st = st.lists(st.dictionaries(keys, any_values, max_size=5), min_size=1, max_size=20)


def make_sender(tmp: Path, summary: SummaryState | None = None) -> Sender:
    return Sender(init_body={"project": "p", "id": "r"}, base_url="http://svc", run_dir=tmp, offline=True,
                  transport_factory=lambda: None,  # type: ignore[arg-type,return-value]
                  summary=summary or SummaryState(), start_time=START, max_queue_bytes=1 << 30)


def reference(rows: list[dict[str, Any]], summary: SummaryState) -> list[dict[str, Any]]:
    """The general path, one row at a time: what the sender encoded before the fast path."""
    out = []
    for i, row in enumerate(rows):
        data = normalize_row(row)
        summary.observe(data)
        ts = START + i / 7
        rec = {"seq": i + 1, "type": "history", "step": i, "timestamp": ts, "runtime": ts - START, "data": data}
        try:
            line = dumps(rec)
        except (TypeError, ValueError):
            line = dumps(json_safe(rec))
        out.append(json.loads(line))
    return out


def drained(rows: list[dict[str, Any]], tmp: Path, summary: SummaryState) -> list[dict[str, Any]]:
    sender = make_sender(tmp, summary)
    for i, row in enumerate(rows):
        sender.queue.append((HISTORY, i, START + i / 7, dict(row)))
    sender.drain()
    assert sender._seq == len(rows)
    return [json.loads(line) for line in sender._ready]


def same(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN in the summary (rows carry non-finite values as strings)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=any_rows_st)
def test_batch_drain_encodes_the_same_records_and_summary_as_the_row_path(rows: list[dict[str, Any]],
                                                                           tmp_path: Path) -> None:
    expected_summary, got_summary = SummaryState(), SummaryState()
    assert drained(rows, tmp_path, got_summary) == reference(rows, expected_summary)
    assert same(got_summary.values, expected_summary.values)


@settings(max_examples=200, deadline=None)
@given(rows=plain_rows_st)
def test_encode_history_is_byte_for_byte_encode_records(rows: list[dict[str, Any]]) -> None:
    assert plain_rows(rows)
    seqs = range(5, 5 + len(rows))
    steps = [3 * i for i in range(len(rows))]
    stamps = [START + i / 3 for i in range(len(rows))]
    runtimes = [t - START for t in stamps]
    recs = [{"seq": a, "type": "history", "step": b, "timestamp": c, "runtime": d, "data": e}
            for a, b, c, d, e in zip(seqs, steps, stamps, runtimes, rows, strict=True)]
    fast = encode_history(seqs, steps, stamps, runtimes, rows)
    lines = encode_records(recs)
    assert [json.loads(line) for line in lines] == recs
    assert fast is None or fast == lines  # None: a key held the split text; the caller takes encode_records
    if not any("}" in k for row in rows for k in row):
        assert fast == lines


def test_encode_history_declines_what_it_cannot_split() -> None:
    rows = [{"a},{b": 1.0}, {"x": 2.0}]
    assert encode_history(range(1, 3), [0, 1], [START, START], [0.0, 0.0], rows) is None
    assert encode_history(range(1, 2), [0], [math.nan], [0.0], [{"x": 1.0}]) is None


def test_encode_records_falls_back_when_a_nested_value_holds_the_boundary() -> None:
    recs = [{"seq": 1, "type": "config", "config": {"l": [{"seq": 1}, {"seq": 2}]}}, {"seq": 2, "type": "x"}]
    assert [json.loads(line) for line in encode_records(recs)] == recs


@pytest.mark.parametrize(
    ("rows", "plain"),
    [
        ([{"a": 1.0, "b": 2, "c": -0.0}], True),
        ([{}], True),
        ([{"a": 1.0}, {"b": True}], False),  # bool: sent as 0/1 by normalize
        ([{"a": math.nan}], False),
        ([{"a": math.inf}], False),
        ([{"a": -math.inf}, {"a": 1.0}], False),
        ([{"a": {"b": 1.0}}], False),  # nested: flattened by normalize
        ([{"a": "text"}], False),
        ([{"a": 10**400}], False),
        ([{"a": 1e308, "b": 1e308}], False),  # the sum overflows: only sends the row the general way
    ],
)
def test_plain_rows(rows: list[dict[str, Any]], plain: bool) -> None:
    assert plain_rows(rows) is plain


def test_float_subclasses_take_the_general_path() -> None:
    class F(float):
        def item(self) -> float:
            return float(self)

    assert not plain_rows([{"a": F(1.5)}])


def test_mixed_queue_keeps_order_seqs_and_barriers(tmp_path: Path) -> None:
    sender = make_sender(tmp_path)
    barrier = Barrier()
    sender.queue.extend([(HISTORY, 0, START, {"a": 1.0}), (HISTORY, 1, START, {"a": math.nan}),
                         (CONFIG, {"lr": 0.1}), (BARRIER, barrier), (HISTORY, 2, START, {"a": 3.0})])
    sender.drain()
    recs = [json.loads(line) for line in sender._ready]
    assert [(r["seq"], r["type"]) for r in recs] == [(1, "history"), (2, "history"), (3, "config"), (4, "history")]
    assert [r["data"]["a"] for r in recs if r["type"] == "history"] == [1.0, "NaN", 3.0]
    assert barrier.seq == 3
    assert sender._summary.values["a"] == 3.0


def test_without_orjson_the_stdlib_encoder_gives_the_same_records(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    rows = [{"acc": 0.5, "loss": 1e-05, "epoch": 3}, {"acc": 1e16, "x": math.inf}, {"é": -2}]
    with_default = drained(rows, tmp_path / "a", SummaryState())
    monkeypatch.setattr(values, "_batch_dumps", values.dumps)
    assert drained(rows, tmp_path / "b", SummaryState()) == with_default == reference(rows, SummaryState())


def test_summary_rules_still_apply_on_the_batch_path(tmp_path: Path) -> None:
    summary = SummaryState()
    summary.define("loss", "min")
    summary.define("acc", "mean")
    drained([{"loss": 3.0, "acc": 1.0}, {"loss": 1.0, "acc": 2.0}, {"loss": 2.0, "acc": 6.0}], tmp_path, summary)
    assert summary.values == {"loss": 1.0, "acc": 3.0}


def test_replay_skips_a_corrupt_record_line_and_keeps_the_rest() -> None:
    good = [b'{"seq":1,"type":"history","step":0,"data":{}}', b'{"seq":3,"type":"history","step":1,"data":{}}']
    torn = b'{"seq":2,"type":"hist{"seq":9,"type":"history"}'  # a torn line a later process appended to
    assert _valid_records([good[0], torn, good[1]]) == (good, 3)
    assert _valid_records(good) == (good, 3)


def test_no_linger_by_default() -> None:
    # The first record on an idle link goes out at once; batches form while a request is in flight.
    assert runwatch.Settings().linger == 0.0
