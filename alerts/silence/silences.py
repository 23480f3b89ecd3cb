"""Silences: matchers plus a time window, with who and why."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from alerts.silence.matchers import Matcher


@dataclass
class Silence:
    id: str
    matchers: list[Matcher]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    def state(self, now: float) -> Literal["pending", "active", "expired"]:
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "matchers": [str(m) for m in self.matchers], "starts_at": self.starts_at,
                "ends_at": self.ends_at, "created_by": self.created_by, "comment": self.comment,
                "updated_at": self.updated_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Silence:
        return cls(id=data["id"], matchers=[Matcher.parse(m) for m in data["matchers"]],
                   starts_at=float(data["starts_at"]), ends_at=float(data["ends_at"]),
                   created_by=data["created_by"], comment=data["comment"], updated_at=float(data["updated_at"]))


def new_silence(matchers: list[Matcher], *, starts_at: float, ends_at: float, created_by: str, comment: str,
                now: float, new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> Silence:
    """A validated new silence; ``ValueError`` names the field that is wrong."""
    if not matchers:
        raise ValueError("matchers: a silence needs at least one matcher")
    if all(m.matches({}) for m in matchers):
        raise ValueError("matchers: at least one matcher must not match the empty string "
                         "(this silence would mute every alert)")
    if ends_at <= starts_at:
        raise ValueError("ends_at: the silence must end after it starts")
    if ends_at <= now:
        raise ValueError("ends_at: the silence would already be over")
    if not created_by.strip():
        raise ValueError("created_by: say who creates the silence")
    if not comment.strip():
        raise ValueError("comment: say why the silence is needed")
    return Silence(id=new_id(), matchers=list(matchers), starts_at=starts_at, ends_at=ends_at,
                   created_by=created_by, comment=comment, updated_at=now)


class Silencer:
    def __init__(self, silences: list[Silence] | None = None) -> None:
        self._silences = {s.id: s for s in silences or []}

    def replace_all(self, silences: list[Silence]) -> None:
        self._silences = {s.id: s for s in silences}

    def upsert(self, silence: Silence) -> None:
        self._silences[silence.id] = silence

    def expire(self, silence_id: str, now: float) -> Silence:
        silence = self._silences[silence_id]
        silence.ends_at = min(silence.ends_at, now)
        silence.starts_at = min(silence.starts_at, silence.ends_at)
        silence.updated_at = now
        return silence

    def muting(self, labels: Mapping[str, str], now: float) -> list[str]:
        """Ids of the active silences that mute an alert with these labels."""
        return [s.id for s in self._silences.values() if s.mutes(labels, now)]
