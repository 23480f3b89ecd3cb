"""Data flows one way: evaluation never reaches into delivery (STYLE.md's layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import alerts

PACKAGE = Path(alerts.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_rules_import_nothing_from_notify() -> None:
    offenders = {str(path.relative_to(PACKAGE)): sorted(m for m in _imports(path) if m.startswith("alerts.notify"))
                 for path in (PACKAGE / "rules").rglob("*.py")}
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_presentation_is_neutral() -> None:
    """Rules, API, dashboard and channels import it; it imports none of them."""
    mods = _imports(PACKAGE / "presentation.py")
    assert not [m for m in mods if m.split(".")[:2] in (["alerts", "notify"], ["alerts", "rules"],
                                                       ["alerts", "api"], ["alerts", "web"])]
