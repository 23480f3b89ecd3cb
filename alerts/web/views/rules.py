"""Every loaded rule: where it is written, what it checks, and how many series are pending or firing.

Rules are not secret, so every login sees all of them; a project key's counts are of its own
project's series only. The last failed reload (the rules in force are then the last good ones) is
shown above the table until a reload succeeds.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from alerts.presentation import iso
from alerts.rules.loader import Rule
from alerts.web.views.base import PageContext, Pages

pages = Pages()


def split_source(source: str) -> tuple[str, int | None]:
    """``path:line:col`` (the loader's ``Rule.source``) to ``(path, line)``; a bare path has no line."""
    parts = source.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1])
    return source, None


def rule_row(rule: Rule, counts: dict[str, int]) -> dict[str, Any]:
    spec = rule.spec
    path, line = split_source(rule.source)
    return {
        "name": spec.name, "description": spec.description, "source": rule.source, "file": path, "line": line,
        "location": f"{path}:{line}" if line is not None else path, "kind": spec.kind,
        "condition": spec.condition_text, "metric": spec.metric, "where": spec.where.model_dump(mode="json"),
        "for": spec.for_, "severity": spec.severity.value, "labels": dict(spec.labels), "notify": list(spec.notify),
        "pending": counts.get("pending", 0), "firing": counts.get("firing", 0),
        "links": {"alerts": f"/alerts?{urlencode({'rule': spec.name})}"},
    }


@pages.page("/rules", "rules.html")
async def rules(ctx: PageContext) -> dict[str, Any]:
    scope = None if ctx.viewer.key.admin else ctx.viewer.key.project
    counts = ctx.service.rules.series_counts(project=scope)
    failure = ctx.service.last_reload_error
    return {"rules": [rule_row(rule, counts.get(rule.name, {})) for rule in ctx.service.rules.rules],
            "counts_project": scope, "files": dict(ctx.service.ruleset.files),
            "reload_error": {"at": iso(failure.at), "errors": list(failure.errors)} if failure else None}
