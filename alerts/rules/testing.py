"""Rule unit tests (``alerts test-rules FILE...``), in the spirit of ``promtool test rules``.

A test file names rule files and, per test, gives input series for one or more runs in expanding
notation, run state changes, and the alerts expected to be firing at given steps or times::

    rule_files: [../training.yaml]     # relative to the test file; globs allowed
    evaluation_interval: 1m            # simulated time between steps (default 1s)
    tests:
      - name: loss goes NaN
        runs:
          - id: r1
            series: {train/loss: "1.0-0.1x5 nan"}
            states: [{at: 7, state: crashed, reason: OOM}]
          - id: r2                     # runs may have a project, name, group, job_type, tags, config
            start: 10                  # starts at step 10 of the test: its series' first value is its step 0
            series: {train/loss: "1.0x5"}
        expect:
          - at: 6                      # a step, or a duration from the start ("6m")
            alerts: [{rule: loss-not-finite, run: r1, labels: {metric: train/loss}}]

Each test drives the real :class:`RuleEngine` over a fresh temporary SQLite store with a simulated
clock: step ``i`` happens at ``start + i * evaluation_interval``, which is both the points' timestamp
and the engine's clock. Per step: the runs that start then start, every run's points of that step as
one batch (stored, then judged, as the ingest does), then the state changes due, then
``check_absent()``, then the expectations of that step.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import tempfile
import traceback
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TextIO

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from alerts.config.yaml_source import LoadedYaml, load_yaml
from alerts.durations import Duration, format_duration, parse_duration
from alerts.errors import ConfigError
from alerts.model import Alert, AlertStatus, Run, RunEvent, RunState
from alerts.rules.engine import RuleEngine
from alerts.rules.loader import RuleSet, expand_rule_files, load_rules
from alerts.storage import NewRun, RecordBatch, RunExit, Store, open_store

__all__ = ["Simulation", "load_test_file", "parse_series", "run_test_files"]

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a fixed start keeps rendered times reproducible
MAX_STEPS = 1_000_000

# Expanding notation ---------------------------------------------------------------------------------
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_UNSIGNED = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PLAIN = re.compile(rf"^{_NUMBER}$")
_REPEAT = re.compile(rf"^({_NUMBER}|[-+]?inf|nan|_)x(\d+)$", re.IGNORECASE)
_STEPPED = re.compile(rf"^({_NUMBER})([-+])({_UNSIGNED})x(\d+)$")
_SPECIAL = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_FORMS = "a number, nan, inf, -inf, _ (no point), or a+bxn, a-bxn, axn (e.g. 1.0-0.1x5)"


def parse_series(text: str) -> list[float | None]:
    """Expand ``"1.0-0.1x3 _ nan"`` to ``[1.0, 0.9, 0.8, 0.7, None, nan]`` (None: no point at that step).

    ``a+bxn`` and ``a-bxn`` are the n+1 values a, a±b, ..., a±n·b (computed in decimal, so
    ``1.0-0.1x3`` ends at exactly 0.7); ``axn`` is a repeated n+1 times. Raises ``ValueError`` naming
    the first bad item and its position.
    """
    values: list[float | None] = []
    for position, item in enumerate(text.split(), start=1):
        try:
            values.extend(_expand(item))
        except ValueError as exc:
            raise ValueError(f"item {position} {item!r}: {exc}") from None
        if len(values) > MAX_STEPS:
            raise ValueError(f"more than {MAX_STEPS} values")
    return values


def _expand(item: str) -> list[float | None]:
    if _is_single(item):
        return [_single(item)]
    if match := _REPEAT.match(item):
        return [_single(match.group(1))] * (_count(match.group(2)) + 1)
    if match := _STEPPED.match(item):
        start, step, count = Decimal(match.group(1)), Decimal(match.group(3)), _count(match.group(4))
        delta = step if match.group(2) == "+" else -step
        return [float(start + delta * i) for i in range(count + 1)]
    raise ValueError(f"expected {_FORMS}")


def _is_single(item: str) -> bool:
    return item == "_" or item.lower() in _SPECIAL or _PLAIN.match(item) is not None


def _single(item: str) -> float | None:
    if item == "_":
        return None
    return _SPECIAL[item.lower()] if item.lower() in _SPECIAL else float(item)


def _count(text: str) -> int:
    count = int(text)
    if count > MAX_STEPS:
        raise ValueError(f"repeat count {count} is over the limit of {MAX_STEPS}")
    return count


# The test file -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Moment:
    """An ``at``: a step index, or a duration from the start (converted to a step with the interval)."""

    step: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        return f"step {self.step}" if self.step is not None else format_duration(self.seconds or 0.0)


def _moment(value: object) -> Moment:
    if isinstance(value, Moment):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"step {value} must not be negative")
        return Moment(step=value)
    if isinstance(value, str) and value.strip():
        if value.strip().isdigit():
            return Moment(step=int(value))
        try:
            return Moment(seconds=parse_duration(value))
        except ValueError:
            pass
    raise ValueError(f"expected a step index (0, 1, ...) or a duration from the start like 10m, got {value!r}")


def _series(value: object) -> list[float | None]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    if not isinstance(value, str):
        raise ValueError(f"expected values in expanding notation like \"1.0-0.1x5 _ nan\", got {value!r}")
    return parse_series(value)


At = Annotated[Moment, BeforeValidator(_moment)]
Series = Annotated[list[float | None], BeforeValidator(_series)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateChange(_Strict):
    at: At
    state: RunState
    reason: str | None = None


class InputRun(_Strict):
    id: str | None = None
    project: str = "test"
    name: str | None = None
    group: str | None = None
    job_type: str | None = None
    tags: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    start: At = Moment(step=0)
    """When the run starts: its series' first value is its step 0, logged then (a later wave of a sweep)."""
    series: dict[str, Series] = Field(default_factory=dict)
    states: list[StateChange] = Field(default_factory=list)


