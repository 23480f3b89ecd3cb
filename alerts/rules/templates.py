"""Title/text templates: Jinja2 in the sandbox, undefined names are errors, checked at load time."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class _AnyKeys(dict[str, Any]):
    """Sample ``run.config``: any key exists, so ``{{ run.config.dataset }}`` passes the load-time check."""

    def __missing__(self, key: str) -> str:
        return f"<config.{key}>"


def sample_context(rule: dict[str, Any]) -> dict[str, Any]:
    """A context with every name a real notification has, used to render each template once at load."""
    return {
        "rule": rule,
        "run": {"id": "abc123", "name": "sample-run", "project": "sample-project", "url": "http://localhost/runs",
                "state": "running", "config": _AnyKeys(), "tags": ["sample"]},
        "metric": "sample/metric", "value": 0.5, "threshold": 0.3, "step": 10, "severity": rule["severity"],
        "labels": _AnyKeys(rule["labels"]), "started_at": "2026-01-01T00:00:00Z",
        "reason": "sample reason",
        "compare": {"stat": 0.4, "statistic": "median", "runs": 9},
        "stop": {"step": 10, "runtime": "12m 05s", "runtime_seconds": 725.0},
    }


class Template:
    def __init__(self, source: str) -> None:
        self.source = source
        self._compiled = _ENV.from_string(source)

    def render(self, context: dict[str, Any]) -> str:
        return self._compiled.render(context)


def compile_template(source: str, rule: dict[str, Any]) -> Template:
    """Compile and render once against :func:`sample_context`; raise ``ValueError`` naming the problem."""
    try:
        template = Template(source)
        template.render(sample_context(rule))
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        line = f" (template line {lineno})" if lineno else ""
        raise ValueError(f"{exc.message or type(exc).__name__}{line}") from None
    except Exception as exc:  # a filter misused on the sample (e.g. round('x')) is an error too
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    return template
