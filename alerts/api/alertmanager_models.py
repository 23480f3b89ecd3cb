"""Bodies and answers of the Alertmanager API v2 subset (``/api/v2``), in Alertmanager's JSON names
(``api/v2/openapi.yaml``: postableAlert, gettableAlert, alertGroup, postableSilence, gettableSilence,
alertmanagerStatus). Times are RFC 3339 strings, as Go clients send and read them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from alerts.api.answers import IsoTime

__all__ = ["AlertGroup", "AlertStatus", "AlertsReceived", "AlertmanagerStatus", "GettableAlert",
           "GettableSilence", "Matcher", "PostableAlert", "PostableSilence", "Receiver", "SilenceCreated"]

_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


def _label_set(*, value_length: int, max_items: int, min_items: int = 0) -> WithJsonSchema:
    # pydantic would write patternProperties without additionalProperties: false, which admits any name.
    schema: dict[str, Any] = {"type": "object", "patternProperties": {
        _LABEL_NAME: {"type": "string", "maxLength": value_length}}, "additionalProperties": False,
        "maxProperties": max_items}
    if min_items:
        schema["minProperties"] = min_items
    return WithJsonSchema(schema)


Labels = Annotated[dict[str, Annotated[str, Field(max_length=10_000)]], Field(min_length=1, max_length=100),
                   _label_set(value_length=10_000, max_items=100, min_items=1)]
Annotations = Annotated[dict[str, Annotated[str, Field(max_length=100_000)]], Field(max_length=100),
                        _label_set(value_length=100_000, max_items=100)]
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


def _text(value: object) -> object:
    # Lax datetime parsing (strict refuses the JSON string itself) would also take a number, or a string of
    # digits, as UNIX seconds, and a date alone: only what JSON Schema's date-time (RFC 3339) admits passes.
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError("expected an RFC 3339 date-time such as 2026-11-28T17:00:00Z")
    return value


Time = Annotated[datetime, BeforeValidator(_text),
                 Field(strict=False, description="RFC 3339; Go's zero time 0001-01-01T00:00:00Z: none")]
LabelSet = dict[str, str]


class _Body(BaseModel):
    # Clients may send fields of newer Alertmanager versions: ignored, not refused.
    model_config = ConfigDict(extra="ignore", strict=True)


# Bodies ---------------------------------------------------------------------------------------------
class PostableAlert(_Body):
    labels: Labels
    annotations: Annotations = Field(default_factory=dict)
    startsAt: Time | None = None
    endsAt: Time | None = Field(None, description="Past: the alert resolved. None: it resolves after "
                                                  "prometheus.resolve_timeout unless posted again")
    generatorURL: Annotated[str, Field(max_length=10_000)] | None = None


class Matcher(_Body):
    name: Annotated[str, Field(pattern=_LABEL_NAME, max_length=200)]
    value: Annotated[str, Field(max_length=10_000)]
    isRegex: bool
    isEqual: bool | None = Field(None, description="Default true")


class PostableSilence(_Body):
    id: Annotated[str, Field(max_length=64)] | None = Field(None, description="Update (or replace) this silence")
    matchers: list[Matcher] = Field(min_length=1, max_length=50)
    startsAt: Time
    endsAt: Time
    createdBy: Annotated[str, Field(min_length=1, max_length=200)]
    comment: Annotated[str, Field(min_length=1, max_length=10_000)]


# Answers --------------------------------------------------------------------------------------------
class AlertsReceived(BaseModel):
    """What a post did (Alertmanager answers an empty 200; clients ignore the body)."""

    received: int
    new: int = Field(description="Alerts that began firing")
    updated: int = Field(description="Firing alerts posted again")
    resolved: int


class Receiver(BaseModel):
    name: str


class AlertStatus(BaseModel):
    state: Literal["unprocessed", "active", "suppressed"]
    silencedBy: list[str]
    inhibitedBy: list[str] = Field(description="The fingerprints of the firing alerts that inhibit it")
    mutedBy: list[str]


class GettableAlert(BaseModel):
    labels: LabelSet
    annotations: LabelSet
    receivers: list[Receiver]
    fingerprint: str
    startsAt: IsoTime
    updatedAt: IsoTime
    endsAt: IsoTime = Field(description="0001-01-01T00:00:00Z: not known (a rule alert fires until it resolves)")
    status: AlertStatus
    generatorURL: str | None = None


class AlertGroup(BaseModel):
    labels: LabelSet
    receiver: Receiver
    alerts: list[GettableAlert]


class SilenceState(BaseModel):
    state: Literal["expired", "active", "pending"]


class MatcherAnswer(BaseModel):
    name: str
    value: str
    isRegex: bool
    isEqual: bool


class GettableSilence(BaseModel):
    id: str
    status: SilenceState
    updatedAt: IsoTime
    matchers: list[MatcherAnswer]
    startsAt: IsoTime
    endsAt: IsoTime
    createdBy: str
    comment: str


class SilenceCreated(BaseModel):
    silenceID: str


class _ClusterStatus(BaseModel):
    status: Literal["ready", "settling", "disabled"]
    peers: list[dict[str, str]]


class _VersionInfo(BaseModel):
    version: str
    revision: str
    branch: str
    buildUser: str
    buildDate: str
    goVersion: str


class _Config(BaseModel):
    original: str = Field(description="The routing tree as an Alertmanager config (receivers by name only)")


class AlertmanagerStatus(BaseModel):
    cluster: _ClusterStatus
    versionInfo: _VersionInfo
    config: _Config
    uptime: IsoTime