class ExpectedAlert(_Strict):
    rule: str
    run: str | None = None
    labels: dict[str, str] | None = None
    title: str | None = None
    text: str | None = None


class Expectation(_Strict):
    at: At
    alerts: list[ExpectedAlert]


class RuleTestCase(_Strict):
    name: str
    runs: list[InputRun] = Field(min_length=1)
    expect: list[Expectation] = Field(min_length=1)


class RuleTestFile(_Strict):
    rule_files: list[str] = Field(min_length=1)
    evaluation_interval: Duration = 1.0
    tests: list[RuleTestCase] = Field(min_length=1)

    @field_validator("evaluation_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive")
        return value


@dataclass
class _Run:
    id: str
    spec: InputRun
    states: dict[int, list[StateChange]]
    start: int = 0


@dataclass
class _Case:
    """A test ready to run: every ``at`` resolved to a step, every reference checked."""

    name: str
    where: str
    runs: list[_Run]
    checks: dict[int, list[Expectation]]
    last_step: int


@dataclass
class LoadedTests:
    path: Path
    ruleset: RuleSet
    interval: float
    cases: list[_Case]


def load_test_file(path: Path) -> LoadedTests:
    """Validate a test file and the rule files it names; raise :class:`ConfigError` with every problem."""
    loaded = load_yaml(path)
    if not isinstance(loaded.data, dict):
        raise ConfigError([f"{loaded.where(())}: a rule test file must be a mapping with 'rule_files' and 'tests'"])
    try:
        model = RuleTestFile.model_validate(loaded.data)
    except ValidationError as exc:
        raise ConfigError(_validation_errors(loaded, exc)) from None
    errors: list[str] = []
    rule_paths: list[Path] = []
    for index, pattern in enumerate(model.rule_files):
        # a glob next to the test file ("*.yaml") must not pick up the test file itself
        found = [p for p in expand_rule_files([pattern], base=path.parent) if not _same_file(p, path)]
        if not found:
            errors.append(f"{loaded.where(('rule_files', index))}: rule_files pattern {pattern!r} matches no file")
        rule_paths += [p for p in found if p not in rule_paths]
    if errors:
        raise ConfigError(errors)
    ruleset = load_rules(rule_paths)
    names = sorted(rule.name for rule in ruleset.rules)
    cases = [_compile(loaded, index, case, model.evaluation_interval, set(names), errors)
             for index, case in enumerate(model.tests)]
    if errors:
        raise ConfigError(errors)
    return LoadedTests(path, ruleset, model.evaluation_interval, cases)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _compile(loaded: LoadedYaml, index: int, case: RuleTestCase, interval: float, rules: set[str],
             errors: list[str]) -> _Case:
    base: tuple[str | int, ...] = ("tests", index)
    label = f"test {case.name!r}"

    def error(loc: tuple[str | int, ...], message: str) -> None:
        errors.append(f"{loaded.where(base + loc)}: {label}: {message}")

    def step_of(moment: Moment, loc: tuple[str | int, ...]) -> int:
        if moment.step is not None:
            return moment.step
        steps = (moment.seconds or 0.0) / interval
        if abs(steps - round(steps)) > 1e-9:
            error(loc, f"at {moment} is not a whole number of evaluation intervals "
                       f"({format_duration(interval)}): steps happen only at multiples of it")
        return round(steps)

    runs: list[_Run] = []
    for r, spec in enumerate(case.runs):
        run_id = spec.id or f"run-{r + 1}"
        if any(run.id == run_id for run in runs):
            error(("runs", r, "id"), f"duplicate run id {run_id!r}")
        states: dict[int, list[StateChange]] = {}
        ordered = sorted(((step_of(change.at, ("runs", r, "states", s, "at")), s, change)
                          for s, change in enumerate(spec.states)), key=lambda item: (item[0], item[1]))
        start = step_of(spec.start, ("runs", r, "start"))
        current = RunState.RUNNING
        for step, s, change in ordered:
            if step < start:
                error(("runs", r, "states", s, "at"), f"run {run_id!r} starts at step {start}: a state change "
                      f"at step {step} comes before it")
            elif change.state is RunState.RUNNING and current is RunState.RUNNING:
                error(("runs", r, "states", s, "state"), f"run {run_id!r} is already running at step {step} "
                      "(state 'running' resumes an ended run)")
            elif change.state.is_terminal and current.is_terminal:
                error(("runs", r, "states", s, "state"), f"run {run_id!r} has already ended ({current.value}) "
                      f"at step {step}; resume it first with state 'running'")
            current = change.state
            states.setdefault(step, []).append(change)
        runs.append(_Run(run_id, spec, states, start))
    run_ids = [run.id for run in runs]
    checks: dict[int, list[Expectation]] = {}
    for e, expectation in enumerate(case.expect):
        checks.setdefault(step_of(expectation.at, ("expect", e, "at")), []).append(expectation)
        for a, alert in enumerate(expectation.alerts):
            if alert.rule not in rules:
                error(("expect", e, "alerts", a, "rule"), f"unknown rule {alert.rule!r} "
                      f"(rules loaded: {', '.join(sorted(rules)) or 'none'})")
            if alert.run is not None and alert.run not in run_ids:
                error(("expect", e, "alerts", a, "run"), f"unknown run {alert.run!r} "
                      f"(runs of this test: {', '.join(dict.fromkeys(run_ids))})")
    last_step = max(checks)
    if last_step > MAX_STEPS:
        error(("expect",), f"the last expectation is at step {last_step}, over the limit of {MAX_STEPS} steps; "
                           "use a longer evaluation_interval")
    return _Case(case.name, loaded.where(base), runs, checks, last_step)


