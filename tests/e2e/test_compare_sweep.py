"""The median stopping rule for any training script, end to end (issue 14): a sweep's runs post their records
over HTTP as the SDK does, a ``compare`` rule with ``actions: [stop_run]`` in a real service judges each run
against the others at the same step, and exactly the clearly worse runs are asked to stop, in the same
set Optuna's ``MedianPruner`` would prune or a larger one for a stated reason. And a restart in between two
waves keeps the first wave counting."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest

from tests.support.service import ServiceProcess
from tests.support.waiting import eventually

RULE = "worse-than-the-sweep"
RULES = f"""
rules:
  - name: {RULE}
    where: {{project: "sweep-*"}}
    metric: val/loss
    compare: {{to: {{project: same, config: {{model: same}}}}, stat: median, at: same_step,
              direction: worse, margin: 10%, mode: min, min_runs: 5, grace: 10, using: best_so_far}}
    for: 3
    actions: [stop_run]
"""
PROJECT = "sweep-lr"
STEPS = 30
GRACE, MIN_RUNS = 10, 5


def base(step: int) -> float:
    """The shape every run's validation loss follows (2.0 down to about 0.8)."""
    return 0.5 + 1.5 / (1 + 0.15 * step)


def curve(level: float, seed: int) -> list[float]:
    """``level`` times the shape, with 1% of seeded noise."""
    rng = random.Random(seed)
    return [level * base(step) * (1 + rng.uniform(-0.01, 0.01)) for step in range(STEPS)]


# Wave 1: seven good runs within 6% of each other, three clearly worse. Wave 2, sampled near wave 1's best
# (as a sweep's second wave is): eight good runs better than wave 1's median, two clearly worse.
WAVE1 = {f"w1-good-{i}": curve(1.00 + 0.01 * i, i) for i in range(7)} | \
        {"w1-bad-0": curve(1.5, 100), "w1-bad-1": curve(1.6, 101), "w1-bad-2": curve(1.8, 102)}
WAVE2 = {f"w2-good-{i}": curve(0.96 + 0.005 * i, 200 + i) for i in range(8)} | \
        {"w2-bad-0": curve(1.5, 300), "w2-bad-1": curve(1.7, 301)}
BAD = {run_id for run_id in WAVE1 | WAVE2 if "bad" in run_id}


@dataclass
class PostedRun:
    """A training run as the SDK drives it over HTTP: init, ordered records, ``exit`` at the end, and a
    stop when a records answer says ``stop`` (the SDK interrupts the loop; the run ends ``stopped``)."""

    http: httpx.Client
    run_id: str
    values: list[float]
    lead: int = 0
    """How many steps ahead of the round this run posts (a fast run leads the others)."""
    seq: int = 0
    posted: int = 0
    stop: dict[str, Any] | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)

    def init(self) -> None:
        response = self.http.post("/api/v1/runs", json={
            "project": PROJECT, "id": self.run_id, "name": self.run_id,
            "config": {"model": "resnet", "lr": 10 ** -random.Random(self.run_id).uniform(1, 4)}})
        assert response.status_code == 200, response.text

    @property
    def done(self) -> bool:
        return self.stop is not None or self.posted >= len(self.values)

    def post_until(self, step: int) -> None:
        """Post the steps up to ``step`` (one batch), then end the run if it is done."""
        records = []
        while self.posted <= min(step, len(self.values) - 1):
            self.seq += 1
            records.append({"seq": self.seq, "type": "history", "step": self.posted, "timestamp": time.time(),
                            "runtime": float(self.posted), "data": {"val/loss": self.values[self.posted]}})
            self.posted += 1
        if records:
            self._post(records)
        if self.stop is not None:  # the SDK stops the run: KeyboardInterrupt in the loop, then exit
            self._post([{"seq": self.seq + 1, "type": "exit", "state": "killed", "reason": "KeyboardInterrupt",
                         "timestamp": time.time()}])
        elif self.posted >= len(self.values):
            self._post([{"seq": self.seq + 1, "type": "exit", "state": "finished", "timestamp": time.time()}])

    def _post(self, records: list[dict[str, Any]]) -> None:
        response = self.http.post(f"/api/v1/runs/{PROJECT}/{self.run_id}/records", json={"records": records})
        assert response.status_code == 200, response.text
        answer = response.json()
        self.answers.append(answer)
        self.seq = answer["last_seq"]
        if answer.get("stop") is not None and self.stop is None:
            self.stop = answer["stop"]


def run_wave(service: ServiceProcess, key: str, curves: dict[str, list[float]], *, seed: int) -> list[PostedRun]:
    """The runs of a wave in rounds: in round r each run posts its steps up to r + its lead (0-3 steps, so
    runs get ahead of each other and their points wait for the others), until every run has ended."""
    rng = random.Random(seed)
    with httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        runs = [PostedRun(http, run_id, values, lead=rng.randint(0, 3)) for run_id, values in curves.items()]
        for run in runs:
            run.init()
        for round_ in range(STEPS + 3):
            for run in rng.sample(runs, len(runs)):
                if not run.done:
                    run.post_until(round_ + run.lead)
    assert all(run.done for run in runs)
    return runs


def rule_alerts(service: ServiceProcess) -> list[dict[str, Any]]:
    response = service.api("GET", f"/api/v1/alerts?project={PROJECT}&rule={RULE}")
    assert response.status_code == 200, response.text
    return list(response.json()["alerts"])


