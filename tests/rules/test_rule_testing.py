"""``alerts test-rules``: the expanding notation, the test-file format, the diff on failure, the CLI."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alerts.rules.testing import parse_series, run_test_files

RULES = """
rules:
  - name: loss-not-finite
    metric: "train/*loss"
    when: not finite
    severity: critical
    title: "Loss is {{ value }} in {{ run.name }}"
    text: "{{ metric }} = {{ value }} at step {{ step }}"
  - name: acc-low
    metric: val/acc
    when: "< 0.5"
    for: 2
  - name: run-hung
    metric: "*"
    absent: 10m
  - name: run-failed
    run_state: [failed, crashed, killed]
    title: "{{ run.name }} {{ run.state }}: {{ reason | default('no reason', true) }}"
"""


def write(tmp_path: Path, test_yaml: str, *, name: str = "rules_test.yaml", rules: str = RULES) -> Path:
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(rules))
    path = tmp_path / name
    path.write_text(textwrap.dedent(test_yaml).lstrip())
    return path


def run(*paths: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = run_test_files(list(paths), out)
    return code, out.getvalue()


# Expanding notation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("1 2.5 -3 1e-3", [1.0, 2.5, -3.0, 0.001]),
    ("1+0.5x3", [1.0, 1.5, 2.0, 2.5]),
    ("1.0-0.1x5", [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]),  # decimal arithmetic: exactly 0.7, not 0.7000000000000001
    ("-1-2x2", [-1.0, -3.0, -5.0]),
    ("2x2", [2.0, 2.0, 2.0]),
    ("7x0", [7.0]),
    ("_ 1 _x2 2", [None, 1.0, None, None, None, 2.0]),
    ("inf -inf +inf Inf", [math.inf, -math.inf, math.inf, math.inf]),
    ("  1\t2\n3 ", [1.0, 2.0, 3.0]),
    ("", []),
])
def test_expanding_notation(text: str, expected: list[float | None]) -> None:
    assert parse_series(text) == expected


def test_nan_forms() -> None:
    values = parse_series("nan NaN nanx1 infx1")
    assert [v is not None and math.isnan(v) for v in values] == [True, True, True, True, False, False]
    assert values[4:] == [math.inf, math.inf]


@pytest.mark.parametrize(("text", "message"), [
    ("1 2 abc", "item 3 'abc': expected a number, nan, inf, -inf, _ (no point), or a+bxn"),
    ("1.0-0.1", "item 1 '1.0-0.1': expected"),
    ("1+x3", "item 1 '1+x3'"),
    ("1 x3", "item 2 'x3'"),
    ("1-0.1x-2", "item 1 '1-0.1x-2'"),
    ("1+-0.1x2", "item 1 '1+-0.1x2'"),
    ("1,2", "item 1 '1,2'"),
    ("1x99999999", "item 1 '1x99999999': repeat count 99999999 is over the limit"),
])
def test_expanding_notation_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_series(text)
    assert message in str(error.value)


# Running test files ---------------------------------------------------------------------------------
PASSING = """
rule_files: [rules.yaml]
tests:
  - name: loss goes NaN
    runs:
      - id: r1
        project: vision
        name: exp-1
        tags: [baseline]
        config: {dataset: CIFAR-100}
        series:
          train/loss: "1.0-0.1x5 nan"
          val/acc: "0.9 _ 0.9"
    expect:
      - at: 5
        alerts: []
      - at: 6
        alerts:
          - rule: loss-not-finite
            run: r1
            labels: {metric: train/loss, severity: critical, project: vision}
            title: "Loss is nan in exp-1"
            text: "train/loss = nan at step 6"
  - name: for counts consecutive evaluations
    runs:
      - series: {val/acc: "0.9 0.1 0.9 0.1 0.1"}
    expect:
      - {at: 3, alerts: []}
      - {at: 4, alerts: [{rule: acc-low, run: run-1, labels: {metric: val/acc}}]}
"""


def test_a_passing_file(tmp_path: Path) -> None:
    code, output = run(write(tmp_path, PASSING))
    assert code == 0, output
    assert "PASS  loss goes NaN" in output and "PASS  for counts consecutive evaluations" in output
    assert output.splitlines()[-1] == "2 passed, 0 failed"


FAILING = """
rule_files: ["rule*.yaml"]
tests:
  - name: wrong title and a missing alert
    runs:
      - id: r1
        name: exp-1
        series:
          train/loss: "1.0 nan"
          val/acc: "0.1x1"
    expect:
      - at: 1
        alerts:
          - {rule: loss-not-finite, run: r1, labels: {metric: train/loss}, title: "Loss is NaN in exp-1"}
          - {rule: run-failed, run: r1}
      - at: 2                              # a later check of the same test is still reported
        alerts: []
  - name: a test after a failing one still runs
    runs: [{series: {train/loss: "1"}}]
    expect: [{at: 0, alerts: []}]
