"""Response bodies of the HTTP API (docs/protocol.md), and the error answers each route documents.

The routes build plain dicts (``alerts.presentation`` and friends, shared with the dashboard); these
models are their contract in ``/openapi.json``. Routes that answer a dict name one as ``response_model``,
so FastAPI checks every answer against it; routes that build their own ``Response`` (the records fast
path, streamed exports, downloads) document theirs with :func:`answers`, and
``tests/faults/test_api_schema.py`` holds every answer of a real service to what is written here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from alerts.model import AlertSource, AlertStatus, NotificationStatus, RunState, Severity

__all__ = ["DOWNLOAD", "AlertAnswer", "AlertCallResult", "AlertCallResults", "AlertList", "AlertRun",
           "ArtifactAnswer", "ArtifactEntryAnswer", "ArtifactLogged", "ArtifactManifest", "ArtifactRun",
           "BlobStored", "BlobsToUpload", "Conflict", "ErrorItem", "ErrorMessage", "FieldErrors", "FileAnswer",
           "FileList", "Health", "Heartbeat", "HistoryPage", "HistoryRow", "IsoTime", "JsonFloat", "MediaItem",
           "MediaList", "NonFinite", "NotificationAnswer", "NotificationList", "Number", "Readiness",
           "RecordsAnswer", "ReloadFailed", "Reloaded", "Run", "RunArtifacts", "RunDetail", "RunEventAnswer",
           "RunList", "RunStarted", "Series", "SilenceAnswer", "SilenceList", "WhoAmI", "answers"]

Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
"""A JSON number, kept as the int or float it was (steps are ints, times floats)."""
NonFinite = Literal["NaN", "Infinity", "-Infinity"]
JsonFloat = Annotated[float | NonFinite, WithJsonSchema({"anyOf": [
    {"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]})]
"""A float of the protocol: JSON has no NaN or infinity, so those travel as strings."""
IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"},
                               description="UTC, ISO 8601: 2026-11-28T17:00:00Z")]


# Errors -------------------------------------------------------------------------------------------
class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description='Where: ["body", "records", 0, "seq"], ["query", "limit"], ...')
    msg: str
    type: str
    limit: str | None = Field(None, description="413 only: the setting that sets the limit")
    file: str | None = Field(None, description="413 only: the file concerned, if any")


class FieldErrors(BaseModel):
    """Input that was refused, each error naming its field."""

    detail: list[ErrorItem]


class ErrorMessage(BaseModel):
    detail: str


class Conflict(BaseModel):
    """A conflict with what is stored: a message, or errors naming the fields (``missing``: the blobs not
    uploaded yet)."""

    detail: str | list[ErrorItem]
    missing: list[str] | None = None


_ERRORS: dict[int, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "The request could not be read to its end"},
    401: {"model": ErrorMessage, "description": "No API key, or an unknown or revoked one"},
    403: {"model": ErrorMessage, "description": "The key may not use this project or endpoint"},
    404: {"model": ErrorMessage, "description": "No such run, file, artifact or silence"},
    409: {"model": Conflict, "description": "The request conflicts with what is stored"},
    413: {"model": FieldErrors, "description": "The body is over a size limit (named in `limit`)"},
    422: {"model": FieldErrors, "description": "Invalid input; `loc` names the field"},
}


_UNAVAILABLE = {"model": ErrorMessage,  # alerts.api.outage
                "description": "The database is unavailable (restarting or unreachable): retry after `Retry-After`",
                "headers": {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0}}}}


def answers(*codes: int, ok: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route: the error codes it may answer, and ``ok`` for its 200 when the route
    returns a ``Response`` of its own (no ``response_model``). Every route of the API reads the database
    (the key, at least), so each may also answer 503 while it is down."""
    found: dict[int | str, dict[str, Any]] = {code: _ERRORS[code] for code in codes}
    found[503] = _UNAVAILABLE
    if ok is not None:
        found[200] = ok
    return found


# Runs ---------------------------------------------------------------------------------------------
class WhoAmI(BaseModel):
    project: str | None = Field(description="The key's project; null for an admin key")
    admin: bool
    key_id: str


