"""``runwatch.integration``: lazy imports, the missing-extra errors, and what the integrations share (the run they
may end, hyperparameters as config). The integrations themselves train for real in tests/e2e/test_integration_*.py."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import types

import pytest
import runwatch
from _sdkutil import QUIET, spool_lines
from runwatch import _session
from runwatch.integration._common import RunOwner, flat_config

FRAMEWORKS = ("torch", "lightning", "pytorch_lightning", "lightning_fabric", "transformers", "keras", "tensorflow",
              "jax")


def test_importing_runwatch_and_the_package_imports_no_framework() -> None:
    code = ("import sys, runwatch, runwatch.integration; "
            f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert runwatch.integration.__all__ == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("module", "blocked", "extra"), [
    ("lightning", ["lightning", "pytorch_lightning", "lightning_fabric"], "lightning"),
    ("transformers", ["transformers"], "transformers"),
    ("keras", ["keras"], "keras"),
])
def test_a_missing_framework_names_the_extra(module: str, blocked: list[str], extra: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in blocked:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
    monkeypatch.delitem(sys.modules, f"runwatch.integration.{module}", raising=False)
    with pytest.raises(ImportError, match=rf'runwatch.integration.{module} needs .*pip install "runwatch\[{extra}\]"'):
        importlib.import_module(f"runwatch.integration.{module}")


def test_keras_2_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    old = types.ModuleType("keras")
    old.__version__ = "2.15.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keras", old)
    monkeypatch.delitem(sys.modules, "runwatch.integration.keras", raising=False)
    with pytest.raises(ImportError, match=r'needs Keras 3, found keras 2.15.0; .*pip install "runwatch\[keras\]"'):
        importlib.import_module("runwatch.integration.keras")


def offline_owner(**kwargs: object) -> RunOwner:
    return RunOwner({"project": "p", "mode": "offline", "settings": QUIET, **kwargs})


def test_the_run_a_script_started_is_used_and_never_ended() -> None:
    mine = runwatch.init(project="p", mode="offline", settings=QUIET)
    owner = offline_owner()
    assert owner.get() is mine and not owner.owned
    owner.finish()
    owner.fail(ValueError("x"), "failed")
    assert not mine.finished
    mine.finish()


def test_its_own_run_is_started_ended_and_continued_by_id(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    init = _session.init
    monkeypatch.setattr(_session, "init", lambda **kwargs: calls.append(kwargs) or init(**kwargs))
    owner = offline_owner(name="fit")
    run = owner.get(project="default", tags=["a"])  # the integration's defaults, under its init_kwargs
    assert owner.owned and runwatch.run is run and (run.name, run.project, run.tags) == ("fit", "p", ["a"])
    owner.finish()
    assert run.finished and owner.started() is None
    again = owner.get()  # trainer.test() after fit: the same run, resumed
    assert again is not run and (again.id, again.name) == (run.id, "fit") and owner.owned
    assert calls[1]["id"] == run.id and calls[1]["resume"] == "allow"
    owner.finish()


def test_a_newer_active_run_wins_over_its_finished_one() -> None:
    owner = offline_owner()
    first = owner.get()
    owner.finish()
    mine = runwatch.init(project="p", mode="offline", settings=QUIET)
    assert owner.get() is mine and not owner.owned
    assert first.finished and not mine.finished
    mine.finish()


def test_failing_records_the_exception_and_its_traceback() -> None:
    owner = offline_owner()
    run = owner.get()
    try:
        raise ValueError("bad batch")
    except ValueError as exc:
        owner.fail(exc, "unused")
    [exit_record] = [line for line in spool_lines(run) if line["type"] == "exit"]
    assert (exit_record["state"], exit_record["exit_code"]) == ("failed", 1)
    assert exit_record["reason"] == "ValueError: bad batch"
    assert 'raise ValueError("bad batch")' in exit_record["console_tail"]


@pytest.mark.parametrize(("exc", "state", "reason"), [
    (None, "failed", "Lightning ended the run: aborted"),
    (KeyboardInterrupt(), "killed", "SIGINT"),
])
def test_failing_without_an_exception_or_by_interrupt(exc: BaseException | None, state: str, reason: str) -> None:
    owner = offline_owner()
    run = owner.get()
    owner.fail(exc, "Lightning ended the run: aborted")
    [exit_record] = [line for line in spool_lines(run) if line["type"] == "exit"]
    assert (exit_record["state"], exit_record["reason"]) == (state, reason)


def test_flat_config() -> None:
    def scheduler() -> None: ...

    params = argparse.Namespace(lr=0.1, optim={"name": "adam", "betas": {"b1": 0.9}}, data=argparse.Namespace(n=3),
                                empty={}, act=scheduler, cls=ValueError, hub_token="secret", layers=[1, 2])
    assert flat_config(params, drop=lambda key: key.endswith("_token")) == {
        "lr": 0.1, "optim.name": "adam", "optim.betas.b1": 0.9, "data.n": 3, "empty": {},
        "act": "test_flat_config.<locals>.scheduler", "cls": "ValueError", "layers": [1, 2],
    }
    assert flat_config(None) == {} and flat_config({"a": {"b": 1}}) == {"a.b": 1}