def _validation_errors(loaded: LoadedYaml, exc: ValidationError) -> list[str]:
    errors = []
    for error in exc.errors():
        loc = _yaml_path(tuple(error["loc"]), loaded.data)
        label = ""
        if len(loc) >= 2 and loc[0] == "tests":
            name = loaded.data["tests"][loc[1]].get("name") if isinstance(loaded.data["tests"][loc[1]], dict) else None
            label = f"test {name!r}: " if isinstance(name, str) else f"tests[{loc[1]}]: "
            shown = loc[2:]
        else:
            shown = loc
        field_path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in shown).lstrip(".")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}" if loc else "unknown key"
            field_path = ""
        elif error["type"] == "missing":
            message = f"missing required key {error['loc'][-1]!r}"
        where = loaded.where(loc)
        errors.append(f"{where}: {label}{field_path + ': ' if field_path else ''}{message}")
    return errors


def _yaml_path(loc: tuple[Any, ...], data: Any) -> tuple[str | int, ...]:
    """pydantic's loc to a path of YAML keys: type tags and missing keys dropped."""
    kept: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            kept.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            kept.append(part)
            node = node[part]
    return tuple(kept)


# The simulation ------------------------------------------------------------------------------------
class Simulation:
    """The real engine over a real store, with a simulated clock and every alert change captured."""

    def __init__(self, store: Store, ruleset: RuleSet, *, now: float = START,
                 public_url: str = "http://localhost:8080") -> None:
        self.store = store
        self.ruleset = ruleset
        self.now = now
        self.events: list[Alert] = []
        self.runs: dict[str, Run] = {}
        self._seq: dict[str, int] = {}
        self.engine = RuleEngine(store, self._sink, public_url=public_url, clock=lambda: self.now)

    async def _sink(self, alerts: list[Alert], run: Run | None) -> None:
        self.events.extend(replace(alert, labels=dict(alert.labels)) for alert in alerts)

    async def start(self) -> None:
        await self.engine.start(self.ruleset)

    async def start_run(self, run_id: str, *, project: str, name: str, tags: list[str],
                        config: dict[str, Any], group: str | None = None, job_type: str | None = None) -> Run:
        run, _ = await self.store.upsert_run(NewRun(project, run_id, name, config, tags, None, group, job_type,
                                                    self.now, None, None), self.now)
        self.runs[run_id] = run
        await self.engine.on_run_event(RunEvent(run=run, state=RunState.RUNNING, reason="started", at=self.now))
        return run

    async def log(self, run_id: str, step: int, points: dict[str, float]) -> None:
        """One step of points, timestamped now, as the one batch the ingest would hand over: stored, then
        judged (``compare`` rules read the other runs' points from the store)."""
        seq = self._seq.get(run_id, 0) + 1
        self._seq[run_id] = seq
        batch = RecordBatch(first_seq=seq, last_seq=seq, steps=[(step, self.now, None)],
                            points=[(key, step, self.now, value) for key, value in points.items()])
        await self.store.apply_records(self.runs[run_id], batch, self.now)
        await self.engine.on_batch(self.runs[run_id], batch)

    async def set_state(self, run_id: str, state: RunState, reason: str | None = None) -> None:
        run = self.runs[run_id]
        if state is RunState.RUNNING:  # a resume, as the ingest does it: upsert, then the event
            resumed, _ = await self.store.upsert_run(NewRun(run.project, run.id, run.name, run.config, run.tags,
                                                            None, run.group, run.job_type, self.now, None, None),
                                                     self.now)
            self.runs[run_id] = resumed
            await self.engine.on_run_event(RunEvent(run=resumed, state=state, reason=reason or "resumed",
                                                    at=self.now))
            return
        event = await self.store.end_run(run.pk, RunExit(state, None, reason, None, self.now))
        if event is None:
            raise RuntimeError(f"run {run_id!r} was not running")
        self.runs[run_id] = event.run
        await self.engine.on_run_event(event)

    def firing(self) -> list[Alert]:
        latest: dict[str, Alert] = {}
        for alert in self.events:
            latest[alert.id] = alert
        return [alert for alert in latest.values() if alert.status is AlertStatus.FIRING]


