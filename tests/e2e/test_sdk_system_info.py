"""SDK process → real service: the system info recorded at ``init`` is on the run's JSON."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.sdk_process import find_run, sdk_env
from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually

SECRET = "s3cret-t0ken"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("service")) as service:
        yield service


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                          capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A training script committed in a repository whose origin URL carries a token."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text("import runwatch\nrunwatch.init(id=__import__('sys').argv[-1])\nrunwatch.finish()\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "train")
    git(path, "remote", "add", "origin", f"https://ci:{SECRET}@git.example.com/vision/train.git")
    return path


def train(repo: Path, env: dict[str, str], run_id: str) -> None:
    done = subprocess.run([sys.executable, "train.py", "--lr", "0.1", "--api-key", SECRET, run_id], cwd=repo,
                          env={**env, "GIT_CEILING_DIRECTORIES": str(repo.parent)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_run_json_has_the_system_info_of_init(service: ServiceProcess, repo: Path, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    train(repo, env, "sys1")
    run = eventually(lambda: find_run(service, "sys1"), lambda r: r is not None and r["state"] == "finished",
                     what="the finished run")
    assert run is not None
    system = run["system"]
    assert system["git"] == {"remote": "https://git.example.com/vision/train.git",
                             "commit": git(repo, "rev-parse", "HEAD"), "branch": "main", "dirty": False}
    assert (system["program"], system["args"]) == ("train.py", ["--lr", "0.1", "--api-key", "***", "sys1"])
    assert system["cwd"] == str(repo) and system["executable"] == sys.executable
    assert (system["python"], system["python_implementation"]) == (platform.python_version(),
                                                                    platform.python_implementation())
    assert system["os"] == platform.platform() and system["cpu_count"] == os.cpu_count()
    assert system["memory_total"] > 0 and system["host"] == run["host"]
    response = service.api("GET", "/api/v1/runs/vision/sys1")
    assert SECRET not in response.text

    # Resumed from a changed tree, the run describes its newest start.
    (repo / "train.py").write_text((repo / "train.py").read_text().replace("id=", "resume='allow', id="))
    train(repo, env, "sys1")
    eventually(lambda: find_run(service, "sys1"), lambda r: r is not None and r["system"]["git"]["dirty"],
               what="the resumed run's dirty tree")


def test_offline_run_carries_it_through_sync(service: ServiceProcess, repo: Path, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path, RUNWATCH_MODE="offline")
    train(repo, env, "sys-off")
    assert find_run(service, "sys-off") is None
    env.pop("RUNWATCH_MODE")
    done = subprocess.run([sys.executable, "-m", "runwatch.cli", "sync", str(tmp_path / "runs")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run = find_run(service, "sys-off")
    assert run is not None and run["system"]["git"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert run["system"]["args"][-1] == "sys-off" and SECRET not in str(run)


def test_a_run_without_system_info_has_an_empty_one(service: ServiceProcess) -> None:
    key = service.create_key("vision")
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "bare"}).status_code == 200
    assert service.api("GET", "/api/v1/runs/vision/bare", key=key).json()["system"] == {}
    too_big = {"project": "vision", "id": "big", "system": {"args": ["x" * 70_000]}}
    response = service.api("POST", "/api/v1/runs", key=key, json=too_big)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "system"]
