"""`alerts demo --once`: the quick start's main job streams runs and delivers notifications."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def test_demo_streams_runs_and_delivers_alerts(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config" / "alerts.yaml").read_text())
    config["server"]["port"] = free_port()
    config["storage"]["url"] = "sqlite:///demo.db"
    config["rule_files"] = [str(REPO / "config" / "rules" / pattern)
                            for pattern in [Path(p).name for p in config.get("rule_files", [])]]
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "alerts", "demo", "--once", "--config", str(path)],
                            capture_output=True, text=True, timeout=180, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "[FIRING] error demo/demo-diverging sdk: Loss is NaN" in output  # an explicit alert()
    assert "is crashed" in output or "is failed" in output  # the crashing run's state change
    if config["rule_files"]:
        assert "rule" in output and "[FIRING]" in output
        fired_rules = [line for line in output.splitlines() if "alerts.rules.engine: alert" in line
                       and " firing: " in line]
        assert fired_rules, output