def run_json(service: ServiceProcess, run_id: str) -> dict[str, Any]:
    response = service.api("GET", f"/api/v1/runs/{PROJECT}/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def optuna_pruned(waves: list[dict[str, list[float]]]) -> set[str]:
    """Optuna's ``MedianPruner`` over the same curves and waves: each wave's trials run side by side (reported
    step by step in turn) and complete, unless pruned, before the next wave starts."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=MIN_RUNS, n_warmup_steps=GRACE, interval_steps=1,
                                         n_min_trials=MIN_RUNS)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    pruned: set[str] = set()
    for wave in waves:
        trials = {run_id: study.ask() for run_id in wave}
        active = dict(trials)
        for step in range(STEPS):
            for run_id, trial in list(active.items()):
                trial.report(wave[run_id][step], step)
                if trial.should_prune():
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    pruned.add(run_id)
                    del active[run_id]
        for run_id, trial in active.items():
            study.tell(trial, wave[run_id][-1])
    return pruned


def sweep_config(tmp_path: Path) -> dict[str, Any]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return {"rule_files": [str(rules)]}


@pytest.mark.timeout(900)
def test_a_sweep_of_two_waves_stops_exactly_its_five_bad_runs(service_factory: Callable[..., ServiceProcess],
                                                               tmp_path: Path) -> None:
    """20 runs in two waves (wave 2 starts when wave 1 has ended); 3 bad runs in wave 1, 2 in wave 2.

    Our rule and Optuna's ``MedianPruner``, field by field:

    - ``stat: median`` is ``MedianPruner`` (``PercentilePruner(50)``); ``mode: min`` is
      ``direction="minimize"``; ``using: best_so_far`` is Optuna's judged value (the trial's best
      intermediate value so far), compared as Optuna does with the other runs' raw values at the step.
    - ``grace: 10`` is ``n_warmup_steps=10``; we judge every step: ``interval_steps=1``.
    - ``min_runs: 5`` is ``n_min_trials=5`` (runs with a value at the step), and ``n_startup_trials=5``
      (Optuna prunes nothing before 5 trials completed).
    - ``margin: 10%`` and ``for: 3`` have no counterpart: Optuna prunes at the first step its best is over
      the median. The curves make both moot: bad runs are 40% and more worse at every step, and wave 2's
      good runs are better than wave 1's median.

    The difference: Optuna compares a trial with COMPLETED trials only, and a step's value must be one the
    trial reported at exactly that step. In wave 1 no trial has completed while the wave runs side by side, so
    Optuna prunes none of it: its 3 bad runs train to the end. We compare with every run of the group,
    running ones included (a run's value at a step is its last one at or before it, once it reached the
    step), so wave 1's bad runs are stopped while wave 1 runs. In wave 2 both judge against the finished
    wave 1 (ours against wave 2's other runs too) and stop the same 2 runs. So ours = Optuna's + wave 1's
    bad runs, and both leave the 15 good runs alone.
    """
    service = service_factory(sweep_config(tmp_path))
    key = service.create_key(PROJECT)
    wave1 = run_wave(service, key, WAVE1, seed=1)
    assert {run.run_id for run in wave1 if run.stop is not None} == BAD & set(WAVE1)
    wave2 = run_wave(service, key, WAVE2, seed=2)

    alerts = eventually(lambda: rule_alerts(service), lambda found: {a["run"]["id"] for a in found} >= BAD,
                        what="the bad runs' alerts")
    assert {a["run"]["id"] for a in alerts} == BAD
    assert len(alerts) == len(BAD)  # one each: stopped at their first firing
    for alert in alerts:
        assert alert["step"] >= GRACE + 2  # judged from step 10 on, for: 3
        assert alert["value"] > alert["threshold"] > 0  # best so far over the median + 10%

    # Exactly the five were asked to stop, told so in a records answer, and ended ``stopped``.
    stopped = {run.run_id for run in wave1 + wave2 if run.stop is not None}
    assert stopped == BAD
    for run in wave1 + wave2:
        stored = run_json(service, run.run_id)
        if run.run_id in BAD:
            assert stored["state"] == "stopped" and stored["stop_request"]["rule"] == RULE, stored
            assert run.posted < STEPS  # stopped early: it never trained to the end
        else:
            assert stored["state"] == "finished" and stored["stop_request"] is None, stored

    pruned = optuna_pruned([WAVE1, WAVE2])
    assert pruned == BAD & set(WAVE2)
    assert stopped >= pruned and stopped - pruned == BAD & set(WAVE1)


@pytest.mark.both_backends
@pytest.mark.timeout(900)
def test_the_first_wave_still_counts_after_a_restart(service_factory: Callable[..., ServiceProcess],
                                                     tmp_path: Path) -> None:
    """Wave 1 (6 good runs) ends; the service restarts; then two runs alone: they can only be judged (min_runs
    5) against wave 1's stored points, which the restarted service reads back."""
    service = service_factory(sweep_config(tmp_path))
    key = service.create_key(PROJECT)
    run_wave(service, key, {f"w1-{i}": curve(1.00 + 0.01 * i, i) for i in range(6)}, seed=3)
    service.stop()
    service.start()
    runs = run_wave(service, key, {"late-good": curve(1.0, 50), "late-bad": curve(1.6, 51)}, seed=4)
    assert {run.run_id for run in runs if run.stop is not None} == {"late-bad"}
    [alert] = eventually(lambda: rule_alerts(service), lambda found: len(found) >= 1, what="late-bad's alert")
    assert alert["run"]["id"] == "late-bad" and alert["step"] == GRACE + 2  # judged from its step 10, for: 3
    first_wave = [curve(1.00 + 0.01 * i, i)[GRACE + 2] for i in range(6)]
    assert 1.1 * min(first_wave) <= alert["threshold"] <= 1.1 * max(first_wave)  # the median + 10%
    assert run_json(service, "late-bad")["state"] == "stopped"
    assert run_json(service, "late-good")["state"] == "finished"
