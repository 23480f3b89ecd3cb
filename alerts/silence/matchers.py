"""Label matchers as in Alertmanager: ``name=value``, ``!=``, ``=~regex``, ``!~regex`` (anchored)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


class MatcherError(ValueError):
    """A matcher that cannot be parsed; the message names it and the expected form."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(f"^(?:{self.value})$"))
            except re.error as exc:
                raise MatcherError(f"invalid regular expression {self.value!r} in matcher {self}: {exc}") from None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        match = _MATCHER.match(text)
        if match is None:
            raise MatcherError(f"invalid matcher {text!r}: expected name=value, name!=value, name=~regex or "
                               "name!~regex")
        name, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        return cls(name, op, value)  # type: ignore[arg-type]

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")  # a missing label is the empty string, as in Alertmanager
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.match(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def parse_matchers(texts: Iterable[str]) -> list[Matcher]:
    return [Matcher.parse(text) for text in texts]


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)


def _to_matchers(value: Any) -> list[Matcher]:
    """Config form: a list of matcher strings, or a mapping ``{label: value}`` (equality)."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [Matcher(str(k), "=", str(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [item if isinstance(item, Matcher) else Matcher.parse(str(item)) for item in value]
    raise ValueError(f"expected a mapping of labels or a list of matchers like \"severity=~crit.*\", got {value!r}")


MatcherList = Annotated[list[Matcher], BeforeValidator(_to_matchers)]
