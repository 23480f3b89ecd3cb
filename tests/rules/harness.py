"""Drive the real rule engine in-process: a real SQLite store, a simulated clock, captured alerts."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from alerts.model import Alert, AlertStatus, Run, RunEvent, RunState
from alerts.rules.engine import RuleEngine
from alerts.rules.loader import load_rules
from alerts.storage import NewRun, RecordBatch, RunExit, Store, open_store


class Harness:
    def __init__(self, tmp_path: Path, rules_yaml: str, *, channels: set[str] | None = None,
                 shortcuts: bool = True) -> None:
        self._shortcuts = shortcuts
        self.tmp_path = tmp_path
        path = tmp_path / "rules.yaml"
        path.write_text(textwrap.dedent(rules_yaml))
        self._channels = channels
        self.ruleset = load_rules([path], channels=channels)
        self.now = 1_800_000_000.0
        self.store: Store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
        self.events: list[Alert] = []
        self.engine = self._engine()
        self.runs: dict[str, Run] = {}
        self._steps: dict[str, int] = {}

    def _engine(self) -> RuleEngine:
        async def sink(alerts: list[Alert], run: Run | None) -> None:
            self.events.extend(_copy(alert) for alert in alerts)

        return RuleEngine(self.store, sink, public_url="http://localhost:8080", clock=lambda: self.now,
                          shortcuts=self._shortcuts)

    async def start(self) -> Harness:
        await self.store.open()
        await self.engine.start(self.ruleset)
        return self

    async def restart(self) -> None:
        """A new engine over the same store, as after a service restart."""
        self.engine = self._engine()
        await self.engine.start(self.ruleset)

    async def reload(self) -> dict[str, list[str]]:
        """Re-read ``rules.yaml`` and swap the rules in, in the order the service's reload uses: load
        first (a mistake raises :class:`ConfigError` before the engine is touched), then ``engine.reload``."""
        ruleset = load_rules([self.tmp_path / "rules.yaml"], channels=self._channels)
        changes = await self.engine.reload(ruleset)
        self.ruleset = ruleset
        return changes

    async def close(self) -> None:
        await self.store.close()

    async def run(self, run_id: str = "r1", *, project: str = "vision", name: str | None = None,
                  tags: list[str] | None = None, config: dict[str, Any] | None = None) -> Run:
        run, _ = await self.store.upsert_run(NewRun(project, run_id, name or run_id, config or {}, tags or [],
                                                    None, None, None, self.now, None, None), self.now)
        self.runs[run_id] = run
        await self.engine.on_run_event(RunEvent(run=run, state=RunState.RUNNING, reason="started", at=self.now))
        return run

    async def log(self, run_id: str, values: dict[str, float], *, step: int | None = None,
                  dt: float = 1.0) -> None:
        """One step of points, ``dt`` seconds after the previous one (point timestamps)."""
        self.now += dt
        step = self._steps.get(run_id, -1) + 1 if step is None else step
        self._steps[run_id] = max(step, self._steps.get(run_id, -1))
        batch = RecordBatch(first_seq=0, last_seq=0, steps=[(step, self.now, None)],
                            points=[(key, step, self.now, float(value)) for key, value in values.items()])
        await self.engine.on_batch(self.runs[run_id], batch)

    async def series(self, run_id: str, key: str, values: list[float], dt: float = 1.0) -> None:
        for value in values:
            await self.log(run_id, {key: value}, dt=dt)

    async def end(self, run_id: str, state: RunState, reason: str | None = None) -> None:
        event = await self.store.end_run(self.runs[run_id].pk, RunExit(state, None, reason, None, self.now))
        assert event is not None
        await self.engine.on_run_event(event)

    async def tick(self, seconds: float) -> None:
        self.now += seconds
        await self.engine.check_absent()

    def firing(self, rule: str | None = None) -> list[Alert]:
        latest: dict[str, Alert] = {}
        for alert in self.events:
            latest[alert.id] = alert
        return [a for a in latest.values() if a.status is AlertStatus.FIRING and (rule is None or a.rule == rule)]

    def fired(self, rule: str | None = None) -> list[Alert]:
        return [a for a in self.events if a.status is AlertStatus.FIRING and (rule is None or a.rule == rule)]

    def resolved(self, rule: str | None = None) -> list[Alert]:
        return [a for a in self.events if a.status is AlertStatus.RESOLVED and (rule is None or a.rule == rule)]


def _copy(alert: Alert) -> Alert:
    from dataclasses import replace

    return replace(alert, labels=dict(alert.labels))


NAN = math.nan
INF = math.inf
