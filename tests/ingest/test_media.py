"""Histograms and charts are checked on the way in: bounded, and a bad one is refused naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.ingest.protocol import RecordsBody
from alerts.ingest.records import RecordError, build_batch

HISTOGRAM = {"_type": "histogram", "values": [1, 2], "bins": [0.0, 0.5, 1.0], "nonfinite": {"nan": 1}}
CHART = {"_type": "table", "columns": ["x", "y"], "data": [[0, 1.0], [1, "NaN"]],
         "chart": {"kind": "line", "spec": "wandb/line/v0", "fields": {"x": "x", "y": "y", "stroke": None},
                   "title": "T", "string_fields": {"title": "T"}, "split_table": False}}


def batch(*values: Any) -> Any:
    records = [{"seq": i + 1, "type": "history", "step": i, "timestamp": 1.0, "data": {"m": v}}
               for i, v in enumerate(values)]
    return build_batch(RecordsBody.model_validate({"records": records}).records, last_seq=0)


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def chart_with(**changes: Any) -> dict[str, Any]:
    return {**CHART, "chart": {**CHART["chart"], **changes}}


def test_good_histograms_and_charts_are_stored_as_sent() -> None:
    found = batch(HISTOGRAM, CHART, with_(HISTOGRAM, nonfinite=None), {"_type": "table", "columns": [], "data": [[1]]})
    assert [(key, step, kind) for key, step, kind, _ in found.media] == [
        ("m", 0, "histogram"), ("m", 1, "table"), ("m", 2, "histogram"), ("m", 3, "table")]
    assert found.media[1][3] == CHART


@pytest.mark.parametrize(("value", "loc", "message"), [
    (with_(HISTOGRAM, values=[]), ["values"], "1 to 512 counts"),
    (with_(HISTOGRAM, values=[1] * 513, bins=list(range(514))), ["values"], "1 to 512 counts"),
    (with_(HISTOGRAM, values=[1, "NaN"]), ["values", 1], "finite numbers"),
    (with_(HISTOGRAM, values=[1, True]), ["values", 1], "finite numbers"),
    (with_(HISTOGRAM, bins=[0, 1]), ["bins"], "needs a list of 3 bin edges"),
    (with_(HISTOGRAM, bins=[0, 2, 1]), ["bins", 2], "must not decrease"),
    (with_(HISTOGRAM, bins=[0, 1, "Infinity"]), ["bins", 2], "finite numbers"),
    (with_(HISTOGRAM, nonfinite=[1]), ["nonfinite"], "must be an object"),
    (with_(HISTOGRAM, nonfinite={"nan": -1}), ["nonfinite", "nan"], "non-negative integers"),
    (with_(HISTOGRAM, nonfinite={"big": 1}), ["nonfinite", "big"], 'keyed "nan"'),
    (with_(CHART, columns="x"), ["columns"], "list of at most"),
    (with_(CHART, columns=["x", 3]), ["columns", 1], "must be a string"),
    (with_(CHART, data=[[0, 1.0], [1]]), ["data", 1], "one cell per column (2)"),
    (with_(CHART, data=[[0, 1]] * 100_001), ["data"], "at most 100000 rows"),
    (with_(CHART, chart="line"), ["chart"], "must be an object"),
    (chart_with(kind="Line Chart"), ["chart", "kind"], "lowercase name"),
    (chart_with(kind=None), ["chart", "kind"], "lowercase name"),
    (chart_with(title="t" * 1001), ["chart", "title"], "at most 1000 characters"),
    (chart_with(fields={"x": 1}), ["chart", "fields", "x"], "string of at most 300"),
    (chart_with(fields={f"f{i}": "x" for i in range(65)}), ["chart", "fields"], "at most 64 entries"),
    (chart_with(string_fields={"title": ["x"]}), ["chart", "string_fields", "title"], "strings or numbers"),
    (chart_with(split_table="yes"), ["chart", "split_table"], "true or false"),
])
def test_bad_media_is_refused_naming_the_field(value: dict[str, Any], loc: list[Any], message: str) -> None:
    with pytest.raises(RecordError) as caught:
        batch(HISTOGRAM, value)
    assert list(caught.value.loc) == ["body", "records", 1, "data", "m", *loc]
    assert message in str(caught.value)
