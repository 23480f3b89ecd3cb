"""Where the SDK's settings come from: init arguments, environment variables, the credentials file.

Precedence, highest first: explicit ``init()``/``login()`` arguments, environment variables
(``RUNWATCH_API_KEY``, ``RUNWATCH_BASE_URL``, ``RUNWATCH_PROJECT``, ``RUNWATCH_MODE``, ``RUNWATCH_DIR``,
``RUNWATCH_FINISH_TIMEOUT``, ``RUNWATCH_SYSTEM_METRICS``, ``RUNWATCH_DISABLE_GIT``,
``RUNWATCH_DISABLE_SYSTEM_INFO``, ``RUNWATCH_SILENT``), then ``~/.config/runwatch/credentials.json``
(API keys keyed by base URL, written by ``runwatch login`` with mode 0600), then defaults.

W&B's variables are fallbacks for scripts and launchers written for it (:func:`env_value`): where a
``RUNWATCH_X`` is unset, ``WANDB_X`` is read for ``PROJECT``, ``MODE``, ``DIR``, ``NAME``, ``NOTES``,
``TAGS``, ``RUN_ID``, ``RESUME``, ``RUN_GROUP``, ``JOB_TYPE``, ``SILENT`` and ``CONFIG_PATHS``
(``runwatch.config.config_files``). ``WANDB_API_KEY`` and
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
    "as_settings",
    "credentials_path",
    "env_value",
    "load_api_key",
    "resolve_settings",
    "store_api_key",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
MODES = ("online", "offline", "disabled")
_WANDB_FALLBACKS = frozenset({"PROJECT", "MODE", "DIR", "NAME", "NOTES", "TAGS", "RUN_ID", "RESUME", "RUN_GROUP",
                              "JOB_TYPE", "SILENT", "CONFIG_PATHS"})
_WANDB_MODES = {"dryrun": "offline", "run": "online"}  # W&B's older spellings


def env_value(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """``RUNWATCH_<name>``, else (for the names W&B scripts set) ``WANDB_<name>``; None when neither is set."""
    env = os.environ if env is None else env
    value = env.get(f"RUNWATCH_{name}")
    if not value and name in _WANDB_FALLBACKS:
        value = env.get(f"WANDB_{name}")
    return value or None


def _off_unless(value: Any) -> bool | None:
    """W&B's ``_disable_stats=True`` -> system metrics off; False -> our default (on with the extra)."""
    return False if value else None


def _console_on(value: Any) -> bool:
    return str(value).strip().lower() not in ("off", "false", "0")


# W&B's ``wandb.Settings`` keys that mean something here: key -> (our field, conversion).
_WANDB_SETTINGS: dict[str, tuple[str, Any]] = {
    "_disable_stats": ("system_metrics", _off_unless),
    "x_disable_stats": ("system_metrics", _off_unless),
    "_stats_sample_rate_seconds": ("system_metrics_interval", float),
    "x_stats_sampling_interval": ("system_metrics_interval", float),
    "_disable_meta": ("disable_system_info", bool),
    "x_disable_meta": ("disable_system_info", bool),
    "_disable_machine_info": ("disable_system_info", bool),
    "x_disable_machine_info": ("disable_system_info", bool),
    "console": ("console", _console_on),
    "quiet": ("silent", bool),
    "dir": ("root_dir", str),
}
# W&B's keys for what ``init`` takes as arguments: used when the call leaves the argument out.
_WANDB_INIT_ARGS = {"run_name": "name", "run_notes": "notes", "run_tags": "tags", "run_group": "group",
                    "run_job_type": "job_type", "run_id": "id", "resume": "resume"}
# W&B's keys that have no meaning here: accepted silently, so scripts that pass them run unchanged.
_WANDB_IGNORED = frozenset({
    "entity", "anonymous", "start_method", "save_code", "code_dir", "disable_code", "disable_job_creation",
    "show_info", "show_warnings", "show_errors", "show_colors", "show_emoji", "_service_wait", "x_service_wait",
    "program", "program_relpath", "program_abspath", "notebook_name", "_executable", "x_executable", "reinit",
    "allow_val_change", "sweep_id", "label_disable", "heartbeat_seconds", "_offline", "x_label", "x_primary",
    "x_shared", "sync_tensorboard", "log_internal", "files_dir", "sync_dir", "_disable_setproctitle",
    "x_disable_setproctitle", "_save_requirements", "x_save_requirements", "_require_legacy_service",
    "x_require_legacy_service", "_require_core", "ignore_globs", "fork_from", "resume_from", "tensorboard",
    "email", "username", "host", "git_remote", "git_commit", "git_root", "git_remote_url", "x_files_dir",
    "_file_stream_timeout_seconds", "x_file_stream_timeout_seconds", "_internal_check_process",
    "x_internal_check_process", "disable_hints", "summary_timeout", "strict", "x_save_code",
})


