"""The run summary: one value per key, by default the last logged one.

``SummaryState`` lives with the sender (it is fed normalised rows off the caller's thread);
``Summary`` is the user's view (``run.summary[k]``, ``run.summary[k] = v``, ``update``), which first
asks the run to apply everything already logged so reads are never stale.
``define_metric(name, summary=...)`` picks the aggregate per key or glob: min, max, mean, last, first, none.
"""

from __future__ import annotations

import fnmatch
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .values import decode_float

__all__ = ["AGGREGATES", "Summary", "SummaryState"]

AGGREGATES = ("min", "max", "mean", "last", "first", "none")


class SummaryState:
    """Aggregates of observed metric values plus explicit overrides; not thread-safe by itself."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.dirty = False
        self._rules: list[tuple[str, str]] = []  # (name or glob, aggregate); later definitions win
        self._agg_cache: dict[str, str] = {}
        self._mean: dict[str, tuple[float, int]] = {}

    def define(self, name: str, aggregate: str) -> None:
        self._rules.append((name, aggregate))
        self._agg_cache.clear()
        if aggregate == "none" and name in self.values:
            del self.values[name]
            self.dirty = True

    def aggregate_for(self, key: str) -> str:
        agg = self._agg_cache.get(key)
        if agg is None:
            agg = "last"
            for pattern, a in reversed(self._rules):
                if pattern == key or fnmatch.fnmatchcase(key, pattern):
                    agg = a
                    break
            self._agg_cache[key] = agg
        return agg

    def observe(self, data: Mapping[str, Any]) -> None:
        """Fold one normalised history row in (numbers and non-finite markers only; media skipped)."""
        rules = self._rules
        values = self.values
        for k, v in data.items():
            tv = type(v)
            if tv is str:
                v = decode_float(v)
            elif tv is not float and tv is not int:
                continue
            if not rules:
                values[k] = v
                continue
            agg = self.aggregate_for(k)
            if agg == "last":
                values[k] = v
            elif agg == "first":
                values.setdefault(k, v)
            elif agg == "none" or v != v:
                continue  # NaN has no order: it would poison min/max/mean
            elif agg == "min":
                cur = values.get(k)
                values[k] = v if not isinstance(cur, (int, float)) or v < cur else cur
            elif agg == "max":
                cur = values.get(k)
                values[k] = v if not isinstance(cur, (int, float)) or v > cur else cur
            elif agg == "mean":
                total, count = self._mean.get(k, (0.0, 0))
                total, count = total + v, count + 1
                self._mean[k] = (total, count)
                values[k] = total / count if math.isfinite(total) else total
        self.dirty = True

    def observe_rows(self, rows: Sequence[Mapping[str, Any]], *, plain: bool = False) -> None:
        """Fold a batch of normalised rows in, oldest first. ``plain``: every value is a finite float or
        an int (``values.plain_rows``), so with no ``define_metric`` rule the fold is dict updates in C."""
        if not rows:
            return
        if plain and not self._rules:
            deque(map(self.values.update, rows), maxlen=0)
            self.dirty = True
            return
        for row in rows:
            self.observe(row)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.dirty = True

    def delete(self, key: str) -> None:
        self.values.pop(key, None)
        self.dirty = True


class Summary:
    """``run.summary``: read the current summary, override values explicitly."""

    def __init__(self, state: SummaryState, sync: Callable[[], Any], on_set: Callable[[], None]) -> None:
        self._state = state
        self._sync = sync  # applies queued rows under the run's lock and returns that lock
        self._on_set = on_set

    def __getitem__(self, key: str) -> Any:
        with self._sync():
            return self._state.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        with self._sync():
            return self._state.values.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"summary keys must be str, got {type(key).__name__} {key!r}")
        with self._sync():
            self._state.set(key, value)
        self._on_set()

    def __delitem__(self, key: str) -> None:
        with self._sync():
            if key not in self._state.values:
                raise KeyError(key)
            self._state.delete(key)
        self._on_set()

    def update(self, d: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Set several keys explicitly."""
        items = {**(dict(d) if d else {}), **kwargs}
        for k in items:
            if not isinstance(k, str):
                raise TypeError(f"summary keys must be str, got {type(k).__name__} {k!r}")
        with self._sync():
            for k, v in items.items():
                self._state.set(k, v)
        self._on_set()

    def __contains__(self, key: object) -> bool:
        with self._sync():
            return key in self._state.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        with self._sync():
            return len(self._state.values)

    def keys(self) -> list[str]:
        with self._sync():
            return list(self._state.values)

    def items(self) -> list[tuple[str, Any]]:
        with self._sync():
            return list(self._state.values.items())

    def as_dict(self) -> dict[str, Any]:
        with self._sync():
            return dict(self._state.values)

    def __repr__(self) -> str:
        return f"Summary({self.as_dict()!r})"