# Running tests -------------------------------------------------------------------------------------
def run_test_files(paths: list[Path], out: TextIO) -> int:
    """Run every test of every file; print failures as diffs and a ``N passed, N failed`` line.

    Returns 0 when all tests pass, 1 when any fails or a file (or a rule file it names) is invalid.
    Runs its own event loop: call it from synchronous code.
    """
    return asyncio.run(_run_files(paths, out))


async def _run_files(paths: list[Path], out: TextIO) -> int:
    passed = failed = invalid = 0
    for path in paths:
        try:
            tests = load_test_file(path)
        except ConfigError as exc:
            invalid += 1
            print(f"{path}: invalid test file", file=out)
            for line in exc.errors:
                print(f"  {line}", file=out)
            continue
        print(f"{path}", file=out)
        for case in tests.cases:
            problems = await _run_case(tests, case)
            if problems:
                failed += 1
                print(f"  FAIL  {case.name}  ({case.where})", file=out)
                for line in problems:
                    print(f"        {line}" if line else "", file=out)
            else:
                passed += 1
                print(f"  PASS  {case.name}", file=out)
    if invalid:
        print(f"{invalid} invalid test file{'s' if invalid > 1 else ''}", file=out)
    print(f"{passed} passed, {failed} failed", file=out)
    return 1 if failed or invalid else 0


async def _run_case(tests: LoadedTests, case: _Case) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="alerts-test-rules-") as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'test.db'}")
        await store.open()
        try:
            return await _simulate(Simulation(store, tests.ruleset), tests.interval, case)
        except Exception as exc:  # a crash in one test is that test's failure, not the end of the run
            return [f"error while running the test: {type(exc).__name__}: {exc}",
                    *traceback.format_exc().rstrip().splitlines()[-6:]]
        finally:
            await store.close()


async def _simulate(sim: Simulation, interval: float, case: _Case) -> list[str]:
    await sim.start()
    start = sim.now
    problems: list[str] = []
    for step in range(case.last_step + 1):
        sim.now = start + step * interval
        for run in case.runs:
            spec = run.spec
            if step == run.start:
                await sim.start_run(run.id, project=spec.project, name=spec.name or run.id, tags=list(spec.tags),
                                    config=dict(spec.config), group=spec.group, job_type=spec.job_type)
        for run in case.runs:
            own = step - run.start  # the run's own step
            points = {key: value for key, values in run.spec.series.items()
                      if 0 <= own < len(values) and (value := values[own]) is not None}
            if points:
                await sim.log(run.id, own, points)
        for run in case.runs:
            for change in run.states.get(step, ()):
                await sim.set_state(run.id, change.state, change.reason)
        await sim.engine.check_absent()
        for expectation in case.checks.get(step, ()):
            problems += _check(expectation, step, interval, sim.firing())
    return problems


