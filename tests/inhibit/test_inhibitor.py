"""Inhibition rules: SPEC §4.2's run-crashed example, equal labels, self- and mutual inhibition, config forms."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from alerts.inhibit.inhibitor import Inhibitor, InhibitRule
from alerts.silence.matchers import Matcher


def alert(rule: str, run: str, **labels: str) -> dict[str, str]:
    return {"alertname": rule, "rule": rule, "run": run, "project": "vision", **labels}


CRASH_R1 = alert("run-crashed", "r1", severity="critical")
LOSS_R1 = alert("loss-high", "r1", severity="warning")
LOSS_R2 = alert("loss-high", "r2", severity="warning")


@pytest.fixture
def spec_inhibitor() -> Inhibitor:
    # SPEC §4.2: inhibit: [{source: {rule: run-crashed}, target: {}, equal: [run]}]
    return Inhibitor([InhibitRule.model_validate({"source": {"rule": "run-crashed"}, "target": {}, "equal": ["run"]})])


def test_crash_inhibits_other_alerts_of_the_same_run(spec_inhibitor: Inhibitor) -> None:
    firing = [CRASH_R1, LOSS_R1, LOSS_R2]
    assert spec_inhibitor.inhibits(LOSS_R1, firing)
    assert not spec_inhibitor.inhibits(LOSS_R2, firing)  # another run


def test_source_must_be_firing(spec_inhibitor: Inhibitor) -> None:
    assert not spec_inhibitor.inhibits(LOSS_R1, [LOSS_R1, LOSS_R2])
    assert not spec_inhibitor.inhibits(LOSS_R1, [])
    assert not spec_inhibitor.inhibits(LOSS_R1, iter([alert("run-crashed", "r2")]))
    # The same target is inhibited once its source is among the firing alerts (any iterable of them).
    assert spec_inhibitor.inhibits(LOSS_R1, [LOSS_R1, LOSS_R2, CRASH_R1])
    assert spec_inhibitor.inhibits(LOSS_R1, iter([alert("run-crashed", "r2"), CRASH_R1]))


def test_an_alert_does_not_inhibit_itself(spec_inhibitor: Inhibitor) -> None:
    assert not spec_inhibitor.inhibits(CRASH_R1, [CRASH_R1, LOSS_R1])


def test_alerts_matching_both_sides_do_not_inhibit_each_other(spec_inhibitor: Inhibitor) -> None:
    # Two crash alerts of one run (e.g. from two sources) both match source and target {}: as in
    # Alertmanager neither mutes the other, otherwise the crash would never be notified.
    other_crash = CRASH_R1 | {"source": "sdk"}
    assert not spec_inhibitor.inhibits(CRASH_R1, [CRASH_R1, other_crash])
    assert not spec_inhibitor.inhibits(other_crash, [CRASH_R1, other_crash])
    assert spec_inhibitor.inhibits(LOSS_R1, [CRASH_R1, other_crash])


def test_target_matchers_limit_what_is_inhibited() -> None:
    inhibitor = Inhibitor([InhibitRule.model_validate(
        {"source": {"severity": "critical"}, "target": ["severity=~warning|info"], "equal": ["run"]})])
    firing = [CRASH_R1]
    assert inhibitor.inhibits(LOSS_R1, firing)
    assert inhibitor.inhibits(LOSS_R1 | {"severity": "info"}, firing)
    assert not inhibitor.inhibits(LOSS_R1 | {"severity": "critical"}, firing)
    assert not inhibitor.inhibits(LOSS_R1 | {"severity": "warning-ish"}, firing)  # anchored regex


def test_equal_missing_on_both_sides_counts_as_equal() -> None:
    inhibitor = Inhibitor([InhibitRule.model_validate({"source": ["rule=run-crashed"], "equal": ["run", "zone"]})])
    assert inhibitor.inhibits(LOSS_R1, [CRASH_R1])  # neither has "zone"
    assert not inhibitor.inhibits(LOSS_R1, [CRASH_R1 | {"zone": "eu"}])
    assert inhibitor.inhibits(LOSS_R1 | {"zone": "eu"}, [CRASH_R1 | {"zone": "eu"}])
    assert not inhibitor.inhibits(LOSS_R1 | {"zone": ""}, [CRASH_R1 | {"zone": "eu"}])


def test_no_equal_means_any_source_inhibits() -> None:
    inhibitor = Inhibitor([InhibitRule.model_validate({"source": {"rule": "run-crashed"}, "target": {"run": "r2"}})])
    assert inhibitor.inhibits(LOSS_R2, [CRASH_R1])
    assert not inhibitor.inhibits(LOSS_R1, [CRASH_R1])


def test_any_rule_suffices() -> None:
    inhibitor = Inhibitor([
        InhibitRule.model_validate({"source": {"rule": "nope"}, "equal": ["run"]}),
        InhibitRule.model_validate({"source": {"rule": "run-crashed"}, "equal": ["run"]}),
    ])
    assert inhibitor.inhibits(LOSS_R1, [CRASH_R1])
    assert not Inhibitor([]).inhibits(LOSS_R1, [CRASH_R1])


def test_alertmanager_spellings_and_defaults() -> None:
    rule = InhibitRule.model_validate({"source_matchers": ['rule="run-crashed"'], "target_matchers": ["run=~r.*"]})
    assert rule.source == [Matcher("rule", "=", "run-crashed")]
    assert rule.target == [Matcher("run", "=~", "r.*")]
    assert rule.equal == []
    assert InhibitRule.model_validate({"source": {"rule": "x"}}).target == []
    dumped = InhibitRule.model_validate({"source": {"rule": "x"}, "equal": ["run"]}).model_dump(mode="json")
    assert dumped == {"source": ['rule="x"'], "target": [], "equal": ["run"]}


@pytest.mark.parametrize(("data", "fragment"), [
    ({"source": {"rule": "x"}, "targets": {}}, "targets\n  Extra inputs are not permitted"),
    ({"target": {}}, "source\n  Field required"),
    ({"source": {"rule": "x"}, "source_matchers": ["rule=y"]}, "give either source or source_matchers"),
    ({"source": ["rule"]}, "invalid matcher 'rule'"),
    ({"source": {"rule": "x"}, "equal": ["run-id"]}, "invalid label name 'run-id' in equal"),
])
def test_rule_validation_errors(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        InhibitRule.model_validate(data)
    assert fragment in str(info.value)
