"""The example rules of ``config/rules/`` are valid and pass their unit tests, through the real CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "config" / "rules"


def alerts(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts", *args], capture_output=True, text=True, timeout=300)


def test_shipped_rule_files_are_valid() -> None:
    files = sorted(RULES.glob("*.yaml"))
    assert len(files) >= 8
    result = alerts("check-rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok (") == len(files)


def test_every_shipped_rule_file_has_a_unit_test_file() -> None:
    tests = {path.name.removesuffix("_test.yaml") for path in (RULES / "tests").glob("*_test.yaml")}
    assert {path.stem for path in RULES.glob("*.yaml")} <= tests


def test_shipped_rules_pass_their_unit_tests() -> None:
    files = sorted((RULES / "tests").glob("*_test.yaml"))
    result = alerts("test-rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, 0 failed", summary), result.stdout
    assert int(summary.split()[0]) >= 2 * len(files)
    assert "FAIL" not in result.stdout
