"""System info of a run, collected once at ``init`` and sent with it as ``system`` (W&B's run overview).

``collect()`` returns a JSON-able dict; every key is present only when it could be learnt::

    {"os": "Linux-6.1.0-x86_64-with-glibc2.36", "python": "3.11.9", "python_implementation": "CPython",
     "executable": "/usr/bin/python3", "program": "train.py", "args": ["--lr", "0.1"], "cwd": "/home/me/proj",
     "host": "node-1",
     "git": {"remote": "https://github.com/org/repo.git", "commit": "<40 hex>", "branch": "main",
             "dirty": False},
     "cpu_count": 16, "cpu_count_physical": 8, "memory_total": 67108864000,
     "gpu_count": 2, "gpus": [{"name": "NVIDIA A100-SXM4-40GB", "memory_total": 42949672960}],
     "gpu_driver": "535.104.05", "cuda_version": "12.2"}

Cheap and harmless by construction: no package is imported for it that the process did not already
have (torch is only *read* from ``sys.modules``; psutil and pynvml are the ``runwatch[system]`` extra), git
runs with a short timeout and without taking the index lock, and nothing in here raises into the
caller. Secrets stay home: credentials in the git remote URL and values of secret-looking arguments
(``--api-key``, ``--hf_token``, ``--password=...``) are replaced before anything is sent.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from ._log import log_once

__all__ = ["collect", "git_info", "redact_args", "strip_url_credentials"]

GIT_TIMEOUT = 1.0  # seconds per git call; a git that hangs once is not asked again
MAX_TEXT = 1000  # characters kept of one path or argument
MAX_ARGS_CHARS = 16 * 1024  # characters kept of all arguments together (the service caps the whole dict)
REDACTED = "***"

# Words of an option name that mark its value as a secret ("--hf_token", "--db-password", "--api-key").
_SECRET_WORDS = {"token", "secret", "password", "passwd", "pwd", "apikey", "credential", "credentials"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key")}


def collect(*, git: bool = True, cwd: str | None = None) -> dict[str, Any]:
    """The system info of this process; ``git=False`` skips the git calls (setting ``disable_git``)."""
    info: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("os", platform.platform),
        ("python", platform.python_version),
        ("python_implementation", platform.python_implementation),
        ("executable", lambda: _short(sys.executable) or None),
        ("program", _program),
        ("args", lambda: redact_args(sys.argv[1:])),
        ("cwd", lambda: _short(cwd or os.getcwd())),
        ("host", socket.gethostname),
        ("git", lambda: git_info(cwd) if git else None),
        ("cpu_count", os.cpu_count),
        ("cpu_count_physical", _physical_cpus),
        ("memory_total", _memory_total),
    ]
    for key, step in steps:
        try:
            value = step()
        except Exception as exc:  # one missing fact never costs the others
            log_once(f"sysinfo-{key}", "runwatch: could not read the system info %r: %r", key, exc)
            continue
        if value is not None:
            info[key] = value
    try:
        info.update(_gpus())
    except Exception as exc:
        log_once("sysinfo-gpu", "runwatch: could not read the GPU info: %r", exc)
    return info


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def _program() -> str | None:
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and argv0 not in ("-c", "-"):
        return _short(argv0)
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if isinstance(main_file, str) and main_file:
        return _short(main_file)
    return _short(argv0) if argv0 else None


# -- secrets ------------------------------------------------------------------------------------------
def _is_secret_option(name: str) -> bool:
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


def redact_args(args: list[str]) -> list[str]:
    """``args`` with the values of secret-looking options replaced by ``***``, capped in size.

    ``--api-key=abc`` becomes ``--api-key=***``; ``--hf_token abc`` becomes ``--hf_token ***``.
    """
    out: list[str] = []
    used = 0
    hide_next = False
    for arg in args:
        arg = str(arg)
        if hide_next and not arg.startswith("-"):
            arg = REDACTED
        hide_next = False
        if arg.startswith("-"):
            name, eq, _value = arg.partition("=")
            if _is_secret_option(name):
                if eq:
                    arg = f"{name}={REDACTED}"
                else:
                    hide_next = True
        arg = _short(arg)
        used += len(arg)
        if used > MAX_ARGS_CHARS:
            out.append(f"... ({len(args) - len(out)} more)")
            break
        out.append(arg)
    return out


def strip_url_credentials(url: str) -> str:
    """The remote URL without ``user:password@`` (or a bare token as user), query or fragment.

    ``https://user:ghp_x@github.com/org/repo.git`` becomes ``https://github.com/org/repo.git``. The
    scp-like ``git@github.com:org/repo.git`` (a user name, never a password) is kept as it is.
    """
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if sep:
        rest = re.split(r"[?#]", rest, maxsplit=1)[0]
        at, slash = rest.rfind("@"), rest.find("/")
        # Userinfo ends at the last "@" of the authority; a password with a raw "/" in it moves that
        # "@" past the first "/", which the "user:" before it still gives away.
        if at != -1 and (slash == -1 or at < slash or ":" in rest[:slash]):
            rest = rest[at + 1:]
        return f"{scheme}://{rest}"
    user, at, host = url.partition("@")
    if at and ":" in user:  # "user:secret@host:path" is not scp syntax; never send the part before "@"
        return host
    return url


# -- git ----------------------------------------------------------------------------------------------
class _GitGone(Exception):
    """git is missing, hung or refused: ask it nothing more."""


def _git(args: list[str], cwd: str | None) -> tuple[int, str]:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT,
            text=True,
            errors="replace",
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:  # no git on PATH, or it hung
        raise _GitGone(repr(exc)) from None
    return done.returncode, done.stdout


def git_info(cwd: str | None = None) -> dict[str, Any] | None:
    """``remote`` (credentials stripped), ``commit``, ``branch`` and ``dirty`` of the repository around
    ``cwd`` (default: the working directory); None outside a repository, without git, or when git hangs.
    ``dirty`` means tracked files differ from the commit (untracked files do not count, as in W&B)."""
    info: dict[str, Any] = {}
    try:
        code, out = _git(["rev-parse", "HEAD", "--abbrev-ref", "HEAD"], cwd)
        if code != 0:  # not a repository, or one without commits
            return None
        lines = out.split()
        if lines and re.fullmatch(r"[0-9a-f]{7,64}", lines[0]):
            info["commit"] = lines[0]
        if len(lines) > 1 and lines[1] != "HEAD":  # "HEAD" means a detached head: no branch
            info["branch"] = _short(lines[1])
        code, out = _git(["config", "--get-regexp", r"^remote\..*\.url$"], cwd)
        remotes = dict(line.split(" ", 1) for line in out.splitlines() if " " in line) if code == 0 else {}
        remote = remotes.get("remote.origin.url") or next(iter(remotes.values()), None)
        if remote:
            info["remote"] = _short(strip_url_credentials(remote))
        code, out = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
        if code == 0:
            info["dirty"] = bool(out.strip())
    except _GitGone:
        pass  # keep what was learnt before git went away
    return info or None


# -- hardware -----------------------------------------------------------------------------------------
def _physical_cpus() -> int | None:
    psutil = _optional("psutil")
    count = psutil.cpu_count(logical=False) if psutil is not None else None
    return int(count) if count else None


def _memory_total() -> int | None:
    psutil = _optional("psutil")
    if psutil is not None:
        return int(psutil.virtual_memory().total)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _optional(name: str) -> Any:
    """An optional package if it can be imported (psutil/pynvml: small, no side effects), else None."""
    try:
        return __import__(name)
    except ImportError:
        return None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _gpus() -> dict[str, Any]:
    info: dict[str, Any] = {}
    nvml = _optional("pynvml")
    if nvml is not None:
        try:
            nvml.nvmlInit()
        except Exception:  # the package without a driver or a GPU
            nvml = None
    if nvml is not None:
        try:
            count = int(nvml.nvmlDeviceGetCount())
            gpus = []
            for i in range(count):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                gpus.append({"name": _text(nvml.nvmlDeviceGetName(handle)),
                             "memory_total": int(nvml.nvmlDeviceGetMemoryInfo(handle).total)})
            if count:
                info.update(gpu_count=count, gpus=gpus)
                info["gpu_driver"] = _text(nvml.nvmlSystemGetDriverVersion())
                version = int(nvml.nvmlSystemGetCudaDriverVersion())
                info["cuda_version"] = f"{version // 1000}.{version % 1000 // 10}"
        finally:
            nvml.nvmlShutdown()
    # The CUDA the program runs on, if it already imported torch (never imported here: seconds, and GPU
    # state, for a fact).
    torch = sys.modules.get("torch")
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    if isinstance(cuda, str) and cuda:
        info["cuda_version"] = cuda
    return info
