"""The shape of a rule file (SPEC §5) as pydantic models; unknown keys are errors.

Validation turns the YAML text forms into ready-to-evaluate values (a parsed comparison, a compiled
expression, durations in seconds), so nothing is re-parsed per metric point.
"""

from __future__ import annotations

import fnmatch
import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from alerts.durations import Duration, parse_duration
from alerts.model import Run, RunState, Severity
from alerts.rules.expr import Expr, ExprError, parse_expr

RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_COMPARISON = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}
CONDITION_KEYS = ("when", "absent", "plateau", "change", "zscore", "compare", "expr", "run_state")


@dataclass(frozen=True)
class Comparison:
    """``< 0.3``: ``holds(value)`` is the comparison; NaN never satisfies it (use ``not finite``)."""

    op: str
    threshold: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compare", _OPERATORS[self.op])

    def holds(self, value: float) -> bool:
        return self._compare(value, self.threshold)  # type: ignore[attr-defined, no-any-return]

    def quiet_within(self, low: float, high: float, *, exact: bool) -> bool:
        """No finite value in ``[low, high]`` satisfies the comparison. ``exact``: the values judged are
        ``low``..``high`` themselves; otherwise they are means of such values, which rounding may carry
        a hair outside the range, so the range is widened first."""
        if not exact:
            margin = (abs(low) + abs(high)) * 1e-9
            low, high = low - margin, high + margin
        op, threshold = self.op, self.threshold
        if op == ">":
            return high <= threshold
        if op == ">=":
            return high < threshold
        if op == "<":
            return low >= threshold
        if op == "<=":
            return low > threshold
        if op == "==":
            return not low <= threshold <= high
        return False  # "!=": nearly everything holds

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class NotFinite:
    """``when: not finite``: the value is NaN or ±inf."""

    def holds(self, value: float) -> bool:
        return not math.isfinite(value)

    def quiet_within(self, low: float, high: float, *, exact: bool) -> bool:
        return True  # callers pass finite values only

    def __str__(self) -> str:
        return "not finite"


def parse_comparison(text: object, *, allow_not_finite: bool = True) -> Comparison | NotFinite:
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"expected a comparison such as \"< 0.3\", got {text!r}")
    if isinstance(text, int | float):
        raise ValueError(f"condition {text!r} has no operator; write e.g. \"> {text}\" "
                         "(quote it: in YAML a bare > starts a folded block)")
    if allow_not_finite and text.strip().lower() in ("not finite", "not_finite"):
        return NotFinite()
    match = _COMPARISON.match(text)
    if match is None:
        if re.match(r"^\s*[-+]?[\d.]", text):
            raise ValueError(f"condition {text!r} has no operator; write e.g. \"> {text.strip()}\" "
                             "(quote it: in YAML a bare > starts a folded block)")
        expected = "a comparison such as \"< 0.3\"" + (" or \"not finite\"" if allow_not_finite else "")
        raise ValueError(f"invalid condition {text!r}: expected {expected}")
    return Comparison(match.group(1), float(match.group(2)))


