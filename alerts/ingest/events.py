"""What ingest publishes to the rest of the service (the rule engine subscribes here)."""

from __future__ import annotations

from typing import Protocol

from alerts.model import Run, RunEvent
from alerts.storage.base import RecordBatch


class IngestListener(Protocol):
    """Receives every applied batch of points and every run state change, in arrival order."""

    async def on_batch(self, run: Run, batch: RecordBatch) -> None: ...

    async def on_run_event(self, event: RunEvent) -> None: ...
