"""``runwatch.sysinfo``: the system info collected once at ``init`` and sent with it as ``system``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import runwatch
from _sdkutil import QUIET, FakeTransport, offline, spool_lines
from runwatch import sysinfo
from runwatch.sync import sync_path

SECRET = "s3cret-t0ken"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                          capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with one commit on ``main`` and an origin whose URL carries credentials."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text("print('hi')\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "first")
    git(path, "remote", "add", "origin", f"https://someone:{SECRET}@git.example.com/org/repo.git")
    return path


def test_git_remote_commit_branch_and_clean_tree(repo: Path) -> None:
    info = sysinfo.collect(cwd=str(repo))
    assert info["git"] == {"remote": "https://git.example.com/org/repo.git", "commit": git(repo, "rev-parse", "HEAD"),
                           "branch": "main", "dirty": False}
    assert SECRET not in json.dumps(info) and "someone" not in json.dumps(info)
    assert info["cwd"] == str(repo)


def test_dirty_means_a_tracked_file_changed(repo: Path) -> None:
    (repo / "notes.txt").write_text("untracked files do not count\n")
    assert sysinfo.collect(cwd=str(repo))["git"]["dirty"] is False
    (repo / "train.py").write_text("print('changed')\n")
    assert sysinfo.collect(cwd=str(repo))["git"]["dirty"] is True


def test_detached_head_has_no_branch_and_a_repo_without_remote_no_remote(repo: Path) -> None:
    git(repo, "remote", "remove", "origin")
    git(repo, "checkout", "-q", "--detach")
    info = sysinfo.git_info(str(repo))
    assert info is not None and set(info) == {"commit", "dirty"}


def test_outside_a_repository_without_git_or_with_git_disabled_there_is_no_git_key(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "git" not in sysinfo.collect(cwd=str(elsewhere))
    assert "git" not in sysinfo.collect(cwd=str(repo), git=False)
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    info = sysinfo.collect(cwd=str(repo))
    assert "git" not in info and info["python"] == platform.python_version()


def test_a_hanging_git_is_given_up(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(sysinfo, "GIT_TIMEOUT", 0.2)
    info = sysinfo.collect(cwd=str(repo))
    assert "git" not in info and "cpu_count" in info


@pytest.mark.parametrize(("url", "sent"), [
    ("https://user:pw@github.com/org/repo.git", "https://github.com/org/repo.git"),
    ("https://ghp_token@github.com/org/repo", "https://github.com/org/repo"),
    ("https://user:pa/ss@host/repo.git", "https://host/repo.git"),
    ("https://host/org/repo.git?private_token=x#frag", "https://host/org/repo.git"),
    ("ssh://git@host:2222/org/repo.git", "ssh://host:2222/org/repo.git"),
    ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ("user:token@host:org/repo.git", "host:org/repo.git"),
    ("/srv/git/repo.git", "/srv/git/repo.git"),
])
def test_remote_urls_lose_their_credentials(url: str, sent: str) -> None:
    assert sysinfo.strip_url_credentials(url) == sent


def test_program_and_arguments_with_secret_values_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--lr", "0.1", "--api-key", SECRET, f"--hf_token={SECRET}",
                                      "--max_tokens", "512", "--tokenizer", "gpt2", "--password", "-v", "data"])
    info = sysinfo.collect(git=False)
    assert info["program"] == "train.py"
    assert info["args"] == ["--lr", "0.1", "--api-key", "***", "--hf_token=***", "--max_tokens", "512",
                            "--tokenizer", "gpt2", "--password", "-v", "data"]
    monkeypatch.setattr(sys, "argv", ["x.py", *[f"--arg{i}={'v' * 900}" for i in range(100)]])
    args = sysinfo.collect(git=False)["args"]
    assert sum(map(len, args)) <= sysinfo.MAX_ARGS_CHARS + 100 and args[-1].endswith("more)")


def test_machine_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    info = sysinfo.collect(git=False)
    assert info["python_implementation"] == platform.python_implementation()
    assert info["executable"] == sys.executable and info["os"] == platform.platform()
    assert info["cpu_count"] == os.cpu_count() and info["memory_total"] > 0
    assert "gpu_count" not in info  # no NVML here
    monkeypatch.setitem(sys.modules, "psutil", None)  # without the extra: /proc/meminfo or sysconf
    without = sysinfo.collect(git=False)
    assert without["memory_total"] > 0 and "cpu_count_physical" not in without


def test_gpus_from_nvml_and_cuda_from_an_imported_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    nvml: Any = types.ModuleType("pynvml")
    nvml.nvmlInit = lambda: calls.append("init")
    nvml.nvmlShutdown = lambda: calls.append("shutdown")
    nvml.nvmlDeviceGetCount = lambda: 2
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetName = lambda h: b"NVIDIA A100-SXM4-40GB" if h == 0 else "NVIDIA A100-SXM4-40GB"
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=42949672960, used=0)
    nvml.nvmlSystemGetDriverVersion = lambda: "535.104.05"
    nvml.nvmlSystemGetCudaDriverVersion = lambda: 12020
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    info = sysinfo.collect(git=False)
    gpu = {"name": "NVIDIA A100-SXM4-40GB", "memory_total": 42949672960}
    assert (info["gpu_count"], info["gpus"], info["gpu_driver"]) == (2, [gpu, gpu], "535.104.05")
    assert info["cuda_version"] == "12.2" and calls == ["init", "shutdown"]
    torch: Any = types.ModuleType("torch")
    torch.version = types.SimpleNamespace(cuda="12.1")
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert sysinfo.collect(git=False)["cuda_version"] == "12.1"  # the runtime the program really uses


def test_torch_is_never_imported_for_it() -> None:
    before = "torch" in sys.modules
    sysinfo.collect(git=False)
    assert ("torch" in sys.modules) == before


def test_nothing_raises_into_the_caller(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(platform, "platform", boom)
    monkeypatch.setattr(os, "cpu_count", boom)
    monkeypatch.setattr(subprocess, "run", boom)
    broken: Any = types.ModuleType("pynvml")
    broken.nvmlInit = boom
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    info = sysinfo.collect(cwd=str(repo))
    assert {"os", "cpu_count", "git", "gpu_count"}.isdisjoint(info)
    assert info["python"] == platform.python_version() and info["memory_total"] > 0


def init_body(run: runwatch.Run) -> dict[str, Any]:
    header = spool_lines(run)[0]
    assert header["type"] == "init"
    return dict(header["body"])


def test_init_sends_it_offline_runs_keep_it_and_sync_uploads_it(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    run = offline(id="sys1")
    run.finish()
    system = init_body(run)["system"]
    assert system["git"]["commit"] == git(repo, "rev-parse", "HEAD") and system["cwd"] == str(repo)
    fake = FakeTransport()
    [result] = sync_path(run.dir, transport_factory=lambda url, key: fake)
    assert result.ok and fake.calls[0][0] == "/api/v1/runs" and fake.calls[0][1]["system"] == system
    online = runwatch.init(project="p", id="sys2", settings=QUIET, transport_factory=lambda: fake)
    assert online._flush()
    assert [body["system"]["git"] for path, body in fake.calls if path == "/api/v1/runs"][-1] == system["git"]
    online.finish()


def test_settings_leave_out_git_or_everything(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    run = offline(id="nogit", settings={"disable_git": True})
    run.finish()
    assert "git" not in init_body(run)["system"] and init_body(run)["system"]["cwd"] == str(repo)
    monkeypatch.setenv("RUNWATCH_DISABLE_SYSTEM_INFO", "1")
    run = offline(id="nosys")
    run.finish()
    assert "system" not in init_body(run)
    monkeypatch.delenv("RUNWATCH_DISABLE_SYSTEM_INFO")
    monkeypatch.setenv("RUNWATCH_DISABLE_GIT", "true")
    run = offline(id="nogit2")
    run.finish()
    assert "git" not in init_body(run)["system"]
