"""Label matchers as in Alertmanager: ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex``.

Contract shared by silences, inhibition rules and routes:

- A label the alert does not have is the empty string, so ``team=""`` matches alerts without ``team`` and
  ``team!=""`` requires it.
- Regexes are fully anchored, as if written ``^(?:regex)$``: ``project=~vision`` does not match
  ``vision-2``. They are compiled once, when the matcher is built, so a bad regex fails at parse time.
- Text form: ``name<op>value`` where the value may be double-quoted (``comment="a b"``). Inside the
  value ``\\"``, ``\\\\`` and ``\\n`` are escapes (Alertmanager's rules); any other backslash is literal,
  so regexes such as ``a\\.b`` need no doubling. ``str(matcher)`` always quotes and escapes, so
  ``Matcher.parse(str(m)) == m``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

__all__ = ["LABEL_NAME", "Matcher", "MatcherError", "MatcherList", "Op", "matches_all", "parse_matchers"]

Op = Literal["=", "!=", "=~", "!~"]
_OPS: tuple[str, ...] = get_args(Op)

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""Valid label names (Prometheus' classic rule)."""

# Longest operators first, so ``a!=b`` is never read as name ``a!`` with ``=``.
_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*")
# Escaping only these keeps the stored regex readable (re.escape would also escape "-").
_REGEX_SPECIAL = re.compile(r"[\\.^$+?{}\[\]|()]")
_EXPECTED = 'expected name=value, name!=value, name=~regex or name!~regex (the value may be "quoted")'


class MatcherError(ValueError):
    """A matcher that cannot be built; the message names the matcher text and the expected form."""


@dataclass(frozen=True)
class Matcher:
    """One label condition. Build it directly, with :meth:`parse`, or through :data:`MatcherList`."""

    name: str
    op: Op
    value: str
    # Derived from ``value``; excluded from init, equality, hashing and repr so two matchers with the
    # same text are interchangeable.
    _regex: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Checked here, not only in parse(), because config shorthands and from_json build matchers directly.
        if not isinstance(self.value, str):
            raise MatcherError(f"invalid value {self.value!r} for label {self.name!r}: expected a string")
        if not isinstance(self.name, str) or LABEL_NAME.fullmatch(self.name) is None:
            raise MatcherError(f"invalid label name {self.name!r} in matcher {self.name}{self.op}{self.value!r}: "
                               "expected [a-zA-Z_][a-zA-Z0-9_]*")
        if self.op not in _OPS:
            raise MatcherError(f"invalid operator {self.op!r} in matcher {self.name}{self.op}{self.value!r}: "
                               "expected one of =, !=, =~, !~")
        if self.op in ("=~", "!~"):
            try:
                # fullmatch anchors the whole pattern (alternations included) like ^(?:value)$, and unlike
                # ``$`` it does not accept a trailing newline; it also keeps a leading ``(?i)`` legal.
                regex = re.compile(self.value)
            except re.error as exc:
                raise MatcherError(f"invalid regular expression {self.value!r} in matcher {self}: {exc}") from None
            object.__setattr__(self, "_regex", regex)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """A matcher from ``k=v``, ``k!=v``, ``k=~re``, ``k!~re``; ``MatcherError`` says what is wrong."""
        if not isinstance(text, str):
            raise MatcherError(f"invalid matcher {text!r}: {_EXPECTED}")
        found = _MATCHER.fullmatch(text)
        if found is None:
            raise MatcherError(f"invalid matcher {text!r}: {_EXPECTED}")
        name, op, raw = found.groups()
        return cls(name, op, _unquote(raw, text))  # type: ignore[arg-type]  # op is one of _MATCHER's four

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with these labels satisfies the matcher (a missing label is ``""``)."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None  # set in __post_init__ for both regex operators
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{_escape(self.value)}"'

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # Without this, pydantic would treat the dataclass as an object {name, op, value, _regex}; in
        # config and API models a matcher is its text form (JSON dumps give the text too).
        return core_schema.no_info_plain_validator_function(
            _to_matcher, serialization=core_schema.to_string_ser_schema())

    @classmethod
    def __get_pydantic_json_schema__(
            cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "description": "a label matcher: name=value, name!=value, name=~regex, name!~regex",
                "examples": ["severity=critical", 'project=~"vision-.*"']}


def parse_matchers(texts: Iterable[str]) -> list[Matcher]:
    """Parse each text with :meth:`Matcher.parse`; the first bad one raises ``MatcherError``."""
    return [Matcher.parse(text) for text in texts]


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher matches (``True`` for no matchers: an empty selector selects everything)."""
    return all(matcher.matches(labels) for matcher in matchers)


def _unquote(raw: str, text: str) -> str:
    """The value with Alertmanager's escapes resolved; an unbalanced or inner ``"`` is an error."""
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    out: list[str] = []
    closed = False
    index = 0
    while index < len(body):
        char = body[index]
        if closed:
            raise MatcherError(f"invalid matcher {text!r}: text after the closing quote of the value")
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            # Only \" \\ \n are escapes; keeping other backslashes lets regexes like a\.b pass unchanged.
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(following, "\\" + following))
            index += 2
            continue
        if char == '"':
            if not quoted:
                raise MatcherError(f'invalid matcher {text!r}: unescaped " in the value; quote the value and '
                                   'write \\" for a literal quote')
            closed = True
        else:
            out.append(char)
        index += 1
    if quoted and not closed:
        raise MatcherError(f'invalid matcher {text!r}: the value opens a " but never closes it')
    return "".join(out)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _to_matcher(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if isinstance(value, str):
        return Matcher.parse(value)
    raise MatcherError(f'invalid matcher {value!r}: expected a string like "severity=critical"')


def _shorthand(name: Any, value: Any) -> Matcher:
    """One ``{label: value}`` entry: equality, or an anchored glob when the value contains ``*``."""
    if not isinstance(name, str):
        raise MatcherError(f"invalid label name {name!r}: expected a string matching [a-zA-Z_][a-zA-Z0-9_]*")
    if isinstance(value, bool):
        value = "true" if value else "false"  # YAML turns `true` into a bool; labels are strings
    elif isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise MatcherError(f"invalid value {value!r} for label {name!r}: expected a string "
                           '(write "" to match a missing label)')
    if "*" in value:
        # SPEC §4.2 writes `match: {project: "vision-*"}`; as plain equality that would silently never
        # match, so ``*`` means "any text" here, like the glob keys of metric rules.
        pattern = ".*".join(_REGEX_SPECIAL.sub(r"\\\g<0>", part) for part in value.split("*"))
        return Matcher(name, "=~", pattern)
    return Matcher(name, "=", value)


def _to_matchers(value: Any) -> list[Matcher]:
    """Config form of a matcher list.

    Accepts a list of matcher strings (``["severity=critical", "project=~vision-.*"]``) or of
    :class:`Matcher`, or a mapping ``{label: value}`` (Alertmanager's ``match:`` shorthand: equality per
    label; a value containing ``*`` is a glob, ``{project: "vision-*"}``). ``None`` and ``{}`` are the
    empty list, which matches every alert.
    """
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [_shorthand(name, item) for name, item in value.items()]
    if isinstance(value, list | tuple):
        return [_to_matcher(item) for item in value]
    raise MatcherError(f'invalid matchers {value!r}: expected a mapping {{label: value}} or a list of matchers '
                       'like ["severity=critical", "project=~vision-.*"]')


MatcherList = Annotated[list[Matcher], BeforeValidator(_to_matchers)]
"""A pydantic field type for matchers in config models: strings or a ``{label: value}`` mapping in,
``list[Matcher]`` out, strings when dumped."""