class StopRequest(BaseModel):
    """Who asked a run to stop, and why (``alerts.presentation.stop_json``)."""

    by: str = Field(description='"rule nan-loss", "admin key 3", "cli", "dashboard (...)"')
    rule: str | None = Field(description="The rule whose stop_run action asked, if one did")
    reason: str
    step: int | None = Field(description="The run's step when it was asked")
    at: IsoTime


class Run(BaseModel):
    """A run as the API shows it (``alerts.presentation.run_json``)."""

    project: str
    id: str
    name: str
    state: RunState
    url: str
    config: dict[str, Any]
    tags: list[str]
    notes: str | None
    group: str | None
    job_type: str | None
    summary: dict[str, Any]
    created_at: IsoTime
    started_at: IsoTime
    finished_at: IsoTime | None
    last_contact: IsoTime
    exit_code: int | None
    failure_reason: str | None
    console_tail: str | None
    last_seq: int = Field(description="The highest record seq stored")
    host: str | None
    pid: int | None
    system: dict[str, Any]
    stop_request: StopRequest | None = Field(description="Set once someone asked the run to stop")


class RunStarted(Run):
    heartbeat_interval: float = Field(description="Seconds between the SDK's heartbeats")
    resumed: bool
    last_step: int | None = Field(description="A resumed run's highest stored step")


class RunEventAnswer(BaseModel):
    state: RunState
    reason: str | None
    at: float


class RunDetail(Run):
    last_step: int | None
    events: list[RunEventAnswer]


class RunList(BaseModel):
    runs: list[Run]


class RecordsAnswer(BaseModel):
    accepted: int
    duplicates: int
    last_seq: int
    stop: StopRequest | None = Field(None, description="Present once the run was asked to stop: the SDK stops it")


class AlertCallResult(BaseModel):
    id: str = Field(description="The client's id of the call")
    status: Literal["created", "suppressed", "duplicate"]
    alert_id: str | None


class AlertCallResults(BaseModel):
    results: list[AlertCallResult]


class StopAnswer(BaseModel):
    requested: bool = Field(description="This call asked the run to stop (false: asked before, or not running)")
    state: RunState
    stop_request: StopRequest | None = Field(description="The request in force; null when the run has ended")


class Heartbeat(BaseModel):
    state: RunState
    heartbeat_interval: float
    stop: StopRequest | None = Field(None, description="Present once the run was asked to stop: the SDK stops it")


HistoryRow = dict[str, Number | NonFinite | None]
"""``_step``, ``_timestamp``, ``_runtime`` and the keys the step logged."""


class HistoryPage(BaseModel):
    rows: list[HistoryRow]
    next_after_step: int | None = Field(description="Pass back as `after_step` for the next page; null at the end")


class MediaItem(BaseModel):
    key: str
    step: int
    kind: str
    value: Any


class MediaList(BaseModel):
    media: list[MediaItem]


# Alerts, notifications, silences ------------------------------------------------------------------
class AlertRun(BaseModel):
    id: str
    name: str
    url: str
    state: RunState


class AlertAnswer(BaseModel):
    """SPEC §7's alert object, with what the service keeps about it."""

    id: str
    fingerprint: str
    status: AlertStatus
    source: AlertSource
    rule: str | None
    title: str
    text: str
    severity: Severity
    labels: dict[str, str]
    project: str
    run: AlertRun | None
    metric: str | None
    value: JsonFloat | None
    threshold: JsonFloat | None
    step: int | None
    starts_at: IsoTime
    ends_at: IsoTime | None
    url: str
    suppressed_count: int
    delayed: bool
    resolved_reason: str | None
    silenced_by: list[str] = Field(description="The silences that mute it now")
    annotations: dict[str, str] | None = Field(None, description="Prometheus alerts: the annotations posted")
    generator_url: str | None = Field(None, description="Prometheus alerts: the link to the expression that fired")


class AlertList(BaseModel):
    alerts: list[AlertAnswer]


