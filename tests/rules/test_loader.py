"""Rule files are impossible to get silently wrong: every mistake is a file:line:col error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alerts.errors import ConfigError
from alerts.rules.loader import load_rules


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def errors(paths: list[Path], channels: set[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_rules(paths, channels=channels)
    return info.value.errors


def test_valid_file_loads_every_kind(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.yaml", """
        rules:
          - {name: a, metric: loss, when: "> 5", over: {last: 5, agg: max}, for: 2m, recover_when: "< 4"}
          - {name: b, metric: loss, when: not finite}
          - {name: c, metric: "*", absent: 10m}
          - {name: d, metric: loss, plateau: {patience: 20, min_delta: 0.001}}
          - {name: e, metric: loss, change: {window: 10, baseline: 50, by: "50%", direction: increase}}
          - {name: f, metric: loss, zscore: {window: 100, threshold: 4}}
          - {name: g, expr: "`val/loss` - `train/loss` > 0.5"}
          - {name: h, run_state: [failed, crashed]}
    """)
    ruleset = load_rules([path])
    assert [rule.spec.kind for rule in ruleset.rules] == ["when", "when", "absent", "plateau", "change", "zscore",
                                                          "expr", "run_state"]
    assert ruleset.rules[0].spec.for_ == 120.0 and ruleset.files == {str(path): 8}


def test_all_errors_are_reported_with_positions(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", """
        rules:
          - name: gt-unquoted
            metric: loss
            when: 5
          - name: two-conditions
            metric: loss
            when: "< 1"
            absent: 5m
          - name: Bad_Name
            metric: loss
            when: "< 1"
          - name: bad-duration
            metric: loss
            absent: soon
          - name: bad-expr
            expr: "`a` > > 1"
          - name: unknown-key
            metric: loss
            when: "< 1"
            severty: error
          - name: bad-template
            metric: loss
            when: "< 1"
            title: "{{ runn.name }}"
          - name: bad-glob
            metric: "gpu.[0.util"
            when: "< 1"
          - name: no-metric
            when: "< 1"
          - name: bad-notify
            metric: loss
            when: "< 1"
            notify: [pager]
    """)
    found = errors([path], channels={"console"})
    p = str(path)
    expected_starts = [
        f'{p}:4:11: rule "gt-unquoted": when: condition 5 has no operator; write e.g. "> 5"',
        f'{p}:5:5: rule "two-conditions": a rule needs exactly one condition key',
        f'{p}:9:11: rule "Bad_Name": name: invalid rule name',
        f'{p}:14:13: rule "bad-duration": absent: invalid duration',
        f'{p}:16:11: rule "bad-expr": expr: invalid expression: unexpected \'>\' at column 7',
        f"{p}:20:14: rule \"unknown-key\": unknown key 'severty'",
        f'{p}:24:12: rule "bad-template": title template: \'runn\' is undefined',
        f'{p}:26:13: rule "bad-glob": metric: invalid glob',
        f'{p}:28:5: rule "no-metric": a \'when\' rule needs \'metric\'',
        f'{p}:33:13: rule "bad-notify": notify names unknown channel(s): pager',
    ]
    assert len(found) == len(expected_starts), "\n".join(found)
    for line, start in zip(found, expected_starts, strict=True):
        assert line.startswith(start), f"{line!r} does not start with {start!r}"


def test_folded_block_and_bare_operator_are_explained(tmp_path: Path) -> None:
    folded = write(tmp_path, "folded.yaml", """
        rules:
          - name: folded
            metric: loss
            when: >
              5
    """)
    (error,) = errors([folded])
    assert error.startswith(f'{folded}:4:11: rule "folded": when: condition \'5\\n\' has no operator; write e.g. "> 5"')
    assert "quote it" in error
    inline = write(tmp_path, "inline.yaml", "rules:\n  - name: x\n    metric: loss\n    when: > 5\n")
    (error,) = errors([inline])
    assert error.startswith(f"{inline}:4:13: invalid YAML") and 'quote comparisons: when: "> 5"' in error


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "rules:\n  - {name: x, metric: m, when: '< 1'}\n")
    second = write(tmp_path, "b.yaml",
                   "rules:\n  - {name: y, metric: m, when: '< 1'}\n  - {name: x, run_state: [failed]}\n")
    (error,) = errors([first, second])
    assert error == f'{second}:3:5: rule "x": duplicate rule name (first defined at {first}:2:5)'


def test_field_level_errors_inside_condition_blocks(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", """
        rules:
          - name: p
            metric: m
            plateau: {patience: 0, mode: sideways}
          - name: c
            metric: m
            change: {window: 2, baseline: 2, by: "lots"}
          - name: o
            metric: m
            when: "< 1"
            over: {last: 0}
          - name: r
            run_state: [exploded]
    """)
    found = errors([path])
    assert any(e.startswith(f'{path}:4:25: rule "p": plateau.patience: Input should be greater than or equal to 1')
               for e in found), found
    assert any(e.startswith(f'{path}:4:34: rule "p": plateau.mode:') for e in found), found
    assert any(e.startswith(f'{path}:7:42: rule "c": change.by: change.by must be a number or a percentage')
               for e in found), found
    assert any(e.startswith(f'{path}:11:18: rule "o": over.last:') for e in found), found
    assert any(e.startswith(f'{path}:13:17: rule "r": run_state.0:') for e in found), found


def test_check_rules_command(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", "rules:\n  - {name: x, metric: m, when: '< 1'}\n")
    bad = write(tmp_path, "bad.yaml", "rules:\n  - {name: y, metric: m, when: '1'}\n  - {name: z}\n")
    result = subprocess.run([sys.executable, "-m", "alerts", "check-rules", str(good)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == f"{good}: ok (1 rules)\n"
    result = subprocess.run([sys.executable, "-m", "alerts", "check-rules", str(good), str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 2, result.stderr
    assert f'{bad}:2:32: rule "y"' in result.stderr and f'{bad}:3:5: rule "z"' in result.stderr
