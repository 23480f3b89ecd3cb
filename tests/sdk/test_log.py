"""``log()``: the SPEC 3.3 step/commit table, key checks and value encoding."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import runwatch
from _sdkutil import history, offline


def steps_and_data(run: runwatch.Run) -> list[tuple[int, dict]]:
    return [(r["step"], r["data"]) for r in history(run)]


def test_log_merges_commits_and_increments() -> None:
    run = offline()
    run.log({"a": 1})
    run.log({"a": 2})
    assert run.step == 2
    run.finish()
    assert steps_and_data(run) == [(0, {"a": 1}), (1, {"a": 2})]


def test_commit_false_merges_into_current_step() -> None:
    run = offline()
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, commit=False)
    assert run.step == 0
    run.log({"c": 3})
    run.finish()
    assert steps_and_data(run) == [(0, {"a": 1, "b": 2, "c": 3})]


def test_step_ahead_commits_pending_and_waits() -> None:
    run = offline()
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, step=5)
    assert run.step == 5
    run._flush()
    assert steps_and_data(run) == [(0, {"a": 1})]  # step 5 not committed yet
    run.log({"c": 3}, step=7)  # moving past 5 commits it
    run.finish()  # finish commits 7
    assert steps_and_data(run) == [(0, {"a": 1}), (5, {"b": 2}), (7, {"c": 3})]


def test_step_equal_merges_and_commit_true_commits() -> None:
    run = offline()
    run.log({"a": 1}, step=3)
    run.log({"b": 2}, step=3)
    run.log({"c": 3}, step=3, commit=True)
    assert run.step == 4
    run.log({"d": 4})
    run.finish()
    assert steps_and_data(run) == [(3, {"a": 1, "b": 2, "c": 3}), (4, {"d": 4})]


def test_step_without_explicit_step_commits_pending_at_given_step() -> None:
    run = offline()
    run.log({"a": 1}, step=2)
    run.log({"b": 2})  # no step: merge into step 2 and commit it
    run.finish()
    assert steps_and_data(run) == [(2, {"a": 1, "b": 2})]


def test_step_behind_is_dropped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    run = offline()
    run.log({"a": 1}, step=10)
    with caplog.at_level(logging.WARNING, logger="runwatch"):
        run.log({"a": 2}, step=4)
    msgs = [r.getMessage() for r in caplog.records if r.name == "runwatch"]
    assert msgs == ["runwatch: tried to log to step 4, which is before the current step 10; steps must increase, "
                    "so this data is dropped"]
    run.finish()
    assert steps_and_data(run) == [(10, {"a": 1})]


def test_finish_commits_pending_step() -> None:
    run = offline()
    run.log({"a": 1}, commit=False)
    run.finish()
    assert steps_and_data(run) == [(0, {"a": 1})]


def test_every_committed_step_has_step_timestamp_runtime() -> None:
    t = [1000.0]

    def clock() -> float:
        t[0] += 0.5
        return t[0]

    run = runwatch.init(project="p", mode="offline", settings={"console": False, "signals": False}, clock=clock)
    run.log({"a": 1})
    run.log({"a": 2})
    run.finish()
    rows = history(run)
    assert [(r["step"], r["timestamp"], r["runtime"]) for r in rows] == [(0, 1001.0, 0.5), (1, 1001.5, 1.0)]
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)


def test_nested_dicts_flatten_with_dots_and_slash_is_flat() -> None:
    run = offline()
    run.log({"train/loss": 1.0, "a": {"b": 1, "c": {"d": 2.5}}})
    run.finish()
    assert history(run)[0]["data"] == {"train/loss": 1.0, "a.b": 1, "a.c.d": 2.5}


def test_numpy_scalars_and_size1_arrays() -> None:
    run = offline()
    run.log(
        {
            "f32": np.float32(0.5),
            "i64": np.int64(7),
            "b": np.bool_(True),
            "arr": np.array([2.5]),
            "arr2d": np.array([[3]]),
            "big": np.array([1.0, 2.0]),
            "nan": np.float64("nan"),
        }
    )
    run.finish()
    data = history(run)[0]["data"]
    assert data["f32"] == 0.5 and data["i64"] == 7 and data["b"] == 1
    assert data["arr"] == 2.5 and data["arr2d"] == 3
    assert data["big"] == {"_type": "json", "value": [1.0, 2.0]}
    assert data["nan"] == "NaN"


class FakeTensor:
    """Duck-typed torch tensor: item() is only legal via detach() and for one element."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.detached = False

    def numel(self) -> int:
        return len(self.values)

    def detach(self) -> FakeTensor:
        t = FakeTensor(self.values)
        t.detached = True
        return t

    def item(self) -> float:
        assert self.detached, "item() called without detach()"
        assert len(self.values) == 1
        return self.values[0]

    def tolist(self) -> list[float]:
        return list(self.values)


def test_torch_like_objects_use_detach_item() -> None:
    run = offline()
    run.log({"loss": FakeTensor([0.25]), "vec": FakeTensor([1.0, 2.0])})
    run.finish()
    data = history(run)[0]["data"]
    assert data["loss"] == 0.25
    assert data["vec"]["_type"] == "json"


def test_non_finite_values_are_kept_as_strings() -> None:
    run = offline()
    run.log({"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "ok": 1.5, "flag": True})
    run.finish()
    data = history(run)[0]["data"]
    assert data == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "ok": 1.5, "flag": 1}


def test_strings_lists_and_objects_are_media() -> None:
    run = offline()
    run.log({"s": "hello", "l": [1, 2], "n": None})
    run.finish()
    data = history(run)[0]["data"]
    assert data["s"] == {"_type": "text", "value": "hello"}
    assert data["l"] == {"_type": "json", "value": [1, 2]}
    assert data["n"] == {"_type": "json", "value": None}


def test_non_str_keys_raise_type_error_on_caller_thread() -> None:
    run = offline()
    with pytest.raises(TypeError, match="keys must be str"):
        run.log({1: 2.0})
    with pytest.raises(TypeError, match="keys must be str"):
        run.log({"a": {2: 1}})
    with pytest.raises(TypeError):
        run.log([("a", 1)])  # type: ignore[arg-type]
    run.finish()
    assert history(run) == []


def test_log_does_not_keep_a_reference_to_the_callers_dict() -> None:
    run = offline()
    d = {"a": 1}
    run.log(d)
    d["a"] = 99
    run.finish()
    assert history(run)[0]["data"] == {"a": 1}
