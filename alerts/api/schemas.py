"""Request bodies of the HTTP API (docs/protocol.md); validation errors name the offending field."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic.json_schema import models_json_schema

from alerts.ingest.protocol import MAX_INTEGER, MAX_SAFE_INTEGER, WHOLE_FLOATS, RecordsBody, Timestamp, _Body

__all__ = ["AlertCall", "AlertsBody", "BODY_COMPONENTS", "RECORDS_BODY_SCHEMA", "RecordsBody", "RunInit",
           "StopBody"]

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
RunId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
MAX_SYSTEM_BYTES = 64 * 1024


class RunInit(_Body):
    project: Name
    id: RunId
    name: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=100)
    notes: Annotated[str, Field(max_length=100_000)] | None = None
    group: Annotated[str, Field(max_length=300)] | None = None
    job_type: Annotated[str, Field(max_length=300)] | None = None
    started_at: Timestamp | None = None
    resume: bool | Literal["allow", "never", "must"] | None = None
    host: Annotated[str, Field(max_length=300)] | None = None
    pid: Annotated[int, Field(ge=0, le=MAX_INTEGER), WHOLE_FLOATS] | None = None
    # What the SDK learnt about the machine at init (OS, Python, program, git, CPUs, GPUs); free-form.
    system: dict[str, Any] | None = None

    @field_validator("system")
    @classmethod
    def _system_bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            size = len(json.dumps(value, allow_nan=False))
        except ValueError:
            raise ValueError("system info must be plain JSON, without NaN or infinity") from None
        if size > MAX_SYSTEM_BYTES:
            raise ValueError(f"system info must be at most {MAX_SYSTEM_BYTES} bytes of JSON, got {size}")
        return value


class AlertCall(_Body):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    title: Annotated[str, Field(min_length=1, max_length=1_000)]
    text: Annotated[str, Field(max_length=100_000)] = ""
    level: Literal["info", "warning", "error"] = "info"
    wait_duration: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 60.0
    timestamp: Timestamp
    step: Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER), WHOLE_FLOATS] | None = None
    delayed: bool = False
    chart: Annotated[str, Field(min_length=1, max_length=300)] | None = Field(
        default=None, description="alert(chart=...): a metric key of the run, stored as the alert's metric "
                                  "so its notification charts that series")


class StopBody(_Body):
    reason: Annotated[str, Field(min_length=1, max_length=2_000)] = "stopped by an admin"


class AlertsBody(_Body):
    alerts: list[AlertCall] = Field(min_length=1, max_length=100_000)


def _components(*models: type[_Body]) -> dict[str, Any]:
    _, found = models_json_schema([(model, "validation") for model in models],
                                  ref_template="#/components/schemas/{model}")
    return dict(found.get("$defs", {}))


BODY_COMPONENTS = _components(RecordsBody)
"""Schemas of the bodies routes read themselves (FastAPI never sees their models): OpenAPI components
that ``create_app`` adds to ``/openapi.json`` so the routes' ``$ref`` resolve."""
RECORDS_BODY_SCHEMA = {"$ref": "#/components/schemas/RecordsBody"}
