"""The service's domain objects, shared by ingest, notify, storage and the API.

Plain dataclasses: the store returns them, the stages pass them on, the API renders them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"
    CRASHED = "crashed"
    STOPPED = "stopped"
    """Ended on request: a rule's ``actions: [stop_run]``, ``alerts runs stop``, the dashboard's Stop."""

    @property
    def is_terminal(self) -> bool:
        return self is not RunState.RUNNING


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class AlertSource(StrEnum):
    SDK = "sdk"
    RULE = "rule"
    PROMETHEUS = "prometheus"
    """Posted to ``/api/v2/alerts`` (Prometheus' notifier, or any Alertmanager client)."""


class AlertStatus(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass
class ApiKey:
    id: str
    project: str | None
    admin: bool
    created_at: float
    revoked_at: float | None = None

    def may_access(self, project: str) -> bool:
        return self.admin or self.project == project


@dataclass
class Run:
    pk: int
    project: str
    id: str
    name: str
    state: RunState
    config: dict[str, Any]
    tags: list[str]
    notes: str | None
    group: str | None
    job_type: str | None
    summary: dict[str, Any]
    created_at: float
    started_at: float
    last_contact: float
    finished_at: float | None = None
    exit_code: int | None = None
    failure_reason: str | None = None
    console_tail: str | None = None
    last_seq: int = 0
    host: str | None = None
    pid: int | None = None
    system: dict[str, Any] = field(default_factory=dict)  # OS, Python, git, CPUs, GPUs (SDK's init)
    stop_request: dict[str, Any] | None = None
    """Set once someone asked this run to stop (``alerts.actions.stop``): who (``by``), ``rule``, ``reason``,
    ``at``, ``step``. The SDK learns it from the answer to its next send; the run then ends ``stopped``."""


def stop_text(request: dict[str, Any]) -> str:
    """``by rule nan-loss at step 120: loss = nan``: who asked a run to stop, and why."""
    step = request.get("step")
    at_step = f" at step {step}" if step is not None else ""
    return f"by {request.get('by') or 'someone'}{at_step}: {request.get('reason') or 'no reason given'}"


def stopped_reason(request: dict[str, Any], reported: RunState, reason: str | None) -> str:
    """The failure reason of a run that ended after it was asked to stop: the request, then what its
    process reported if that adds anything (an exception while stopping, lost contact)."""
    text = f"stopped {stop_text(request)}"
    if reason and reported in (RunState.FAILED, RunState.CRASHED):
        text += f"; then {reported.value}: {reason}"
    return text


@dataclass
class RunEvent:
    """A state change of a run: what rules with ``run_state`` trigger on."""

    run: Run
    state: RunState
    reason: str | None
    at: float


@dataclass
class Alert:
    """One alert, from a rule, an explicit ``alert()`` call or Prometheus (``source``)."""

    id: str
    fingerprint: str
    source: AlertSource
    project: str
    title: str
    text: str
    severity: Severity
    labels: dict[str, str]
    status: AlertStatus
    starts_at: float
    rule: str | None = None
    run_pk: int | None = None
    client_id: str | None = None
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    step: int | None = None
    ends_at: float | None = None
    suppressed_count: int = 0
    delayed: bool = False
    created_at: float = 0.0
    resolved_reason: str | None = None
    annotations: dict[str, str] | None = None
    """Prometheus alerts: the annotations as posted (``summary`` and ``description`` are the title and text)."""
    generator_url: str | None = None
    """Prometheus alerts: the link back to the expression that fired (Prometheus' graph page)."""
    expires_at: float | None = None
    """Prometheus alerts: the ``endsAt`` of the last post. A firing alert not posted again by then resolves
    (Alertmanager's rule: Prometheus sends ``endsAt`` a few evaluation intervals ahead at every resend)."""
    notify: tuple[str, ...] = ()
    """Channels named by the rule's ``notify`` shortcut (not stored: routing happens when it fires)."""
    actions: tuple[str, ...] = ()
    """What its firing does besides notifying (``stop_run``), decided when it fired (not stored: done then)."""


def fingerprint(labels: dict[str, str]) -> str:
    """Stable identity of an alert series: a hash of its sorted labels, as in Alertmanager."""
    digest = hashlib.sha256()
    for key in sorted(labels):
        digest.update(key.encode())
        digest.update(b"\xff")
        digest.update(str(labels[key]).encode())
        digest.update(b"\xff")
    return digest.hexdigest()[:16]


@dataclass
class Notification:
    """One message to one channel, persisted before it is sent (the outbox).

    ``id`` is the delivery id: it stays the same across retries, so receivers can deduplicate.
    ``message`` is the channel-independent content (status, group labels, alert snapshots).
    """

    id: str
    channel: str
    group_key: str
    message: dict[str, Any]
    status: NotificationStatus = NotificationStatus.PENDING
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    created_at: float = 0.0
    delivered_at: float | None = None