class NotificationAnswer(BaseModel):
    id: str = Field(description="The delivery id, the same on every retry")
    channel: str
    group_key: str
    status: NotificationStatus
    attempts: int
    next_attempt_at: IsoTime | None
    last_error: str | None
    created_at: IsoTime | None
    delivered_at: IsoTime | None
    message: dict[str, Any]


class NotificationList(BaseModel):
    notifications: list[NotificationAnswer]


class Reloaded(BaseModel):
    status: Literal["ok"]
    rules: int = Field(description="Rules loaded")
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]
    channels: dict[str, list[str]] = Field(description="Channel names by change: added, changed, removed, ...")
    restart_required: list[str] = Field(description="Sections whose changes take effect after a restart")


class ReloadFailed(BaseModel):
    status: Literal["error"]
    detail: str
    errors: list[str] = Field(description="file:line:col: message, one per error")


class SilenceAnswer(BaseModel):
    id: str
    matchers: list[str]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float
    state: Literal["pending", "active", "expired"]


class SilenceList(BaseModel):
    silences: list[SilenceAnswer]


def _pair(items: dict[str, Any]) -> WithJsonSchema:
    # Plain arrays with a length, not prefixItems: schemathesis (4.32) cannot read prefixItems in an anyOf.
    return WithJsonSchema({"type": "array", "items": items, "minItems": 2, "maxItems": 2})


class Series(BaseModel):
    """One metric of a run for a chart (README: "Metric series for charts")."""

    key: str
    x: Literal["step", "time"]
    mode: Literal["raw", "minmax"]
    width: int
    window: Annotated[tuple[float | None, float | None],
                      _pair({"type": ["number", "null"]})] = Field(description="[start, end] as asked")
    points: int
    extent: Annotated[tuple[Number, Number], _pair({"type": "number"})] | None = Field(
        description="The x range of the whole series; null without points")
    xs: list[Number]
    xe: list[Number]
    min: list[Number | None]
    max: list[Number | None]
    count: list[int]
    nonfinite: list[Annotated[tuple[Number, NonFinite, int], WithJsonSchema({
        "type": "array", "minItems": 3, "maxItems": 3, "description": "[x of the first, kind, count]",
        "items": {"anyOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]}})]]


# Files and artifacts ------------------------------------------------------------------------------
class BlobsToUpload(BaseModel):
    """Which of the digests asked about the project has not uploaded yet."""

    missing: list[str]
    max_file_bytes: int


class BlobStored(BaseModel):
    sha256: str
    size: int
    created: bool


class FileAnswer(BaseModel):
    name: str
    size: int
    sha256: str
    kind: Literal["file", "code"]
    updated_at: IsoTime
    url: str


class FileList(BaseModel):
    files: list[FileAnswer]


class ArtifactRun(BaseModel):
    project: str
    id: str


class ArtifactAnswer(BaseModel):
    project: str
    name: str
    type: str
    version: str = Field(description="v0, v1, ...")
    version_index: int
    digest: str
    description: str | None
    metadata: dict[str, Any]
    aliases: list[str]
    size: int
    file_count: int
    created_at: IsoTime
    created_by: ArtifactRun | None
    url: str


class ArtifactEntryAnswer(BaseModel):
    path: str
    sha256: str | None
    size: int | None
    ref: str | None


class ArtifactManifest(ArtifactAnswer):
    entries: list[ArtifactEntryAnswer]


class ArtifactLogged(ArtifactManifest):
    created: bool = Field(description="False: a version with the same digest existed and is returned")


class RunArtifacts(BaseModel):
    logged: list[ArtifactAnswer]
    used: list[ArtifactAnswer]


# Service ------------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    reason: str | None = None


DOWNLOAD = {"description": "The contents, as an attachment", "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, "headers": {
    "Content-Length": {"required": True, "schema": {"type": "integer", "minimum": 0}},
    "Content-Disposition": {"required": True, "schema": {"type": "string", "pattern": "^attachment;"}},
    "X-Runwatch-Sha256": {"required": True, "description": "The sha256 of the contents",
                          "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}}
"""The 200 of a file download (``files.download``)."""
