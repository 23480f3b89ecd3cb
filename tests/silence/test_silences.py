"""Silences: states over time, muting, validation, JSON form, and the Silencer's bookkeeping."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from alerts.silence.matchers import Matcher, MatcherError, parse_matchers
from alerts.silence.silences import Silence, Silencer, new_silence

NOW = 1_800_000_000.0
ALERT = {"project": "vision", "run": "r1", "severity": "warning"}


def make(matchers: list[str] | None = None, *, starts_at: float = NOW, ends_at: float = NOW + 3600,
         now: float = NOW, silence_id: str = "s1", **kwargs: Any) -> Silence:
    fields: dict[str, Any] = {"created_by": "ana", "comment": "maintenance"} | kwargs
    return new_silence(parse_matchers(matchers or ["project=vision"]), starts_at=starts_at, ends_at=ends_at,
                       now=now, new_id=lambda: silence_id, **fields)


def test_states_over_time() -> None:
    silence = make(starts_at=NOW + 10, ends_at=NOW + 20)
    assert silence.state(NOW) == "pending"
    assert silence.state(NOW + 9.999) == "pending"
    assert silence.state(NOW + 10) == "active"  # starts_at is inclusive
    assert silence.state(NOW + 19.999) == "active"
    assert silence.state(NOW + 20) == "expired"  # ends_at is exclusive
    assert silence.state(NOW + 1e6) == "expired"


def test_mutes_only_while_active_and_when_every_matcher_matches() -> None:
    silence = make(["project=vision", "severity=~warn.*"], starts_at=NOW + 10, ends_at=NOW + 20)
    assert not silence.mutes(ALERT, NOW)  # pending
    assert silence.mutes(ALERT, NOW + 15)
    assert not silence.mutes(ALERT | {"severity": "critical"}, NOW + 15)  # one matcher fails
    assert not silence.mutes({"run": "r1"}, NOW + 15)
    assert not silence.mutes(ALERT, NOW + 20)  # expired


def test_a_stored_silence_without_matchers_mutes_nothing() -> None:
    silence = Silence(id="x", matchers=[], starts_at=0, ends_at=math.inf, created_by="a", comment="c",
                      updated_at=0)
    assert not silence.mutes(ALERT, NOW)


def test_new_silence_fields() -> None:
    silence = make(["project=vision", "run=~r[12]"], starts_at=NOW - 5, ends_at=NOW + 60, now=NOW)
    assert silence == Silence(id="s1", matchers=[Matcher("project", "=", "vision"), Matcher("run", "=~", "r[12]")],
                              starts_at=NOW - 5, ends_at=NOW + 60, created_by="ana", comment="maintenance",
                              updated_at=NOW)
    assert new_silence(silence.matchers, starts_at=NOW, ends_at=NOW + 1, created_by="a", comment="c",
                       now=NOW).id != new_silence(silence.matchers, starts_at=NOW, ends_at=NOW + 1,
                                                  created_by="a", comment="c", now=NOW).id


@pytest.mark.parametrize(("matchers", "kwargs", "message"), [
    ([], {}, "matchers: a silence needs at least one matcher"),
    (["x=~.*"], {}, "matchers: x=~\".*\" all match the empty string"),
    (['x=""', "y!=z", "w!~.+"], {}, 'matchers: x="", y!="z", w!~".+" all match the empty string'),
    (["x=a"], {"ends_at": NOW}, "ends_at: the silence must end after it starts"),
    (["x=a"], {"starts_at": NOW + 10, "ends_at": NOW + 5}, "ends_at: the silence must end after it starts"),
    (["x=a"], {"starts_at": NOW - 20, "ends_at": NOW - 10}, "ends_at: the silence would already be over"),
    (["x=a"], {"starts_at": NOW - 20, "ends_at": NOW}, "ends_at: the silence would already be over"),
    (["x=a"], {"ends_at": math.inf}, "ends_at: expected a finite UNIX time"),
    (["x=a"], {"starts_at": math.nan}, "starts_at: expected a finite UNIX time"),
    (["x=a"], {"created_by": "  "}, "created_by:"),
    (["x=a"], {"comment": ""}, "comment:"),
])
def test_new_silence_validation_names_the_field(matchers: list[str], kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"starts_at": NOW, "ends_at": NOW + 60, "created_by": "ana", "comment": "why",
                            "now": NOW} | kwargs
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        new_silence(parse_matchers(matchers), **args)


def test_one_matcher_that_needs_a_value_is_enough() -> None:
    silence = make(["x=~.*", "project=vision"])
    assert silence.mutes(ALERT, NOW) and not silence.mutes({"project": "nlp"}, NOW)


def test_json_round_trip() -> None:
    silence = make(["project=vision", 'comment!="a \\"b\\""', "run=~r\\d+"], starts_at=NOW + 0.5)
    data = silence.to_json()
    assert data == {"id": "s1", "matchers": ['project="vision"', 'comment!="a \\"b\\""', 'run=~"r\\\\d+"'],
                    "starts_at": NOW + 0.5, "ends_at": NOW + 3600, "created_by": "ana",
                    "comment": "maintenance", "updated_at": NOW}
    assert Silence.from_json(json.loads(json.dumps(data))) == silence
    assert Silence.from_json(data).matchers[2].matches({"run": "r12"})


def test_from_json_errors() -> None:
    data = make().to_json()
    with pytest.raises(ValueError, match="missing field\\(s\\) ends_at, comment"):
        Silence.from_json({k: v for k, v in data.items() if k not in ("ends_at", "comment")})
    with pytest.raises(ValueError, match="matchers: expected a list"):
        Silence.from_json(data | {"matchers": "project=vision"})
    with pytest.raises(MatcherError, match="'bad'"):
        Silence.from_json(data | {"matchers": ["bad"]})


def test_silencer_muting_ids() -> None:
    silencer = Silencer([make(silence_id="a"), make(["run=r1"], silence_id="b"),
                         make(["run=r2"], silence_id="c"),
                         make(silence_id="later", starts_at=NOW + 100, ends_at=NOW + 200)])
    assert silencer.muting(ALERT, NOW) == ["a", "b"]
    assert silencer.muting(ALERT, NOW + 150) == ["a", "b", "later"]
    assert silencer.muting({"project": "nlp"}, NOW) == []


def test_silencer_upsert_and_replace_all() -> None:
    silencer = Silencer()
    silencer.upsert(make(silence_id="a"))
    assert silencer.muting(ALERT, NOW) == ["a"]
    silencer.upsert(make(["project=nlp"], silence_id="a"))  # same id: replaced
    assert silencer.muting(ALERT, NOW) == [] and len(silencer.silences()) == 1
    silencer.replace_all([make(silence_id="b")])
    assert silencer.get("a") is None
    assert silencer.muting(ALERT, NOW) == ["b"]


def test_expire_active_silence() -> None:
    silencer = Silencer([make(silence_id="a")])
    expired = silencer.expire("a", NOW + 30)
    assert (expired.starts_at, expired.ends_at, expired.updated_at) == (NOW, NOW + 30, NOW + 30)
    assert expired.state(NOW + 30) == "expired"
    assert silencer.muting(ALERT, NOW + 30) == []
    assert silencer.get("a") is expired


def test_expire_pending_silence_never_activates() -> None:
    silencer = Silencer([make(silence_id="a", starts_at=NOW + 100, ends_at=NOW + 200)])
    expired = silencer.expire("a", NOW)
    assert expired.starts_at == expired.ends_at == NOW
    assert all(expired.state(t) == "expired" for t in (NOW, NOW + 100, NOW + 150))


def test_expire_twice_keeps_the_first_end() -> None:
    silencer = Silencer([make(silence_id="a")])
    silencer.expire("a", NOW + 30)
    again = silencer.expire("a", NOW + 90)
    assert (again.ends_at, again.updated_at) == (NOW + 30, NOW + 30)


def test_expire_unknown_id() -> None:
    with pytest.raises(KeyError, match="no silence with id 'nope'"):
        Silencer().expire("nope", NOW)
