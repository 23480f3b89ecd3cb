"""`alerts demo --once`: the quick start's main job streams runs and delivers notifications."""

from __future__ import annotations

import re
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
    # The dashboard's address and a key that logs in there.
    dashboard = re.search(r"Dashboard: (http://\S+)/projects/demo\nLog in with this API key \(project 'demo'\): (\S+)",
                          result.stdout)
    assert dashboard, output
    # The crashing run raises: the SDK reports it failed (heartbeats were fine, so never "crashed").
    assert re.search(r"run demo/\S+ 'demo-crashing' is failed \(RuntimeError: CUDA error", output), output
    # The shipped rules are loaded and fire; their alerts reach the console channel.
    assert config["rule_files"] == [str(REPO / "config" / "rules" / "*.yaml")]
    assert re.search(r"loaded [1-9]\d* rules from [1-9]\d* files", output), output
    assert "[FIRING] error demo/demo-crashing run-failed: Run demo-crashing failed" in output, output
    assert "[FIRING] warning demo/demo-low-accuracy val-accuracy-low: " in output, output
    assert "[FIRING] critical demo/demo-diverging train-loss-not-finite: " in output, output
