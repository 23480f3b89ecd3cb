"""The configuration and rule references in docs/ are what the models that parse those files say."""

from __future__ import annotations

from pathlib import Path

from alerts import reference
from alerts.config.settings import AlertsSettings
from alerts.rules.spec import RuleSpec

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_committed_references_are_what_the_models_generate() -> None:
    assert (DOCS / "configuration.md").read_text() == reference.configuration(), \
        "docs/configuration.md is stale: run `python -m alerts.reference`"
    assert (DOCS / "rules.md").read_text() == reference.rules(), \
        "docs/rules.md is stale: run `python -m alerts.reference`"


def test_every_key_is_documented() -> None:
    for text in (reference.configuration(), reference.rules()):
        rows = [line for line in text.splitlines() if line.startswith("| `")]
        undocumented = [row.split("|")[1].strip() for row in rows
                        if not row.rstrip(" |").split("|")[-1].strip() and "| section |" not in row]
        assert undocumented == [], f"keys without a description (a docstring under the field): {undocumented}"
    for name in AlertsSettings.model_fields:
        assert f"| `{name}` |" in reference.configuration() or name in ("channels", "routes", "inhibit")
    for name, info in RuleSpec.model_fields.items():
        assert f"| `{info.alias or name}` |" in reference.rules()