@dataclasses.dataclass(init=False, eq=False)
class Settings:
    """Settings of one run: ``init(settings=runwatch.Settings(...))`` or ``init(settings={...})``.

    Accepts its own fields and W&B's common ``wandb.Settings`` keys, so ``wandb.Settings(silent=True,
    _disable_stats=True, console="off", start_method="thread")`` works unchanged: keys that mean something
    here are mapped (``_disable_stats``/``x_disable_stats`` -> ``system_metrics=False``, ``console="off"``
    -> no console capture, ``quiet`` -> ``silent``, ``run_name``/``run_group``/... -> the init arguments
    the call left out), W&B-only keys are accepted and ignored, unknown keys draw one warning. Only what
    is passed overrides the environment (``RUNWATCH_*``/``WANDB_*``) and the defaults.

    ``system_metrics``: None (the default) samples them when the ``runwatch[system]`` extra (psutil;
    GPUs via pynvml) is installed and stays silent when it is not; ``False`` or the env var
    ``RUNWATCH_SYSTEM_METRICS=0`` turns them off; ``True`` (or ``=1``) asks for them and warns once
    without psutil.

    At init the run records its system info once (OS, Python, program and arguments, git, CPUs,
    memory, GPUs: ``runwatch.sysinfo``); ``disable_git=True`` (``RUNWATCH_DISABLE_GIT=1``) leaves out
    the git part, ``disable_system_info=True`` (``RUNWATCH_DISABLE_SYSTEM_INFO=1``) all of it.

    ``silent`` (``RUNWATCH_SILENT``/``WANDB_SILENT``): the SDK prints nothing and logs errors only.
    ``init_timeout``: how long ``init`` of a resumed run waits to learn where the run ended.
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
    init_timeout: float = 15.0
    linger: float = 0.0  # seconds the sender waits after a wake-up before sending; 0: at once
    system_metrics: bool | None = None
    system_metrics_interval: float = 15.0
    console: bool = True
    signals: bool = True
    disable_git: bool = False
    disable_system_info: bool = False
    silent: bool = False

    def __init__(self, **kwargs: Any) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, f.default)
        self._given: dict[str, Any] = {}
        self.init_args: dict[str, Any] = {}
        """W&B's ``run_name``, ``run_group``, ... passed here: init arguments the call may leave out."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = []
        for key, value in kwargs.items():
            if key in _WANDB_SETTINGS:  # first: W&B's `console` takes strings where ours is a bool
                field, convert = _WANDB_SETTINGS[key]
            elif key in known:
                field, convert = key, None
            elif key in _WANDB_INIT_ARGS:
                self.init_args[_WANDB_INIT_ARGS[key]] = value
                continue
            elif key in _WANDB_IGNORED:
                continue
            else:
                unknown.append(key)
                continue
            if value is None and convert is not None:
                continue
            value = convert(value) if convert is not None else value
            setattr(self, field, value)
            self._given[field] = value
        if unknown:
            from ._log import log_once

            log_once("settings-unknown-" + ",".join(sorted(unknown)),
                     "runwatch.Settings ignores keys it does not know: %s (its own are %s)", sorted(unknown),
                     sorted(known))

    def given(self) -> dict[str, Any]:
        """The fields passed to the constructor (after W&B's keys were mapped): what overrides the rest."""
        return dict(self._given)

    def copy(self) -> Settings:
        other = Settings()
        for f in dataclasses.fields(self):
            setattr(other, f.name, getattr(self, f.name))
        other._given = dict(self._given)
        other.init_args = dict(self.init_args)
        return other

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


def as_settings(value: Settings | Mapping[str, Any] | None) -> Settings:
    """``init(settings=...)``: a ``Settings``, a dict of its (or W&B's) keys, or None."""
    if value is None:
        return Settings()
    if isinstance(value, Settings):
        return value
    if isinstance(value, Mapping):
        return Settings(**{str(k): v for k, v in value.items()})
    raise TypeError(f"settings must be a runwatch.Settings or a dict, got {type(value).__name__}")


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
    if env_value("SILENT", env):
        s.silent = _env_flag(str(env_value("SILENT", env)))
    given = as_settings(overrides)
    for key, value in given.given().items():
        setattr(s, key, value)
    s._given = given.given()
    s.init_args = dict(given.init_args)
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
