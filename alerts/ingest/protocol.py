"""The run-records part of the wire protocol (docs/protocol.md) as pydantic models.

Ingest consumes these objects directly: the records endpoint validates the raw body once
(``RecordsBody.model_validate_json``) and hands the models over without re-shaping them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

MAX_TIMESTAMP = 253_402_300_799.0
"""9999-12-31T23:59:59Z: the last UNIX time a date can show (later ones overflow ``datetime``)."""
Timestamp = Annotated[float, Field(ge=0, le=MAX_TIMESTAMP, allow_inf_nan=False,
                                   description="UNIX seconds, up to 9999-12-31T23:59:59Z")]
MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer every JSON reader keeps exact (JavaScript's ``Number.MAX_SAFE_INTEGER``): the bound
of steps, seqs and sizes (well inside the databases' BIGINT columns)."""
MAX_INTEGER = 2**31 - 1
"""The largest in an INTEGER column (process ids, exit codes)."""


def _whole_number(value: object) -> object:
    # JSON does not tell 3 from 3.0, and JSON Schema's "integer" admits both; true and "3" stay errors.
    return int(value) if type(value) is float and value.is_integer() else value


WHOLE_FLOATS = BeforeValidator(_whole_number)
"""For the int fields of bodies FastAPI parses, after their constraints: ``Annotated[int, Field(ge=0),
WHOLE_FLOATS]`` (the records' ints go without: a Python call per record would cost, and the SDK writes
its integers as integers)."""


class _Body(BaseModel):
    # Newer SDKs may send fields this service does not know yet; they are ignored, not rejected.
    # Strict: a JSON value is taken only as the type the schema names (no true for 1, no "3" for 3).
    model_config = ConfigDict(extra="ignore", strict=True)


class _Record(_Body):
    seq: Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER)]


class HistoryRecord(_Record):
    type: Literal["history"]
    step: Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
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
    state: Literal["finished", "failed", "killed", "stopped"]
    exit_code: Annotated[int, Field(ge=-MAX_INTEGER - 1, le=MAX_INTEGER)] | None = None
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
    delayed: bool = False
    """Uploaded after the fact (``runwatch sync`` of an offline run): no process is there to stop, so a
    rule's ``stop_run`` does not ask it to."""