def _check(expectation: Expectation, step: int, interval: float, firing: list[Alert]) -> list[str]:
    expected = expectation.alerts
    pairs = _match(expected, firing)
    if len(pairs) == len(expected) == len(firing):
        return []
    when = f"at step {step} ({format_duration(step * interval) if step else '0s'} from the start)"
    lines = [f"{when}: expected {len(expected)} firing alert(s), got {len(firing)}; expected (-), firing (+):"]
    matched_expected = set(pairs)
    matched_got = set(pairs.values())
    spare = [g for g in range(len(firing)) if g not in matched_got]
    for e, alert in enumerate(expected):
        if e in matched_expected:
            lines.append(f"  {_describe_expected(alert)}")
            continue
        near = next((g for g in spare if _near(alert, firing[g])), None)
        if near is None:
            lines.append(f"- {_describe_expected(alert)}")
            continue
        spare.remove(near)
        lines += _field_diff(alert, firing[near])
    lines += [f"+ {_describe_got(firing[g])}" for g in spare]
    return lines + [""]


def _matches(expected: ExpectedAlert, alert: Alert) -> bool:
    return (expected.rule == alert.rule
            and (expected.run is None or expected.run == alert.labels.get("run"))
            and (expected.labels is None or all(alert.labels.get(k) == v for k, v in expected.labels.items()))
            and (expected.title is None or expected.title == alert.title)
            and (expected.text is None or expected.text == alert.text))


def _near(expected: ExpectedAlert, alert: Alert) -> bool:
    return expected.rule == alert.rule and expected.run in (None, alert.labels.get("run"))


def _match(expected: list[ExpectedAlert], firing: list[Alert]) -> dict[int, int]:
    """A maximum matching of expected to firing alerts (augmenting paths: partial specs may overlap)."""
    owner: dict[int, int] = {}

    def assign(e: int, seen: set[int]) -> bool:
        for g, alert in enumerate(firing):
            if g not in seen and _matches(expected[e], alert):
                seen.add(g)
                if g not in owner or assign(owner[g], seen):
                    owner[g] = e
                    return True
        return False

    for e in range(len(expected)):
        assign(e, set())
    return {e: g for g, e in owner.items()}


_IMPLIED_LABELS = ("alertname", "rule", "source", "run")


def _describe_expected(alert: ExpectedAlert) -> str:
    parts = [f"rule: {alert.rule}"]
    if alert.run is not None:
        parts.append(f"run: {alert.run}")
    if alert.labels is not None:
        parts.append(f"labels: {_labels(alert.labels)}")
    parts += [f"{key}: {json.dumps(value)}" for key, value in (("title", alert.title), ("text", alert.text))
              if value is not None]
    return ", ".join(parts)


def _describe_got(alert: Alert) -> str:
    labels = {k: v for k, v in alert.labels.items() if k not in _IMPLIED_LABELS}
    return (f"rule: {alert.rule}, run: {alert.labels.get('run')}, labels: {_labels(labels)}, "
            f"title: {json.dumps(alert.title)}, text: {json.dumps(alert.text)}")


def _field_diff(expected: ExpectedAlert, alert: Alert) -> list[str]:
    """An expected alert next to the firing alert of the same rule and run: the fields that differ."""
    lines = [f"  rule: {expected.rule}, run: {alert.labels.get('run')}"]
    if expected.labels is not None:
        got = {k: alert.labels[k] for k in expected.labels if k in alert.labels}
        if got != expected.labels:
            others = {k: v for k, v in alert.labels.items() if k not in expected.labels and k not in _IMPLIED_LABELS}
            lines += [f"-   labels: {_labels(expected.labels)}",
                      f"+   labels: {_labels(got)}" + (f"  (other labels: {_labels(others)})" if others else "")]
    for key, want, have in (("title", expected.title, alert.title), ("text", expected.text, alert.text)):
        if want is not None and want != have:
            lines += [f"-   {key}: {json.dumps(want)}", f"+   {key}: {json.dumps(have)}"]
    return lines


def _labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())) + "}"
