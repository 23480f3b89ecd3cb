"""``run.config``: the run's hyperparameters, W&B style (attribute and item access).

Changing the value of an existing key raises ``ConfigError`` unless ``allow_val_change=True``; setting
the same value again is allowed. Every change is reported through ``on_change`` so the run can send a
``config`` record (the whole mapping, last one wins).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["Config", "as_mapping", "config_files"]


def as_mapping(obj: Any) -> dict[str, Any]:
    """A dict, a Mapping or an argparse.Namespace-like object (``vars()``) -> a plain dict."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    raise TypeError(f"config must be a dict or an argparse.Namespace-like object, got {type(obj).__name__}")


class Config:
    """Hyperparameters of a run: ``config.lr``, ``config["lr"]``, ``update(d, allow_val_change=False)``."""

    def __init__(
        self, initial: Any = None, on_change: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_on_change", None)
        self.update(initial)
        object.__setattr__(self, "_on_change", on_change)

    # -- mapping ---------------------------------------------------------------------------------
    def update(self, d: Any = None, allow_val_change: bool = False) -> None:
        """Add keys from a dict / Namespace; changing an existing key needs ``allow_val_change``."""
        new = as_mapping(d)
        for k in new:
            if not isinstance(k, str):
                raise TypeError(f"config keys must be str, got {type(k).__name__} {k!r}")
        if not allow_val_change:
            for k, v in new.items():
                self._check_change(k, v)
        changed = any(k not in self._items or not _same(self._items[k], v) for k, v in new.items())
        self._items.update(new)
        if changed:
            self._notify()

    def _check_change(self, key: str, value: Any) -> None:
        if key in self._items and not _same(self._items[key], value):
            raise ConfigError(
                f"config key {key!r} already has value {self._items[key]!r}; refusing to change it to "
                f"{value!r}. Pass allow_val_change=True to config.update() to change it."
            )

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change(dict(self._items))

    def setdefaults(self, d: Any) -> None:
        """Add only the keys that are not set yet."""
        new = {k: v for k, v in as_mapping(d).items() if k not in self._items}
        if new:
            self.update(new)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._items[key]
        self._notify()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def keys(self) -> Any:
        return self._items.keys()

    def values(self) -> Any:
        return self._items.values()

    def items(self) -> Any:
        return self._items.items()

    def as_dict(self) -> dict[str, Any]:
        """A shallow copy of the current mapping."""
        return dict(self._items)

    # -- attributes ------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"Config({self._items!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return bool(self._items == other._items)
        if isinstance(other, Mapping):
            return bool(self._items == dict(other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays compare elementwise; treat anything ambiguous as a change
        return a is b


DEFAULTS_FILE = "config-defaults.yaml"


def config_files(env_paths: str | None, cwd: str = ".") -> dict[str, Any]:
    """The config W&B scripts keep in files: ``config-defaults.yaml`` in the working directory, then every
    file of ``RUNWATCH_CONFIG_PATHS``/``WANDB_CONFIG_PATHS`` (comma-separated; YAML or JSON), later ones
    winning. W&B's file shape ``{key: {"value": v, "desc": ...}}`` is unwrapped to ``{key: v}``; its
    ``wandb_version`` and ``_wandb`` keys are skipped. A file that cannot be read or parsed is skipped with
    one warning naming it; the run goes on."""
    import os

    paths = []
    default = os.path.join(cwd, DEFAULTS_FILE)
    if os.path.isfile(default):
        paths.append(default)
    paths += [p.strip() for p in (env_paths or "").split(",") if p.strip()]
    merged: dict[str, Any] = {}
    for path in paths:
        loaded = _read_config_file(path)
        if loaded is None:
            continue
        for key, value in loaded.items():
            if key in ("wandb_version", "_wandb"):
                continue
            if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
                value = value["value"]
            merged[str(key)] = value
    return merged


def _read_config_file(path: str) -> dict[str, Any] | None:
    from ._log import log_once

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        log_once(f"config-file-{path}", "runwatch: cannot read config file %s (%s); it is skipped", path, exc)
        return None
    try:
        if path.endswith(".json"):
            import json

            data = json.loads(text)
        else:
            try:
                import yaml
            except ImportError:
                log_once(f"config-file-{path}", "runwatch: config file %s is YAML, and reading it needs PyYAML "
                         "(pip install pyyaml); it is skipped", path)
                return None
            data = yaml.safe_load(text)
    except Exception as exc:  # a broken file must not stop the run
        log_once(f"config-file-{path}", "runwatch: cannot parse config file %s (%s); it is skipped", path, exc)
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        log_once(f"config-file-{path}", "runwatch: config file %s must hold a mapping, not a %s; it is skipped",
                 path, type(data).__name__)
        return None
    return data
