"""A tiny real training in its own process, logging through a framework integration to a real service whose
one rule fires when a loss goes NaN (tests/e2e/test_integration_*.py)."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.sdk_process import get_run, run_script, sdk_env, stored_alerts
from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually

RULES = """
rules:
  - name: loss-not-finite
    metric: "*loss"
    when: not finite
    severity: critical
"""


def needs(*modules: str) -> pytest.MarkDecorator:
    """Skip unless every module is installed; looked up without importing it (the frameworks take seconds to
    import, and Keras would pick its backend in the test process)."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (installed by .ci/run)")


@contextmanager
def rules_service(workdir: Path) -> Iterator[ServiceProcess]:
    """A service with the not-finite loss rule; notifications go to its console channel."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(RULES)
    with running_service(workdir, {"rule_files": [str(workdir / "rules.yaml")]}) as service:
        yield service


def train(service: ServiceProcess, workdir: Path, code: str, *, timeout: float = 300,
          **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run ``code`` in its own process (working directory ``workdir``, offline for the Hugging Face hub) and
    return it with the runs it announced: each ``RUN <label> <id>`` line of its stdout."""
    workdir.mkdir(parents=True, exist_ok=True)
    environment = sdk_env(service, service.create_key("vision"), workdir, HF_HUB_OFFLINE="1",
                          TRANSFORMERS_OFFLINE="1", HF_HOME=str(workdir / "hf-home"), TOKENIZERS_PARALLELISM="false",
                          **env)
    result = run_script(code, environment, timeout=timeout, cwd=workdir)
    runs = {line.split()[1]: line.split()[2] for line in result.stdout.splitlines() if line.startswith("RUN ")}
    return result, runs


def ended(service: ServiceProcess, run_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
    """The run once the service has it in ``state``."""
    return eventually(lambda: get_run(service, run_id), lambda run: run["state"] == state, timeout=timeout,
                      what=f"run {run_id} {state}")


def rule_alerts(service: ServiceProcess, run_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The run's alerts from the not-finite rule, once there is at least one."""
    return eventually(lambda: [a for a in stored_alerts(service, run_id) if a["rule"] == "loss-not-finite"],
                      bool, timeout=timeout, what=f"a loss-not-finite alert for run {run_id}")
