"""One evaluator per condition kind: streaming, with state bounded by the rule's window sizes.

An evaluator sees one series (a metric of a run) point by point and returns a :class:`Verdict`, or
None while it has too little data to judge. It knows nothing about pending/firing: that is
``lifecycle.py``'s job, shared by all kinds.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from alerts.rules.spec import Comparison, NotFinite, RuleSpec


@dataclass(slots=True)
class Verdict:
    holds: bool
    """The condition is met (the alert should be pending/firing)."""
    recovered: bool
    """The series is healthy again (differs from ``not holds`` only with ``recover_when`` hysteresis)."""
    value: float
    threshold: float | None
    detail: dict[str, Any] | None = None
    """What a ``compare`` verdict was judged against (templates' ``compare``); None for other kinds."""


class Evaluator:
    """Base: ``new_state()`` makes the per-series state, ``update`` feeds one point."""

    plain: Callable[[float], bool] | None = None
    """A stateless test equivalent to ``update(...).holds``, when there is one (see ``Threshold``)."""

    def new_state(self) -> Any:
        return None

    def update(self, state: Any, timestamp: float, value: float) -> Verdict | None:
        raise NotImplementedError

    def absorb_quiet(self, state: Any, stamps: Sequence[float], values: Sequence[float], low: float,
                     high: float) -> bool:
        """Feed a run of points at once when none of them can make the condition hold.

        True: the state is now what ``update`` point by point would have made it, and no verdict would
        have held. False: that cannot be shown cheaply, nothing changed, the caller feeds point by point.
        The engine calls this only for a quiet series (neither pending nor firing: a verdict that does not
        hold changes nothing else) with finite ``values``, nondecreasing ``stamps`` and ``low``/``high``
        the least and greatest value; every bound here is a range argument over those numbers.
        """
        return False


def _fsum(values: Any) -> float:
    """``math.fsum``, but IEEE's answer where it raises: NaN for ``inf - inf``, ±inf on overflow (a window
    holding both infinities must not take the service down)."""
    values = list(values)
    try:
        return math.fsum(values)
    except (ValueError, OverflowError):
        return float(sum(values))


def _aggregate(values: list[float], agg: str) -> float:
    if any(math.isnan(v) for v in values):
        return math.nan  # a NaN inside the window poisons the aggregate (and `not finite` sees it)
    if agg == "mean":
        return _fsum(values) / len(values)
    if agg == "min":
        return min(values)
    if agg == "max":
        return max(values)
    if agg == "median":
        return float(statistics.median(values))
    return values[-1]


_VALUE = itemgetter(1)


def _widened(low: float, high: float) -> tuple[float, float]:
    """The range widened by the rounding a mean (``fsum / n``) can add to values within it."""
    margin = (abs(low) + abs(high)) * 1e-9
    return low - margin, high + margin


class Threshold(Evaluator):
    """``when: "< 0.3"`` / ``when: not finite``, optionally smoothed by ``over`` and with ``recover_when``."""

    def __init__(self, spec: RuleSpec) -> None:
        assert spec.when is not None
        self.condition: Comparison | NotFinite = spec.when
        self.recover = spec.recover_when
        self.threshold = spec.when.threshold if isinstance(spec.when, Comparison) else None
        self.over = spec.over
        self.points = spec.over.points if spec.over else None
        self.seconds = float(spec.over.last) if spec.over and spec.over.points is None else None
        self.plain = self.condition.holds if self.over is None else None
        """Without smoothing, the condition alone decides: the engine skips a point it does not hold for
        (and whose series is neither pending nor firing) without building a verdict."""

    def new_state(self) -> deque[tuple[float, float]] | None:
        if self.over is None:
            return None
        return deque(maxlen=self.points) if self.points else deque()

    def absorb_quiet(self, state: deque[tuple[float, float]] | None, stamps: Sequence[float],
                     values: Sequence[float], low: float, high: float) -> bool:
        if state is None:  # unsmoothed: the values themselves are judged
            return self.condition.quiet_within(low, high, exact=True)
        if state:
            window = list(map(_VALUE, state))
            if not math.isfinite(sum(window)):
                return False  # a NaN or inf still inside the window decides the aggregate
            low, high = min(low, *window), max(high, *window)
        # Every aggregate of a window lies within the values' range, up to the rounding of a mean.
        if not self.condition.quiet_within(low, high, exact=False):
            return False
        state.extend(zip(stamps, values, strict=True))
        if self.seconds is not None:  # popping once with the last (greatest) stamp pops what each would
            last = stamps[-1]
            while last - state[0][0] > self.seconds:
                state.popleft()
        return True

    def update(self, state: deque[tuple[float, float]] | None, timestamp: float, value: float) -> Verdict | None:
        if state is not None and self.over is not None:
            state.append((timestamp, value))
            if self.seconds is not None:
                while timestamp - state[0][0] > self.seconds:
                    state.popleft()
            elif len(state) < (self.points or 0):
                return None  # not enough points to smooth over yet
            value = _aggregate([v for _, v in state], self.over.agg)
        holds = self.condition.holds(value)
        recovered = self.recover.holds(value) if self.recover is not None else not holds
        return Verdict(holds, recovered and not holds, value, self.threshold)


@dataclass(slots=True)
class _PlateauState:
    best: float = math.nan
    since_best: int = 0


class Plateau(Evaluator):
    """No improvement of at least ``min_delta`` within ``patience`` points (early-stopping semantics)."""

    def __init__(self, spec: RuleSpec) -> None:
        assert spec.plateau is not None
        self.spec = spec.plateau

    def new_state(self) -> _PlateauState:
        return _PlateauState()

    def absorb_quiet(self, state: _PlateauState, stamps: Sequence[float], values: Sequence[float],
                     low: float, high: float) -> bool:
        # Points without improvement count one each: fewer than ``patience`` in all cannot reach it.
        if state.since_best + len(values) >= self.spec.patience:
            return False
        best, since, delta, minimize = state.best, state.since_best, self.spec.min_delta, self.spec.mode == "min"
        for value in values:
            if best != best:  # the first point sets the best
                best = value
            elif (value < best - delta) if minimize else (value > best + delta):
                best, since = value, 0
            else:
                since += 1
        state.best, state.since_best = best, since
        return True

    def update(self, state: _PlateauState, timestamp: float, value: float) -> Verdict | None:
        if math.isnan(state.best):
            if math.isnan(value):
                return None
            state.best = value
            return Verdict(False, True, value, value)
        if self.spec.mode == "min":
            improved = value < state.best - self.spec.min_delta
        else:
            improved = value > state.best + self.spec.min_delta
        if improved:
            state.best, state.since_best = value, 0
        else:
            state.since_best += 1
        holds = state.since_best >= self.spec.patience
        return Verdict(holds, not holds, value, state.best)


class Change(Evaluator):
    """Mean of the last ``window`` points vs the mean of the ``baseline`` points before them."""

    def __init__(self, spec: RuleSpec) -> None:
        assert spec.change is not None
        self.spec = spec.change
        self.relative = spec.change.relative
        self.absolute = None if self.relative is not None else float(spec.change.by)

    def new_state(self) -> deque[float]:
        return deque(maxlen=self.spec.window + self.spec.baseline)

    def absorb_quiet(self, state: deque[float], stamps: Sequence[float], values: Sequence[float],
                     low: float, high: float) -> bool:
        if state:
            if not math.isfinite(sum(state)):
                return False
            low, high = min(low, *state), max(high, *state)
        low, high = _widened(low, high)
        # Both means lie in [low, high]: the change is at most the range, relative to at least the
        # smaller magnitude when the range keeps one sign.
        most = high - low
        if self.relative is not None:
            if low <= 0 <= high:
                return False
            quiet = most / min(abs(low), abs(high)) < self.relative
        else:
            quiet = most < (self.absolute or 0.0)
        if quiet:
            state.extend(values)
        return quiet

    def update(self, state: deque[float], timestamp: float, value: float) -> Verdict | None:
        state.append(value)
        if len(state) < state.maxlen:  # type: ignore[operator]
            return None
        values = list(state)
        baseline = _fsum(values[:self.spec.baseline]) / self.spec.baseline
        recent = _fsum(values[self.spec.baseline:]) / self.spec.window
        delta = recent - baseline
        if self.spec.direction == "increase":
            signed = delta
        elif self.spec.direction == "decrease":
            signed = -delta
        else:
            signed = abs(delta)
        if self.relative is not None:
            amount = signed / abs(baseline) if baseline != 0 else (math.inf if signed > 0 else 0.0)
            holds = amount >= self.relative
        else:
            holds = signed >= (self.absolute or 0.0)
        holds = holds and not math.isnan(delta)
        return Verdict(holds, not holds, recent, baseline)


class ZScore(Evaluator):
    """More than ``threshold`` standard deviations from the mean of the previous ``window`` points."""

    def __init__(self, spec: RuleSpec) -> None:
        assert spec.zscore is not None
        self.spec = spec.zscore

    def new_state(self) -> deque[float]:
        return deque(maxlen=self.spec.window)

    def absorb_quiet(self, state: deque[float], stamps: Sequence[float], values: Sequence[float],
                     low: float, high: float) -> bool:
        window, count = self.spec.window, len(values)
        if len(state) + count <= window:  # still filling: no verdict yet
            state.extend(values)
            return True
        if len(state) < window or count >= window or not math.isfinite(sum(state)):
            return False
        # Every window judged here holds the old window's last (window - count) values, so its spread is
        # at least theirs, and a sample's std is at least spread / sqrt(2 (n - 1)) (its two extremes alone
        # give that much). The distance of a value from a window's mean is at most the whole range.
        core = list(state)[count:]
        spread = max(core) - min(core)
        if not spread > 0:
            return False
        low, high = _widened(min(low, *state), max(high, *state))
        bound = (high - low) * math.sqrt(2 * (window - 1)) / spread * (1 + 1e-9)
        if bound > self.spec.threshold:
            return False
        state.extend(values)
        return True

    def update(self, state: deque[float], timestamp: float, value: float) -> Verdict | None:
        if len(state) < self.spec.window:
            if math.isfinite(value):
                state.append(value)
            return None
        mean = _fsum(state) / len(state)
        std = math.sqrt(_fsum((v - mean) ** 2 for v in state) / (len(state) - 1))
        if math.isnan(value):
            score = math.nan
        elif std == 0:
            score = 0.0 if value == mean else math.copysign(math.inf, value - mean)
        else:
            score = (value - mean) / std
        if self.spec.direction == "increase":
            holds = score > self.spec.threshold
        elif self.spec.direction == "decrease":
            holds = score < -self.spec.threshold
        else:
            holds = abs(score) > self.spec.threshold
        if math.isfinite(value):
            state.append(value)  # outliers join the window too, as later points are judged against them
        return Verdict(holds, not holds, value, self.spec.threshold)


def evaluator_for(spec: RuleSpec) -> Evaluator | None:
    """The streaming evaluator of a point-driven rule; None for expr/absent/run_state (engine-driven)."""
    kind = spec.kind
    if kind == "when":
        return Threshold(spec)
    if kind == "plateau":
        return Plateau(spec)
    if kind == "change":
        return Change(spec)
    if kind == "zscore":
        return ZScore(spec)
    return None