def _count_or_duration(value: object) -> int | float:
    """``for: 3`` counts evaluations; ``for: 5m`` is a duration (returned as float seconds)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a count of evaluations or a duration, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    return parse_duration(value)


CountOrDuration = Annotated[int | float, BeforeValidator(_count_or_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", frozen=True)


class Where(_Strict):
    """Which runs a rule watches: globs on project, run (name or id), group and job type; tags; config values.

    ``group``/``job_type`` are W&B's ``init(group=, job_type=)``; a run without one matches only ``"*"``.
    """

    project: str = "*"
    """Glob on the run's project."""
    run: str = "*"
    """Glob on the run's name or id."""
    group: str = "*"
    """Glob on the run's group (W&B `init(group=)`)."""
    job_type: str = "*"
    """Glob on the run's job type (W&B `init(job_type=)`)."""
    tags: list[str] = Field(default_factory=list)
    """Tags the run must all have."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Config values the run must have (`model.depth: 12` reaches into nested config)."""

    def matches_every_run(self) -> bool:
        """No condition at all: every run matches (``*`` matches any text, the empty one too)."""
        return self.project == self.run == self.group == self.job_type == "*" and not self.tags and not self.config

    def matches(self, project: str, run_id: str, run_name: str, tags: list[str], config: dict[str, Any],
                group: str | None = None, job_type: str | None = None) -> bool:
        return (fnmatch.fnmatchcase(project, self.project)
                and (fnmatch.fnmatchcase(run_name, self.run) or fnmatch.fnmatchcase(run_id, self.run))
                and (self.group == "*" or fnmatch.fnmatchcase(group or "", self.group))
                and (self.job_type == "*" or fnmatch.fnmatchcase(job_type or "", self.job_type))
                and all(tag in tags for tag in self.tags)
                and all(_config_value(config, key) == value for key, value in self.config.items()))


def _config_value(config: dict[str, Any], key: str) -> Any:
    if key in config:
        return config[key]
    node: Any = config
    for part in key.split("."):  # `model.depth` reaches into nested config
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


class Over(_Strict):
    """Smoothing: aggregate the last N points (``last: 5``) or the points of a duration (``last: 5m``)."""

    last: CountOrDuration
    """How many points (`5`) or how long (`5m`) to aggregate."""
    agg: Literal["mean", "min", "max", "median", "last"] = "mean"
    """How the window's points become one value."""

    @property
    def points(self) -> int | None:
        return self.last if isinstance(self.last, int) else None

    @field_validator("last")
    @classmethod
    def _positive(cls, value: int | float) -> int | float:
        if value <= 0:
            raise ValueError("over.last must be a positive number of points or a duration")
        return value


class Plateau(_Strict):
    patience: int = Field(ge=1)
    """Points without an improvement of at least `min_delta` before it fires."""
    min_delta: float = Field(default=0.0, ge=0)
    """The least change that counts as an improvement."""
    mode: Literal["min", "max"] = "min"
    """`min`: lower is better (a loss); `max`: higher is better (an accuracy)."""


