"""Find, read and validate the service config; every error names ``file:line:col``."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from alerts.config.settings import AlertsSettings
from alerts.config.yaml_source import LoadedYaml, load_yaml
from alerts.errors import ConfigError

DEFAULT_CONFIG_NAME = "alerts.yaml"


def resolve_config_path(explicit: str | None) -> Path | None:
    """``--config``, else ``$ALERTS_CONFIG``, else ``./alerts.yaml`` if present, else built-in defaults."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get("ALERTS_CONFIG"):
        return Path(env)
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def load_settings(path: str | Path | None) -> AlertsSettings:
    """Validate the file at ``path`` (or the defaults when ``None``); raise :class:`ConfigError`."""
    if path is None:
        return _validate({}, None)
    loaded = load_yaml(path)
    if not isinstance(loaded.data, dict):
        raise ConfigError([f"{loaded.where(())}: the config must be a mapping of sections"])
    settings = _validate(loaded.data, loaded)
    base = Path(path).parent
    _make_sqlite_relative_to(settings, base)
    settings.rule_files = [pattern if os.path.isabs(pattern) else str(base / pattern)
                           for pattern in settings.rule_files]
    return settings


def _validate(data: dict[str, object], loaded: LoadedYaml | None) -> AlertsSettings:
    origin = str(loaded.path) if loaded else "<defaults>"
    try:
        return AlertsSettings(**data)  # type: ignore[arg-type]
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            loc = _yaml_loc(error["loc"], data)
            where = loaded.where(loc) if loaded else origin
            field = ".".join(str(part) for part in loc)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            errors.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        raise ConfigError(errors) from None


def _yaml_loc(loc: tuple[int | str, ...], data: object) -> tuple[str | int, ...]:
    """Drop the parts pydantic adds that are not YAML keys (the tag of a discriminated union)."""
    kept: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and isinstance(part, str) \
                and node.get("type") == part:
            continue
        kept.append(part)
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
    return tuple(kept)


def _make_sqlite_relative_to(settings: AlertsSettings, base: Path) -> None:
    """A relative SQLite path in a config file means relative to that file, like ``rule_files``."""
    url = settings.storage.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and ":memory:" not in url:
        relative = url[len(prefix):]
        if not os.environ.get("ALERTS_STORAGE__URL"):
            settings.storage.url = prefix + str((base / relative).resolve())