"""


def test_a_failing_file_prints_a_diff_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, FAILING, name="failing_test.yaml")
    code, output = run(path)
    assert code == 1
    assert f"FAIL  wrong title and a missing alert  ({path}:3:5)" in output
    diff = output[output.index("at step 1"):output.index("  PASS")]
    assert [line.removeprefix(" " * 8) for line in diff.splitlines()] == [
        "at step 1 (1s from the start): expected 2 firing alert(s), got 2; expected (-), firing (+):",
        "  rule: loss-not-finite, run: r1",
        "-   title: \"Loss is NaN in exp-1\"",
        "+   title: \"Loss is nan in exp-1\"",
        "- rule: run-failed, run: r1",
        "+ rule: acc-low, run: r1, labels: {metric: val/acc, project: test, run_name: exp-1, severity: warning}, "
        "title: \"acc-low: val/acc in exp-1\", text: \"val/acc = 0.1 at step 1 (when: < 0.5)\"",
        "",
        "at step 2 (2s from the start): expected 0 firing alert(s), got 2; expected (-), firing (+):",
        "+ rule: loss-not-finite, run: r1, labels: {metric: train/loss, project: test, run_name: exp-1, "
        "severity: critical}, title: \"Loss is nan in exp-1\", text: \"train/loss = nan at step 1\"",
        "+ rule: acc-low, run: r1, labels: {metric: val/acc, project: test, run_name: exp-1, severity: warning}, "
        "title: \"acc-low: val/acc in exp-1\", text: \"val/acc = 0.1 at step 1 (when: < 0.5)\"",
        "",
    ]
    assert "PASS  a test after a failing one still runs" in output
    assert output.splitlines()[-1] == "1 passed, 1 failed"


def test_labels_mismatch_is_shown_against_the_expected_keys(tmp_path: Path) -> None:
    code, output = run(write(tmp_path, """
        rule_files: [rules.yaml]
        tests:
          - name: labels
            runs: [{series: {train/a_loss: "nan"}}]
            expect: [{at: 0, alerts: [{rule: loss-not-finite, labels: {metric: train/b_loss, team: x}}]}]
    """))
    assert code == 1
    assert "-   labels: {metric: train/b_loss, team: x}" in output
    assert "+   labels: {metric: train/a_loss}  (other labels: {project: test, run_name: run-1, severity: critical})" \
        in output


def test_partial_expectations_are_matched_as_a_whole(tmp_path: Path) -> None:
    # {rule} alone could take either alert; the matching must leave train/b for the labelled expectation
    code, output = run(write(tmp_path, """
        rule_files: [rules.yaml]
        tests:
          - name: two alerts of one rule
            runs: [{series: {train/a_loss: "nan", train/b_loss: "nan"}}]
            expect:
              - at: 0
                alerts:
                  - {rule: loss-not-finite}
                  - {rule: loss-not-finite, labels: {metric: train/a_loss}}
          - name: one expectation cannot match two alerts
            runs: [{series: {train/a_loss: "nan", train/b_loss: "nan"}}]
            expect: [{at: 0, alerts: [{rule: loss-not-finite}]}]
    """))
    assert code == 1
    assert "PASS  two alerts of one rule" in output and "FAIL  one expectation cannot match two alerts" in output


def test_absent_is_checked_past_the_end_of_the_series_and_at_can_be_a_duration(tmp_path: Path) -> None:
    code, output = run(write(tmp_path, """
        rule_files: [rules.yaml]
        evaluation_interval: 30s
        tests:
          - name: hung after the last point
            runs:
              - id: r1
                series: {train/x: "1x3"}           # points at 0s..90s
            expect:
              - {at: 20, alerts: []}               # 10m after the last point is step 23 (11m30s)
              - {at: 11m, alerts: []}
              - {at: 690s, alerts: [{rule: run-hung, run: r1, labels: {metric: "*"}}]}
              - {at: 1h, alerts: [{rule: run-hung, run: r1}]}
    """))
    assert code == 0, output


def test_state_changes(tmp_path: Path) -> None:
    code, output = run(write(tmp_path, """
        rule_files: [rules.yaml]
        evaluation_interval: 1m
        tests:
          - name: a crash fires run_state, resolves metric alerts, stops absent; a resume resolves it
            runs:
              - id: r1
                name: exp-1
                series: {val/acc: "0.1x2"}        # the last points arrive at step 2, before the crash
                states:
                  - {at: 2, state: crashed, reason: "no contact for 60s"}
                  - {at: 30m, state: running}
              - id: r2
                states: [{at: 2, state: finished}]
            expect:
              - {at: 1, alerts: [{rule: acc-low, run: r1}]}
              - {at: 2, alerts: [{rule: run-failed, run: r1, title: "exp-1 crashed: no contact for 60s"}]}
              - {at: 29m, alerts: [{rule: run-failed, run: r1}]}
              - {at: 30m, alerts: []}
              - {at: 40m, alerts: [{rule: run-hung, run: r1}]}
    """))
    assert code == 0, output


def test_cli_runs_test_files(tmp_path: Path) -> None:
    good = write(tmp_path, PASSING, name="good_test.yaml")
    bad = write(tmp_path, FAILING, name="bad_test.yaml")
    result = subprocess.run([sys.executable, "-m", "alerts", "test-rules", str(good)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "2 passed, 0 failed"
    result = subprocess.run([sys.executable, "-m", "alerts", "test-rules", str(good), str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "+   title: \"Loss is nan in exp-1\"" in result.stdout
    assert result.stdout.splitlines()[-1] == "3 passed, 1 failed"


# Invalid test files -----------------------------------------------------------------------------------
def invalid(tmp_path: Path, test_yaml: str, rules: str = RULES) -> list[str]:
    path = write(tmp_path, test_yaml, rules=rules)
    code, output = run(path)
    assert code == 1, output
    lines = output.splitlines()
    assert lines[0] == f"{path}: invalid test file"
    assert lines[-2:] == ["1 invalid test file", "0 passed, 0 failed"]
    return [line.strip().replace(str(path), "FILE") for line in lines[1:-2]]


def test_unknown_key_is_reported_at_its_position(tmp_path: Path) -> None:
    assert invalid(tmp_path, """
        rule_files: [rules.yaml]
        tests:
          - name: t
            runs:
              - id: r1
                serie: {train/loss: "1"}
            expect: [{at: 0, alerts: []}]
    """) == ["FILE:6:16: test 't': unknown key 'serie'"]


def test_every_validation_error_is_reported_with_a_position(tmp_path: Path) -> None:
    assert invalid(tmp_path, """
        rule_files: [rules.yaml]
        evaluation_interval: 0s
        colour: blue
        tests:
          - name: t
            runs:
              - series: {train/loss: "1.0 0.9 abc"}
                states: [{at: 1, state: exploded}]
            expect:
              - {at: soon, alerts: []}
              - {alerts: []}
    """) == [
        "FILE:2:22: evaluation_interval: must be positive",
        "FILE:7:30: test 't': runs[0].series.train/loss: item 3 'abc': expected a number, nan, inf, -inf, "
        "_ (no point), or a+bxn, a-bxn, axn (e.g. 1.0-0.1x5)",
        "FILE:8:33: test 't': runs[0].states[0].state: Input should be 'running', 'finished', 'failed', "
        "'killed', 'crashed' or 'stopped'",
        "FILE:10:14: test 't': expect[0].at: expected a step index (0, 1, ...) or a duration from the start "
        "like 10m, got 'soon'",
        "FILE:11:9: test 't': expect[1]: missing required key 'at'",
        "FILE:3:9: unknown key 'colour'",
    ]


def test_references_and_timing_are_checked(tmp_path: Path) -> None:
    assert invalid(tmp_path, """
        rule_files: [rules.yaml]
        evaluation_interval: 1m
        tests:
          - name: t
            runs:
              - id: r1
                states:
                  - {at: 1, state: running}
                  - {at: 2, state: crashed}
                  - {at: 3, state: failed}
              - id: r1
            expect:
              - {at: 90s, alerts: [{rule: no-such-rule}, {rule: acc-low, run: r9}]}
    """) == [
        "FILE:8:28: test 't': run 'r1' is already running at step 1 (state 'running' resumes an ended run)",
        "FILE:10:28: test 't': run 'r1' has already ended (crashed) at step 3; resume it first with state 'running'",
        "FILE:11:13: test 't': duplicate run id 'r1'",
        "FILE:13:14: test 't': at 90s is not a whole number of evaluation intervals (1m): steps happen only "
        "at multiples of it",
        "FILE:13:35: test 't': unknown rule 'no-such-rule' (rules loaded: acc-low, loss-not-finite, run-failed, "
        "run-hung)",
        "FILE:13:71: test 't': unknown run 'r9' (runs of this test: r1)",
    ]


def test_invalid_rule_files_print_the_loaders_errors(tmp_path: Path) -> None:
    lines = invalid(tmp_path, """
        rule_files: [rules.yaml]
        tests: [{name: t, runs: [{}], expect: [{at: 0, alerts: []}]}]
    """, rules="""
        rules:
          - name: bad
            metric: x
            when: 5
    """)
    assert len(lines) == 1 and "rules.yaml:5:11: rule \"bad\": when: condition 5 has no operator" in lines[0]


def test_rule_files_that_match_nothing(tmp_path: Path) -> None:
    assert invalid(tmp_path, """
        rule_files: [rules.yaml, "missing/*.yaml"]
        tests: [{name: t, runs: [{}], expect: [{at: 0, alerts: []}]}]
    """) == ["FILE:1:26: rule_files pattern 'missing/*.yaml' matches no file"]


def test_a_glob_does_not_pick_up_the_test_file_itself(tmp_path: Path) -> None:
    code, output = run(write(tmp_path, PASSING.replace("[rules.yaml]", '["*.yaml"]')))
    assert code == 0, output


def test_an_invalid_file_does_not_stop_the_others(tmp_path: Path) -> None:
    good = write(tmp_path, PASSING, name="good_test.yaml")
    broken = tmp_path / "broken_test.yaml"
    broken.write_text("tests: [\n")
    code, output = run(broken, good)
    assert code == 1
    assert f"{broken}: invalid test file" in output and "invalid YAML" in output
    assert output.splitlines()[-2:] == ["1 invalid test file", "2 passed, 0 failed"]


def test_where_group_and_job_type_choose_the_runs(tmp_path: Path) -> None:
    rules = """
    rules:
      - name: ddp-train-loss
        where: {group: "ddp-*", job_type: train}
        metric: loss
        when: not finite
    """
    path = write(tmp_path, """
    rule_files: [rules.yaml]
    tests:
      - name: only the group's training workers
        runs:
          - {id: w0, group: ddp-7, job_type: train, series: {loss: "1 nan"}}
          - {id: e0, group: ddp-7, job_type: eval, series: {loss: "1 nan"}}
          - {id: solo, job_type: train, series: {loss: "1 nan"}}
          - {id: other, group: sweep-1, job_type: train, series: {loss: "1 nan"}}
        expect:
          - {at: 1, alerts: [{rule: ddp-train-loss, run: w0}]}
    """, rules=rules)
    code, output = run(path)
    assert code == 0, output


COMPARE_RULES = """
rules:
  - name: behind
    metric: val/loss
    compare: {to: {config: {model: same}}, min_runs: 2, margin: 20%}
    title: "{{ run.name }} behind {{ compare.runs }} runs"