class Change(_Strict):
    window: int = Field(ge=1)
    """Recent points averaged."""
    baseline: int = Field(ge=1)
    """Earlier points averaged, before the window."""
    by: float | str
    """How far the window may move from the baseline: a number, or a percentage like `"50%"`."""
    direction: Literal["increase", "decrease", "either"] = "either"
    """Which way counts."""

    @field_validator("by")
    @classmethod
    def _amount(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            text = value.strip()
            number = text[:-1] if text.endswith("%") else text
            try:
                parsed = float(number)
            except ValueError:
                raise ValueError(f"change.by must be a number or a percentage like \"50%\", got {value!r}") from None
            if parsed < 0:
                raise ValueError("change.by must not be negative")
            return text if text.endswith("%") else parsed
        if value < 0:
            raise ValueError("change.by must not be negative")
        return float(value)

    @property
    def relative(self) -> float | None:
        return float(self.by[:-1]) / 100 if isinstance(self.by, str) else None


class ZScore(_Strict):
    window: int = Field(ge=2)
    """Points the mean and standard deviation are taken over."""
    threshold: float = Field(gt=0)
    """Standard deviations from the mean that fire."""
    direction: Literal["increase", "decrease", "either"] = "either"
    """Which way counts."""


SAME = "same"
_PERCENTILE = re.compile(r"^p(\d{1,2})$")


class CompareTo(_Strict):
    """The comparison runs of a `compare` rule, relative to the judged run: `same` (the judged run's own
    value), else a glob (or, under `config`, a value). They must match the rule's `where` too."""

    project: str = SAME
    """`same`: the judged run's project; else a glob on the project."""
    group: str = "*"
    """`same`: the judged run's group (W&B `init(group=)`); else a glob on it."""
    job_type: str = "*"
    """`same`: the judged run's job type; else a glob on it."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Per config key (`model.depth` reaches into nested config): `same`, or the value it must have."""

    @property
    def same(self) -> tuple[str, ...]:
        """The run attributes (``project``, ``group``, ``job_type``, ``config.<key>``) that are ``same``."""
        names = [name for name in ("project", "group", "job_type") if getattr(self, name) == SAME]
        return (*names, *(f"config.{key}" for key, value in self.config.items() if value == SAME))

    def key_of(self, run: Run) -> tuple[str, ...]:
        """The run's values of the ``same`` selectors: runs with equal keys are compared with each other."""
        values: list[Any] = [getattr(run, name) for name in ("project", "group", "job_type")
                             if getattr(self, name) == SAME]
        values += [_config_value(run.config, key) for key, value in self.config.items() if value == SAME]
        return tuple("<missing>" if value is _MISSING else json.dumps(value, sort_keys=True, default=str)
                     for value in values)

    def admits(self, run: Run) -> bool:
        """The run passes the fixed selectors (globs and config values), so it may be a comparison run."""
        globs = ((getattr(run, name) or "", getattr(self, name)) for name in ("project", "group", "job_type"))
        return (all(glob in (SAME, "*") or fnmatch.fnmatchcase(value, glob) for value, glob in globs)
                and all(value == SAME or _config_value(run.config, key) == value for key, value in self.config.items()))


class Compare(_Strict):
    """A run's value at a step against a statistic of the other runs' values at that step: the median
    stopping rule of Optuna's `MedianPruner` and Vizier's automated early stopping, for any training script
    (with `actions: [stop_run]`)."""

    to: CompareTo = Field(default_factory=lambda: CompareTo())
    """Which runs to compare with (default: the same project)."""
    stat: str = "median"
    """`median`, `best` (the best run), or a percentile `p1`..`p99` counted from the best (`p25`: a quarter of
    the runs are better; Optuna's `PercentilePruner`)."""
    at: Literal["same_step"] = "same_step"
    """Where on the curves to compare: at this run's step (a run counts for a step once it has reached it)."""
    direction: Literal["worse", "better"] = "worse"
    """Fire when this run is worse (or better) than the statistic by more than `margin`."""
    margin: float | str = 0.0
    """How far past the statistic: a number, or a percentage of it like `"10%"`."""
    mode: Literal["min", "max"] = "min"
    """`min`: lower is better (a loss); `max`: higher is better (an accuracy)."""
    min_runs: int = Field(default=5, ge=1)
    """Judge a step once at least this many other runs have reached it (until then it waits)."""
    grace: int = Field(default=0, ge=0)
    """Judge steps from this one on (Optuna's `n_warmup_steps`)."""
    using: Literal["value", "best_so_far"] = "value"
    """This run's value at the step, or its best up to the step (Optuna compares the best so far)."""

    @field_validator("stat")
    @classmethod
    def _stat(cls, value: str) -> str:
        text = value.strip().lower()
        match = _PERCENTILE.match(text)
        if text in ("median", "best") or (match is not None and 1 <= int(match.group(1)) <= 99):
            return text
        raise ValueError(f"compare.stat must be median, best or a percentile p1..p99 such as p25, got {value!r}")

    @field_validator("margin")
    @classmethod
    def _margin(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            text = value.strip()
            try:
                parsed = float(text[:-1] if text.endswith("%") else text)
            except ValueError:
                raise ValueError(f"compare.margin must be a number or a percentage like \"10%\", "
                                 f"got {value!r}") from None
            if not parsed >= 0 or math.isinf(parsed):
                raise ValueError(f"compare.margin must be a finite amount, not negative, got {value!r}")
            return text if text.endswith("%") else parsed
        if not value >= 0 or math.isinf(value):
            raise ValueError(f"compare.margin must be a finite amount, not negative, got {value!r}")
        return float(value)

    @property
    def percentile(self) -> float:
        """The statistic as a percentile counted from the best run: 0 for ``best``, 50 for ``median``."""
        return 0.0 if self.stat == "best" else 50.0 if self.stat == "median" else float(self.stat[1:])

    @property
    def relative(self) -> float | None:
        """The margin as a fraction of the statistic (``"10%"``: 0.1); None for an absolute margin."""
        return float(self.margin[:-1]) / 100 if isinstance(self.margin, str) else None

    def describe(self) -> str:
        """``best so far > median + 10% of the other runs with the same project and config.model (...)``."""
        lower = (self.mode == "min") == (self.direction == "worse")
        subject = "best so far" if self.using == "best_so_far" else "value"
        amount = self.relative if self.relative is not None else self.margin
        margin = f" {'+' if lower else '-'} {self.margin}" if amount else ""
        same = self.to.same
        whose = f" with the same {' and '.join(same)}" if same else ""
        filters = [f"{name} {getattr(self.to, name)}" for name in ("project", "group", "job_type")
                   if getattr(self.to, name) not in (SAME, "*")]
        filters += [f"config.{key} = {value!r}" for key, value in self.to.config.items() if value != SAME]
        where = f" ({', '.join(filters)})" if filters else ""
        grace = f", from step {self.grace}" if self.grace else ""
        return (f"{subject} {'>' if lower else '<'} {self.stat}{margin} of the other runs{whose}{where} "
                f"at the same step (once {self.min_runs} reached it{grace})")


class RuleSpec(_Strict):
    """One rule as written in a rule file."""

    name: str
    """Unique name: lowercase letters, digits, `_`, `.`, `-`."""
    description: str = ""
    """Free text; shown in notifications when there is no metric."""
    where: Where = Field(default_factory=lambda: Where())
    """Which runs the rule watches (default: every run)."""
    metric: str | None = None
    """The metric key, or a glob (`train/*`, `*`): one series per matching key."""
    when: Annotated[Comparison | NotFinite, BeforeValidator(parse_comparison)] | None = None
    """A threshold (`> 5`, `<= 0.1`, `== 0`) or `not finite` (NaN or ±inf)."""
    absent: Duration | None = None
    """Fires when a matching metric has no new point for this long."""
    plateau: Plateau | None = None
    """Fires when the metric stops improving."""
    change: Change | None = None
    """Fires when the recent mean moves from the earlier mean by more than `by`."""
    zscore: ZScore | None = None
    """Fires on a point this many standard deviations from the recent mean (an anomaly)."""
    compare: Compare | None = None
    """Fires when the run is worse than the other runs of its sweep at the same step (see below)."""
    expr: Annotated[Expr, BeforeValidator(lambda text: _parse_expr(text))] | None = None
    """A condition over several metrics of the run (`` `val/loss` - `train/loss` > 0.5 ``)."""
    run_state: list[RunState] | None = None
    """Fires when the run ends in one of these states (`crashed`, `failed`, `killed`, `finished`)."""
    over: Over | None = None
    """Judge an aggregate of the last points or duration instead of each point."""
    for_: CountOrDuration = Field(default=0, alias="for")
    """How many consecutive points (`3`) or how long (`5m`) the condition must hold before it fires."""
    recover_when: Annotated[Comparison | NotFinite, BeforeValidator(
        lambda text: parse_comparison(text, allow_not_finite=False))] | None = None
    """A separate condition to resolve (hysteresis); default: the condition no longer holds."""
    keep_firing_for: Duration = 0.0
    """Stay firing this long after the condition clears (flapping guard)."""
    severity: Severity = Severity.WARNING
    """Severity of its alerts."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels of its alerts (for routing, grouping, silences)."""
    notify: list[str] = Field(default_factory=list)
    """Channels for its alerts; when empty, the routes decide."""
    actions: list[Literal["stop_run"]] = Field(default_factory=list)
    """What a firing does besides notifying: `stop_run` asks the run's SDK to stop the run (state `stopped`)."""
    title: str = "{{ rule.name }}: {{ metric or rule.condition }} in {{ run.name }}"
    """Jinja template of the alert's title."""
    text: str = ("{% if metric %}{{ metric }} = {{ value }} at step {{ step }} ({{ rule.condition }})"
                 "{% else %}{{ rule.description or rule.condition }}{% endif %}"
                 "{% if stop %}. Run stopped{% if stop.step is not none %} at step {{ stop.step }}{% endif %}"
                 " after {{ stop.runtime }}{% endif %}")
    """Jinja template of the alert's text."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", frozen=True, populate_by_name=True,
                              arbitrary_types_allowed=True)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not RULE_NAME.match(name):
            raise ValueError(f"invalid rule name {name!r}: use lowercase letters, digits, '_', '.', '-' "
                             "and start with a letter or digit")
        return name

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str | None) -> str | None:
        if metric is not None:
            if not metric.strip():
                raise ValueError("metric must not be empty")
            if metric.count("[") != metric.count("]"):
                raise ValueError(f"invalid glob {metric!r}: unbalanced [ ]")
        return metric

    @field_validator("run_state")
    @classmethod
    def _states(cls, states: list[RunState] | None) -> list[RunState] | None:
        if states is not None and not states:
            raise ValueError("run_state needs at least one state")
        return states

    @model_validator(mode="after")
    def _one_condition(self) -> RuleSpec:
        present = [key for key in CONDITION_KEYS if getattr(self, key) is not None]
        if len(present) != 1:
            found = ", ".join(present) if present else "none"
            raise ValueError(f"a rule needs exactly one condition key of {', '.join(CONDITION_KEYS)} (found {found})")
        kind = present[0]
        needs_metric = kind in ("when", "absent", "plateau", "change", "zscore", "compare")
        if needs_metric and not self.metric:
            raise ValueError(f"a '{kind}' rule needs 'metric'")
        if not needs_metric and self.metric:
            raise ValueError(f"a '{kind}' rule takes no 'metric' (" +
                             ("the expression names its metrics" if kind == "expr" else "it watches run states") + ")")
        if self.over is not None and kind != "when":
            raise ValueError("'over' smoothing applies to 'when' rules only")
        if self.recover_when is not None and not (kind == "when" and isinstance(self.when, Comparison)):
            raise ValueError("'recover_when' applies to 'when' comparison rules only")
        if "stop_run" in self.actions and kind == "run_state":
            raise ValueError("'stop_run' needs a rule that fires while the run runs; a 'run_state' rule "
                             "fires when it has ended")
        if len(set(self.actions)) != len(self.actions):
            raise ValueError("'actions' names an action twice")
        if kind in ("absent", "run_state") and self.for_:
            raise ValueError(f"'for' does not apply to '{kind}' rules")
        return self

    @property
    def kind(self) -> str:
        return next(key for key in CONDITION_KEYS if getattr(self, key) is not None)

    @property
    def condition_text(self) -> str:
        kind = self.kind
        value = getattr(self, kind)
        if kind in ("when", "expr"):
            return f"{kind}: {value}"
        if kind == "absent":
            return f"absent for {value:g}s"
        if kind == "compare":
            return f"compare: {value.describe()}"
        if kind == "run_state":
            return "run state in " + ", ".join(state.value for state in value)
        return f"{kind}: {value.model_dump()}"

    @property
    def threshold(self) -> float | None:
        if isinstance(self.when, Comparison):
            return self.when.threshold
        if self.zscore is not None:
            return self.zscore.threshold
        return None


def _parse_expr(text: object) -> Expr:
    if not isinstance(text, str):
        raise ValueError(f"expr must be a string, got {text!r}")
    try:
        return parse_expr(text)
    except ExprError as exc:
        raise ValueError(f"invalid expression: {exc}") from None


class RuleFile(_Strict):
    rules: list[dict[str, Any]] = Field(default_factory=list)
