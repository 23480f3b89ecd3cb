"""YAML loading that remembers where every value came from, and expands ``${VAR}``.

Validation errors are only useful with a position, so the loader keeps a map from each value's path
(``("channels", "audit", "url")``) to its ``line:col`` in the file. ``${VAR}`` is replaced from the
environment while loading; a missing variable is reported at the scalar that used it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alerts.errors import ConfigError

Path_ = tuple[str | int, ...]
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class LoadedYaml:
    """A parsed YAML document plus the position of each value, for error messages."""

    path: Path
    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, loc: Path_) -> str:
        """``file:line:col`` of the deepest known value on ``loc`` (the file alone if none)."""
        for end in range(len(loc), -1, -1):
            position = self.positions.get(tuple(loc[:end]))
            if position is not None:
                return f"{self.path}:{position[0]}:{position[1]}"
        return str(self.path)


def load_yaml(path: str | Path, *, environ: Mapping[str, str] | None = None) -> LoadedYaml:
    """Parse ``path``; raise :class:`ConfigError` with ``file:line:col`` messages for every problem found."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read file: {exc.strerror or exc}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        hint = ""
        if mark is not None and re.search(r":\s*[<>]", text.splitlines()[mark.line] if mark.line < len(
                text.splitlines()) else ""):
            hint = ' (quote comparisons: when: "> 5"; a bare > or < is YAML syntax)'
        raise ConfigError([f"{where}: invalid YAML: {exc.problem or exc.context}{hint}"]) from None
    loaded = LoadedYaml(path=path, data=None)
    if node is None:
        loaded.data = {}
        return loaded
    errors: list[str] = []
    loaded.data = _convert(node, (), loaded, environ, errors)
    if errors:
        raise ConfigError(errors)
    return loaded


def _convert(node: yaml.Node, loc: Path_, loaded: LoadedYaml, environ: Mapping[str, str],
             errors: list[str]) -> Any:
    loaded.positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(key_node.value).construct_object(key_node) \
                if not isinstance(key_node, yaml.ScalarNode) else key_node.value
            if key in result:
                line = key_node.start_mark.line + 1
                errors.append(f"{loaded.path}:{line}:{key_node.start_mark.column + 1}: duplicate key {key!r}")
            result[key] = _convert(value_node, (*loc, str(key)), loaded, environ, errors)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*loc, index), loaded, environ, errors) for index, item in enumerate(node.value)]
    value = _construct_scalar(node)
    if isinstance(value, str) and "${" in value:
        value = _expand(value, node, loaded, environ, errors)
    return value


def _construct_scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _expand(value: str, node: yaml.Node, loaded: LoadedYaml, environ: Mapping[str, str],
            errors: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            mark = node.start_mark
            errors.append(f"{loaded.path}:{mark.line + 1}:{mark.column + 1}: "
                          f"environment variable {name} is not set")
            return ""
        return environ[name]

    return _VARIABLE.sub(replace, value)
