"""Load rule files: every problem reported as ``file:line:col: rule "name": message``."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from alerts.config.yaml_source import LoadedYaml, load_yaml
from alerts.errors import ConfigError
from alerts.rules.conditions import Evaluator, evaluator_for
from alerts.rules.spec import RuleSpec
from alerts.rules.templates import Template, compile_template


@dataclass(eq=False)
class Rule:
    """A validated rule, ready to evaluate: its spec, compiled templates and where it was written."""

    spec: RuleSpec
    source: str
    title: Template
    text: Template
    evaluator: Evaluator | None
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.spec.name  # read per point on the hot path: a plain attribute, not a property

    def template_rule(self) -> dict[str, Any]:
        return rule_context(self.spec)


def rule_context(spec: RuleSpec) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "severity": spec.severity.value,
            "labels": dict(spec.labels), "condition": spec.condition_text, "kind": spec.kind,
            "metric": spec.metric, "threshold": spec.threshold}


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    """Rule count per file, for one-line summaries."""


def expand_rule_files(patterns: Iterable[str], *, base: Path | None = None) -> list[Path]:
    """Globs (relative to ``base``) to a sorted, de-duplicated list of files."""
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if base is None or Path(pattern).is_absolute() else str(base / pattern)
        matches = sorted(glob.glob(full, recursive=True)) if glob.has_magic(full) else [full]
        for match in matches:
            path = Path(match)
            if path not in found:
                found.append(path)
    return found


def load_rules(paths: Iterable[Path], *, channels: set[str] | None = None) -> RuleSet:
    """Validate every rule of every file; raise :class:`ConfigError` with all errors found."""
    errors: list[str] = []
    ruleset = RuleSet()
    seen: dict[str, str] = {}
    for path in paths:
        try:
            loaded = load_yaml(path)
        except ConfigError as exc:
            errors.extend(exc.errors)
            continue
        rules = _rule_list(loaded, errors)
        ruleset.files[str(path)] = len(rules)
        for index, raw in enumerate(rules):
            rule = _load_rule(loaded, index, raw, channels, errors)
            if rule is None:
                continue
            where = loaded.where(("rules", index))
            if rule.name in seen:
                errors.append(f"{where}: rule \"{rule.name}\": duplicate rule name "
                              f"(first defined at {seen[rule.name]})")
                continue
            seen[rule.name] = where
            ruleset.rules.append(rule)
    if errors:
        raise ConfigError(errors)
    return ruleset


def _rule_list(loaded: LoadedYaml, errors: list[str]) -> list[Any]:
    data = loaded.data
    if data == {} or data is None:
        return []
    if not isinstance(data, dict):
        errors.append(f"{loaded.where(())}: a rule file must be a mapping with a 'rules' list")
        return []
    for key in data:
        if key != "rules":
            errors.append(f"{loaded.where((str(key),))}: unknown top-level key {key!r}: expected 'rules'")
    rules = data.get("rules") or []
    if not isinstance(rules, list):
        errors.append(f"{loaded.where(('rules',))}: 'rules' must be a list of rules")
        return []
    return rules


def _load_rule(loaded: LoadedYaml, index: int, raw: Any, channels: set[str] | None,
               errors: list[str]) -> Rule | None:
    base = ("rules", index)
    if not isinstance(raw, dict):
        errors.append(f"{loaded.where(base)}: rules[{index}]: a rule must be a mapping")
        return None
    label = f"rule \"{raw['name']}\"" if isinstance(raw.get("name"), str) else f"rules[{index}]"
    try:
        spec = RuleSpec.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(str(p) if isinstance(p, str) else p for p in error["loc"])
            loc = tuple(part for part in loc if part not in ("function-after[_parse_expr(), str]",))
            field = ".".join(str(p) for p in loc)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r}" if loc else "unknown key"
            prefix = f"{field}: " if field and error["type"] != "extra_forbidden" else ""
            errors.append(f"{loaded.where(base + _yaml_loc(loc, raw))}: {label}: {prefix}{message}")
        return None
    problems = len(errors)
    unknown = [name for name in spec.notify if channels is not None and name not in channels]
    if unknown:
        errors.append(f"{loaded.where(base + ('notify',))}: {label}: notify names unknown channel(s): "
                      f"{', '.join(unknown)}" + (f" (configured: {', '.join(sorted(channels))})" if channels else ""))
    templates: dict[str, Template] = {}
    for key in ("title", "text"):
        try:
            templates[key] = compile_template(getattr(spec, key), rule_context(spec))
        except ValueError as exc:
            errors.append(f"{loaded.where(base + (key,))}: {label}: {key} template: {exc}")
    if len(errors) > problems:
        return None
    return Rule(spec=spec, source=loaded.where(base), title=templates["title"], text=templates["text"],
                evaluator=evaluator_for(spec))


def _yaml_loc(loc: tuple[Any, ...], raw: dict[str, Any]) -> tuple[Any, ...]:
    """pydantic's loc to YAML keys: aliases (``for_`` is ``for``) and union tags dropped."""
    kept: list[Any] = []
    node: Any = raw
    for part in loc:
        key = "for" if part == "for_" else part
        if isinstance(node, dict) and key in node:
            kept.append(key)
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            kept.append(key)
            node = node[key]
        elif isinstance(node, dict) and not kept[len(kept):] and key not in node and isinstance(key, str):
            # a union or type tag pydantic adds ("function-after[...]", "int"); not a YAML key
            continue
    return tuple(kept)
