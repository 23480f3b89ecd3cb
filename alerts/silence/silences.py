"""Silences: matchers plus a time window, with who and why (Alertmanager's ``silence`` package).

Times are UNIX seconds (floats). A silence is ``pending`` before ``starts_at``, ``active`` in
``[starts_at, ends_at)`` and ``expired`` from ``ends_at`` on; the window is half-open so that expiring
a silence "now" (``ends_at = now``) takes effect immediately.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from alerts.silence.matchers import Matcher

__all__ = ["Silence", "SilenceState", "Silencer", "new_silence"]

SilenceState = Literal["pending", "active", "expired"]


@dataclass
class Silence:
    """A stored silence. Build new ones with :func:`new_silence`, which validates them."""

    id: str
    matchers: list[Matcher]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    def state(self, now: float) -> SilenceState:
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        """Whether the silence is active at ``now`` and every matcher matches ``labels``."""
        # A silence without matchers cannot be created; if one is ever loaded, muting everything would be
        # the worst reading of it.
        if not self.matchers:
            return False
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)

    def to_json(self) -> dict[str, Any]:
        """The storage and API form: matchers as strings (``'severity="critical"'``), times as UNIX floats."""
        return {"id": self.id, "matchers": [str(m) for m in self.matchers], "starts_at": self.starts_at,
                "ends_at": self.ends_at, "created_by": self.created_by, "comment": self.comment,
                "updated_at": self.updated_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Silence:
        """The inverse of :meth:`to_json`; ``ValueError`` (``MatcherError`` for matchers) names what is wrong."""
        missing = [key for key in ("id", "matchers", "starts_at", "ends_at", "created_by", "comment",
                                   "updated_at") if key not in data]
        if missing:
            raise ValueError(f"silence {data.get('id', '?')!r}: missing field(s) {', '.join(missing)}")
        matchers = data["matchers"]
        if isinstance(matchers, str) or not isinstance(matchers, Iterable):
            raise ValueError(f"silence {data['id']!r}: matchers: expected a list of matcher strings")
        return cls(id=str(data["id"]),
                   matchers=[m if isinstance(m, Matcher) else Matcher.parse(m) for m in matchers],
                   starts_at=float(data["starts_at"]), ends_at=float(data["ends_at"]),
                   created_by=str(data["created_by"]), comment=str(data["comment"]),
                   updated_at=float(data["updated_at"]))


def _uuid4() -> str:
    return str(uuid.uuid4())


def new_silence(matchers: list[Matcher], *, starts_at: float, ends_at: float, created_by: str, comment: str,
                now: float, new_id: Callable[[], str] = _uuid4) -> Silence:
    """A validated new silence, ``updated_at = now``.

    Raises ``ValueError`` naming the field: ``matchers`` (none, or all of them match the empty string,
    which would mute every alert, e.g. only ``x=~".*"``), ``starts_at``/``ends_at`` (not finite, not after
    the start, already over), ``created_by``/``comment`` (blank).
    """
    if not matchers:
        raise ValueError("matchers: a silence needs at least one matcher")
    if all(m.matches({}) for m in matchers):
        # Alertmanager's rule: such a silence also matches an alert with no labels at all, i.e. everything.
        shown = ", ".join(str(m) for m in matchers)
        raise ValueError(f"matchers: {shown} all match the empty string, so the silence would mute every "
                         'alert; add a matcher that needs a label value, e.g. project="vision"')
    for field, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if not math.isfinite(value):
            raise ValueError(f"{field}: expected a finite UNIX time, got {value!r}")
    if ends_at <= starts_at:
        raise ValueError(f"ends_at: the silence must end after it starts (starts_at={starts_at}, ends_at={ends_at})")
    if ends_at <= now:
        raise ValueError(f"ends_at: the silence would already be over (ends_at={ends_at}, now={now})")
    if not created_by.strip():
        raise ValueError("created_by: say who creates the silence")
    if not comment.strip():
        raise ValueError("comment: say why the silence is needed")
    return Silence(id=new_id(), matchers=list(matchers), starts_at=starts_at, ends_at=ends_at,
                   created_by=created_by, comment=comment, updated_at=now)


class Silencer:
    """The silences in force, by id; answers "which silences mute this alert now?".

    It holds the caller's ``Silence`` objects (no copies): :meth:`expire` changes the stored object, and
    the caller persists what it returns.
    """

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._silences: dict[str, Silence] = {s.id: s for s in silences}

    def replace_all(self, silences: Iterable[Silence]) -> None:
        """Forget every silence and hold these (a reload from storage)."""
        self._silences = {s.id: s for s in silences}

    def upsert(self, silence: Silence) -> None:
        """Add the silence, or replace the one with its id."""
        self._silences[silence.id] = silence

    def get(self, silence_id: str) -> Silence | None:
        return self._silences.get(silence_id)

    def silences(self) -> list[Silence]:
        """Every held silence (all states), in insertion order."""
        return list(self._silences.values())

    def expire(self, silence_id: str, now: float) -> Silence:
        """End the silence at ``now`` and return it; ``KeyError`` if there is no such id.

        A pending silence becomes expired without ever being active (``starts_at = ends_at = now``). An
        already expired one is returned unchanged, so expiring twice is harmless.
        """
        silence = self._silences.get(silence_id)
        if silence is None:
            raise KeyError(f"no silence with id {silence_id!r}")
        if silence.state(now) == "expired":
            return silence
        silence.ends_at = now
        silence.starts_at = min(silence.starts_at, now)
        silence.updated_at = now
        return silence

    def muting(self, labels: Mapping[str, str], now: float) -> list[str]:
        """Ids of the active silences that mute an alert with these labels (empty: not silenced)."""
        return [s.id for s in self._silences.values() if s.mutes(labels, now)]
