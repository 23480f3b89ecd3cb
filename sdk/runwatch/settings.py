"""Where the SDK's settings come from: init arguments, environment variables, the credentials file.

Precedence, highest first: explicit ``init()``/``login()`` arguments, environment variables
(``RUNWATCH_API_KEY``, ``RUNWATCH_BASE_URL``, ``RUNWATCH_PROJECT``, ``RUNWATCH_MODE``, ``RUNWATCH_DIR``,
``RUNWATCH_FINISH_TIMEOUT``, ``RUNWATCH_SYSTEM_METRICS``, ``RUNWATCH_DISABLE_GIT``,
``RUNWATCH_DISABLE_SYSTEM_INFO``), then ``~/.config/runwatch/credentials.json``
(API keys keyed by base URL, written by ``runwatch login`` with mode 0600), then defaults.

W&B's variables are fallbacks for scripts and launchers written for it (:func:`env_value`): where a
``RUNWATCH_X`` is unset, ``WANDB_X`` is read for ``PROJECT``, ``MODE``, ``DIR``, ``NAME``, ``NOTES``,
``TAGS``, ``RUN_ID``, ``RESUME``, ``RUN_GROUP`` and ``JOB_TYPE``. ``WANDB_API_KEY`` and
``WANDB_BASE_URL`` are never read: they are W&B's secret and W&B's servers.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_BASE_URL",
    "Settings",
    "credentials_path",
    "env_value",
    "load_api_key",
    "resolve_settings",
    "store_api_key",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
MODES = ("online", "offline", "disabled")
_WANDB_FALLBACKS = frozenset({"PROJECT", "MODE", "DIR", "NAME", "NOTES", "TAGS", "RUN_ID", "RESUME", "RUN_GROUP",
                              "JOB_TYPE"})
_WANDB_MODES = {"dryrun": "offline", "run": "online"}  # W&B's older spellings


def env_value(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """``RUNWATCH_<name>``, else (for the names W&B scripts set) ``WANDB_<name>``; None when neither is set."""
    env = os.environ if env is None else env
    value = env.get(f"RUNWATCH_{name}")
    if not value and name in _WANDB_FALLBACKS:
        value = env.get(f"WANDB_{name}")
    return value or None


@dataclasses.dataclass
class Settings:
    """Resolved settings of one run. Pass overrides as ``init(settings={...})``.

    ``system_metrics``: None (the default) samples them when the ``runwatch[system]`` extra (psutil;
    GPUs via pynvml) is installed and stays silent when it is not; ``False`` or the env var
    ``RUNWATCH_SYSTEM_METRICS=0`` turns them off; ``True`` (or ``=1``) asks for them and warns once
    without psutil.

    At init the run records its system info once (OS, Python, program and arguments, git, CPUs,
    memory, GPUs: ``runwatch.sysinfo``); ``disable_git=True`` (``RUNWATCH_DISABLE_GIT=1``) leaves out
    the git part, ``disable_system_info=True`` (``RUNWATCH_DISABLE_SYSTEM_INFO=1``) all of it.
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    project: str | None = None
    mode: str = "online"
    root_dir: str = "./runwatch"
    finish_timeout: float = 30.0
    max_queue_bytes: int = 64 * 1024 * 1024
    batch_max_records: int = 1000
    batch_max_bytes: int = 1024 * 1024
    heartbeat_interval: float = 10.0
    summary_interval: float = 5.0
    retry_max_backoff: float = 3.0
    request_timeout: float = 10.0
    linger: float = 0.002
    system_metrics: bool | None = None
    system_metrics_interval: float = 15.0
    console: bool = True
    signals: bool = True
    disable_git: bool = False
    disable_system_info: bool = False

    def __repr__(self) -> str:
        # The key must never end up in a log line or traceback.
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if fields["api_key"]:
            fields["api_key"] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"


def _env_flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def credentials_path() -> Path:
    """``$HOME/.config/runwatch/credentials.json`` (``HOME`` honoured so tests can redirect it)."""
    home = os.environ.get("HOME") or str(Path.home())
    return Path(home) / ".config" / "runwatch" / "credentials.json"


def _normalise_host(base_url: str) -> str:
    return base_url.rstrip("/")


def load_api_key(base_url: str) -> str | None:
    """Return the stored key for ``base_url`` or None; an unreadable file counts as no key."""
    path = credentials_path()
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    hosts = data.get("hosts", {}) if isinstance(data, dict) else {}
    entry = hosts.get(_normalise_host(base_url))
    if isinstance(entry, dict) and isinstance(entry.get("api_key"), str):
        return str(entry["api_key"])
    return None


def store_api_key(base_url: str, api_key: str) -> Path:
    """Store ``api_key`` for ``base_url``; the file is created with mode 0600 (never world-readable)."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        data = json.loads(path.read_text("utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data.setdefault("hosts", {})[_normalise_host(base_url)] = {"api_key": api_key}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def resolve_settings(
    overrides: Settings | Mapping[str, Any] | None = None,
    *,
    project: str | None = None,
    mode: str | None = None,
    dir: str | os.PathLike[str] | None = None,
) -> Settings:
    """Merge defaults, environment, credentials file and explicit values into one ``Settings``."""
    s = Settings()
    env = os.environ
    if env.get("RUNWATCH_BASE_URL"):
        s.base_url = env["RUNWATCH_BASE_URL"]
    if env_value("PROJECT", env):
        s.project = env_value("PROJECT", env)
    if env_value("MODE", env):
        found = str(env_value("MODE", env)).strip().lower()
        s.mode = _WANDB_MODES.get(found, found)
    if env.get("RUNWATCH_DIR"):
        s.root_dir = env["RUNWATCH_DIR"]
    elif env.get("WANDB_DIR"):  # W&B keeps its files in $WANDB_DIR/wandb; ours go beside them
        s.root_dir = os.path.join(env["WANDB_DIR"], "runwatch")
    if env.get("RUNWATCH_FINISH_TIMEOUT"):
        try:
            s.finish_timeout = float(env["RUNWATCH_FINISH_TIMEOUT"])
        except ValueError:
            pass
    if env.get("RUNWATCH_SYSTEM_METRICS"):
        s.system_metrics = _env_flag(env["RUNWATCH_SYSTEM_METRICS"])
    if env.get("RUNWATCH_DISABLE_GIT"):
        s.disable_git = _env_flag(env["RUNWATCH_DISABLE_GIT"])
    if env.get("RUNWATCH_DISABLE_SYSTEM_INFO"):
        s.disable_system_info = _env_flag(env["RUNWATCH_DISABLE_SYSTEM_INFO"])
    if isinstance(overrides, Settings):
        s = dataclasses.replace(overrides)
    elif overrides:
        known = {f.name for f in dataclasses.fields(Settings)}
        for key, value in overrides.items():
            if key not in known:
                raise TypeError(f"unknown runwatch setting {key!r}; expected one of {sorted(known)}")
            setattr(s, key, value)
    if project is not None:
        s.project = project
    if mode is not None:
        s.mode = mode.strip().lower()
    if dir is not None:
        s.root_dir = os.fspath(dir)
    if s.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {s.mode!r}")
    s.base_url = s.base_url.rstrip("/")
    if not s.api_key:
        s.api_key = env.get("RUNWATCH_API_KEY") or load_api_key(s.base_url)
    return s
