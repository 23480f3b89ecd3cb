"""Label matchers: the four operators, anchoring, quoting, the missing-label rule and error messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from alerts.silence.matchers import Matcher, MatcherError, MatcherList, matches_all, parse_matchers

LABELS = {"severity": "critical", "project": "vision-resnet", "run": "r1"}


@pytest.mark.parametrize(("text", "expected"), [
    ("severity=critical", True),
    ("severity=warning", False),
    ("severity!=warning", True),
    ("severity!=critical", False),
    ("project=~vision-.*", True),
    ("project=~nlp-.*", False),
    ("project!~nlp-.*", True),
    ("project!~vision-.*", False),
])
def test_operators(text: str, expected: bool) -> None:
    assert Matcher.parse(text).matches(LABELS) is expected


@pytest.mark.parametrize(("text", "value", "expected"), [
    ("project=~vision", "vision-resnet", False),  # anchored at the end
    ("project=~resnet", "vision-resnet", False),  # anchored at the start
    ("project=~vision|nlp", "nlp", True),  # the alternation is grouped inside the anchors
    ("project=~vision|nlp", "vision-resnet", False),
    ("project=~vision|nlp", "xnlp", False),
    ("project=~abc", "abc\n", False),  # unlike re's $, no trailing newline slips through
    ("project!~vision", "vision-resnet", True),
    ("project=~(?i)VISION-.*", "vision-resnet", True),  # a leading inline flag stays legal
])
def test_regexes_are_fully_anchored(text: str, value: str, expected: bool) -> None:
    assert Matcher.parse(text).matches({"project": value}) is expected


def test_missing_label_is_the_empty_string() -> None:
    assert Matcher.parse('team=""').matches({})
    assert not Matcher.parse('team!=""').matches({})
    assert Matcher.parse("team!=infra").matches({})
    assert Matcher.parse("team=~.*").matches({})
    assert not Matcher.parse("team=~.+").matches({})
    assert Matcher.parse("team!~.+").matches({})
    assert Matcher.parse("team=").matches({"team": ""})


@pytest.mark.parametrize(("text", "matcher"), [
    ('comment="a b"', Matcher("comment", "=", "a b")),
    ('  severity = "critical"  ', Matcher("severity", "=", "critical")),
    ("severity = critical", Matcher("severity", "=", "critical")),
    ('x=""', Matcher("x", "=", "")),
    ('x="say \\"hi\\""', Matcher("x", "=", 'say "hi"')),
    ('x="back\\\\slash"', Matcher("x", "=", "back\\slash")),
    ('x="two\\nlines"', Matcher("x", "=", "two\nlines")),
    ("x=~a\\.b", Matcher("x", "=~", "a\\.b")),  # a backslash before another character stays
    ('x=~"a\\.b"', Matcher("x", "=~", "a\\.b")),
    ("x=a=b", Matcher("x", "=", "a=b")),
    ("x!=~y", Matcher("x", "!=", "~y")),
    ("x==y", Matcher("x", "=", "=y")),
    ("_under_9=v", Matcher("_under_9", "=", "v")),
])
def test_parse_values_and_quotes(text: str, matcher: Matcher) -> None:
    assert Matcher.parse(text) == matcher


@pytest.mark.parametrize("matcher", [
    Matcher("severity", "=", "critical"),
    Matcher("project", "=~", "vision-.*"),
    Matcher("x", "!=", 'quote " and back\\slash'),
    Matcher("x", "!~", "a\\.b|c\n"),
    Matcher("x", "=", ""),
])
def test_str_round_trips(matcher: Matcher) -> None:
    assert Matcher.parse(str(matcher)) == matcher


def test_str_form() -> None:
    assert str(Matcher.parse("severity=critical")) == 'severity="critical"'
    assert str(Matcher.parse("project=~vision-.*")) == 'project=~"vision-.*"'
    assert str(Matcher.parse("a!~b")) == 'a!~"b"'


@pytest.mark.parametrize(("text", "fragment"), [
    ("severity", "expected name=value"),
    ("=critical", "expected name=value"),
    ("9lives=x", "expected name=value"),
    ("bad-name=x", "expected name=value"),
    ('x="open', "never closes"),
    ('x="a"b', "after the closing quote"),
    ('x=a"b', 'unescaped "'),
])
def test_parse_errors_name_the_text(text: str, fragment: str) -> None:
    with pytest.raises(MatcherError) as info:
        Matcher.parse(text)
    assert repr(text) in str(info.value)
    assert fragment in str(info.value)


def test_invalid_regex_names_it() -> None:
    with pytest.raises(MatcherError, match=r"invalid regular expression '\(unclosed'.*run=~\"\(unclosed\""):
        Matcher.parse("run=~(unclosed")
    with pytest.raises(MatcherError, match="invalid regular expression"):
        Matcher("run", "!~", "[a-")
    assert Matcher.parse("run=(unclosed").value == "(unclosed"  # only the regex operators compile


def test_direct_construction_is_validated() -> None:
    with pytest.raises(MatcherError, match="invalid label name 'bad-name'"):
        Matcher("bad-name", "=", "x")
    with pytest.raises(MatcherError, match="invalid operator '=='"):
        Matcher("x", "==", "y")  # type: ignore[arg-type]


def test_matchers_are_values() -> None:
    a, b = Matcher.parse("x=~a.*"), Matcher("x", "=~", "a.*")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert repr(a) == "Matcher(name='x', op='=~', value='a.*')"


def test_parse_matchers_and_matches_all() -> None:
    matchers = parse_matchers(["severity=critical", "project=~vision-.*"])
    assert matches_all(matchers, LABELS)
    assert not matches_all([*matchers, Matcher("run", "=", "r2")], LABELS)
    assert matches_all([], LABELS)
    with pytest.raises(MatcherError, match="'nope'"):
        parse_matchers(["severity=critical", "nope"])


class _Config(BaseModel):
    match: MatcherList = []


def cfg(match: Any) -> _Config:
    return _Config.model_validate({"match": match})


def test_matcher_list_from_strings_and_mapping() -> None:
    assert cfg(["severity=critical", "project=~vision-.*"]).match == [
        Matcher("severity", "=", "critical"), Matcher("project", "=~", "vision-.*")]
    assert cfg({"severity": "critical", "run": "r1"}).match == [
        Matcher("severity", "=", "critical"), Matcher("run", "=", "r1")]
    assert cfg({}).match == [] and cfg(None).match == []
    assert cfg([Matcher("a", "=", "b")]).match == [Matcher("a", "=", "b")]


def test_matcher_list_mapping_scalars_and_globs() -> None:
    config = cfg({"flag": True, "step": 5, "project": "vision-*"})
    assert config.match[:2] == [Matcher("flag", "=", "true"), Matcher("step", "=", "5")]
    glob = config.match[2]
    assert glob.op == "=~"
    assert glob.matches({"project": "vision-resnet"}) and glob.matches({"project": "vision-"})
    assert not glob.matches({"project": "nlp-vision-x"})
    dotted = cfg({"metric": "val.acc*"}).match[0]
    assert dotted.matches({"metric": "val.accuracy"}) and not dotted.matches({"metric": "valXaccuracy"})


def test_matcher_list_json_round_trip() -> None:
    config = cfg(["severity=critical", 'x!~"a\\"b"'])
    dumped = config.model_dump_json()
    assert dumped == '{"match":["severity=\\"critical\\"","x!~\\"a\\\\\\"b\\""]}'
    assert _Config.model_validate_json(dumped) == config
    schema = _Config.model_json_schema()
    assert schema["properties"]["match"]["items"]["type"] == "string"


@pytest.mark.parametrize(("value", "fragment"), [
    ("severity=critical", "expected a mapping {label: value} or a list"),
    (["severity"], "invalid matcher 'severity'"),
    (["x=~("], "invalid regular expression"),
    ([3], "expected a string"),
    ({"bad-name": "x"}, "invalid label name 'bad-name'"),
    ({"severity": None}, "invalid value None for label 'severity'"),
    ({"severity": ["a"]}, "expected a string"),
])
def test_matcher_list_errors(value: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        cfg(value)
    assert fragment in str(info.value)
