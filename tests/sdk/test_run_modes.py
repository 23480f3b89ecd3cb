"""Run lifecycle in-process: offline spool, disabled mode, re-init, context manager, fork."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import runwatch
from _sdkutil import QUIET, history, offline, spool_lines
from runwatch._log import reset_log_once


def test_offline_spool_has_init_history_alerts_exit_in_order() -> None:
    run = offline(name="my-run", id="abc123", tags=["t"], config={"lr": 1})
    assert runwatch.run is run and run.id == "abc123" and run.name == "my-run"
    for i in range(3):
        run.log({"i": i})
    run.alert("A", "text")
    run.finish()
    assert runwatch.run is None
    lines = spool_lines(run)
    assert lines[0]["type"] == "init"
    body = lines[0]["body"]
    assert (body["project"], body["id"], body["name"], body["tags"], body["config"]) == (
        "p", "abc123", "my-run", ["t"], {"lr": 1}
    )
    assert [r["data"]["i"] for r in history(run)] == [0, 1, 2]
    assert [r["type"] for r in lines if r["type"] == "alert"] == ["alert"]
    assert lines[-1]["type"] == "exit" and lines[-1]["state"] == "finished" and lines[-1]["exit_code"] == 0
    seqs = [r["seq"] for r in lines if "seq" in r]
    assert seqs == list(range(1, len(seqs) + 1))
    assert run.dir == Path(os.environ["RUNWATCH_DIR"]) / "run-abc123"


def test_finish_with_nonzero_exit_code_is_failed() -> None:
    run = offline()
    run.finish(exit_code=3)
    exit_rec = spool_lines(run)[-1]
    assert (exit_rec["state"], exit_rec["exit_code"]) == ("failed", 3)


def test_context_manager_marks_failed_when_block_raises() -> None:
    with pytest.raises(ValueError):
        with offline() as run:
            run.log({"a": 1})
            raise ValueError("boom")
    exit_rec = spool_lines(run)[-1]
    assert (exit_rec["state"], exit_rec["exit_code"], exit_rec["reason"]) == ("failed", 1, "ValueError: boom")
    with offline() as run2:
        pass
    assert spool_lines(run2)[-1]["state"] == "finished"


def test_init_while_active_finishes_previous_run() -> None:
    first = offline()
    second = offline()
    assert first.finished and not second.finished
    assert spool_lines(first)[-1]["type"] == "exit"
    assert runwatch.run is second


def test_disabled_mode_accepts_everything_and_writes_nothing(tmp_path: Path) -> None:
    run = runwatch.init(project="p", mode="disabled", config={"a": 1}, settings=QUIET)
    run.log({"x": 1.0})
    run.log({"x": 2.0}, step=5, commit=False)
    runwatch.log({"y": 1})
    run.alert("t", "x", level="error")
    run.config.update({"b": 2})
    run.summary["s"] = 1
    run.define_metric("x", summary="min")
    assert runwatch.config.a == 1 and run.summary["s"] == 1
    run.finish()
    assert not (tmp_path / "rw").exists()


def test_env_mode_and_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWATCH_MODE", "offline")
    monkeypatch.setenv("RUNWATCH_PROJECT", "envproj")
    run = runwatch.init(settings=QUIET)
    assert run.mode == "offline" and run.project == "envproj"
    run.finish()
    with pytest.raises(ValueError):
        runwatch.init(mode="sideways")


def wait_child(pid: int, *, timeout: float) -> int:
    """The exit code of a forked child; a child still running after ``timeout`` s is killed and fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the forked child was still running after {timeout}s")
        time.sleep(0.01)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_never_writes_to_the_parents_run() -> None:
    # A child that believed it owned the run would wait in finish() for a sender it does not have: with
    # this finish timeout it would outlive wait_child's deadline instead of passing after a while.
    run = offline(settings={"finish_timeout": 600})
    run.log({"parent": 1})
    run._flush()
    pid = os.fork()
    if pid == 0:  # child: log a lot, alert, finish, exit without atexit surprises
        code = 0
        try:
            seen: list[str] = []
            handler = logging.Handler()
            handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
            logging.getLogger("runwatch").addHandler(handler)
            reset_log_once()
            for i in range(100):
                runwatch.log({"child": i})
            run.alert("child", "x")
            runwatch.finish()
            if not any("log() in a forked child process is ignored" in message for message in seen):
                code = 2  # the child did not know the run is the parent's
        except BaseException:
            code = 1
        os._exit(code)
    assert wait_child(pid, timeout=60) == 0
    run.log({"parent": 2})
    run.finish()
    lines = spool_lines(run)
    assert [r["data"] for r in history(run)] == [{"parent": 1}, {"parent": 2}]
    assert not any(r.get("type") == "alert" for r in lines)
    assert sum(1 for r in lines if r.get("type") == "exit") == 1


def test_importing_runwatch_does_not_import_numpy_torch_pandas_httpx() -> None:
    import subprocess

    code = "import sys, runwatch; print(sorted(m for m in ('numpy','torch','pandas','httpx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
