"""The run-records part of the wire protocol (docs/protocol.md) as pydantic models.

Ingest consumes these objects directly: the records endpoint validates the raw body once
(``RecordsBody.model_validate_json``) and hands the models over without re-shaping them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Timestamp = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Body(BaseModel):
    # Newer SDKs may send fields this service does not know yet; they are ignored, not rejected.
    model_config = ConfigDict(extra="ignore")


class _Record(_Body):
    seq: Annotated[int, Field(ge=1)]


class HistoryRecord(_Record):
    type: Literal["history"]
    step: Annotated[int, Field(ge=0)]
    timestamp: Timestamp
    runtime: Annotated[float, Field(allow_inf_nan=False)] | None = None
    data: dict[Annotated[str, Field(min_length=1, max_length=300)], Any]


class ConfigRecord(_Record):
    type: Literal["config"]
    config: dict[str, Any]


class SummaryRecord(_Record):
    type: Literal["summary"]
    summary: dict[str, Any]


class ExitRecord(_Record):
    type: Literal["exit"]
    state: Literal["finished", "failed", "killed"]
    exit_code: int | None = None
    reason: Annotated[str, Field(max_length=10_000)] | None = None
    console_tail: Annotated[str, Field(max_length=1_000_000)] | None = None
    timestamp: Timestamp


class PreemptingRecord(_Record):
    """``run.mark_preempting()``: the job scheduler may stop this run soon (W&B's preemptible runs)."""

    type: Literal["preempting"]
    timestamp: Timestamp


Record = Annotated[HistoryRecord | ConfigRecord | SummaryRecord | ExitRecord | PreemptingRecord,
                   Field(discriminator="type")]


class RecordsBody(_Body):
    records: list[Record] = Field(min_length=1, max_length=100_000)