"""


def test_runs_of_a_sweep_start_in_waves_with_their_own_config(tmp_path: Path) -> None:
    """``start``: a run's series begins at its own step 0 at that step of the test (a later wave)."""
    path = write(tmp_path, """
    rule_files: [rules.yaml]
    tests:
      - name: wave 2 is judged against the ended wave 1 of its model
        runs:
          - {id: a1, config: {model: a}, series: {val/loss: "1.0x3"}, states: [{at: 3, state: finished}]}
          - {id: a2, config: {model: a}, series: {val/loss: "1.1x3"}, states: [{at: 3, state: finished}]}
          - {id: b1, config: {model: b}, series: {val/loss: "5.0x9"}}
          - {id: late, config: {model: a}, start: 5, series: {val/loss: "1.0 2.0"}}
        expect:
          - {at: 5, alerts: []}
          - {at: 6, alerts: [{rule: behind, run: late, title: late behind 2 runs}]}
    """, rules=COMPARE_RULES)
    code, output = run(path)
    assert code == 0, output


def test_a_state_change_before_the_run_starts_is_an_error(tmp_path: Path) -> None:
    assert invalid(tmp_path, """
        rule_files: [rules.yaml]
        tests:
          - name: t
            runs:
              - {id: r1, start: 5, states: [{at: 2, state: finished}]}
            expect: [{at: 6, alerts: []}]
    """, rules=COMPARE_RULES) == [
        "FILE:5:42: test 't': run 'r1' starts at step 5: a state change at step 2 comes before it"]
