"""The one storage interface of the service; SQLite and PostgreSQL implement it (``sql.py``).

Every method is a coroutine and a unit of work: it commits before it returns, so a caller that saw a
method return knows the data survives a crash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from alerts.model import Alert, ApiKey, Notification, NotificationStatus, Run, RunEvent, RunState


@dataclass
class RunExit:
    state: RunState
    exit_code: int | None
    reason: str | None
    console_tail: str | None
    at: float


@dataclass
class RecordBatch:
    """Decoded run records, ready to write in one transaction (see ``ingest.records``). Every point's step
    is among ``steps`` (the SQLite writer relies on it to tell a batch that only appends)."""

    first_seq: int
    last_seq: int
    steps: list[tuple[int, float, float | None]] = field(default_factory=list)
    points: list[tuple[str, int, float, float]] = field(default_factory=list)
    media: list[tuple[str, int, str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    exit: RunExit | None = None
    events: list[tuple[str, float]] = field(default_factory=list)  # (reason, at): run events, state running
    delayed: bool = False
    """Uploaded after the fact by ``runwatch sync``: the run's process is not there to act on (stop)."""


@dataclass(frozen=True)
class AlertCall:
    """One ``alert()`` call as the SDK sent it (what the throttle needs of it)."""

    client_id: str
    title: str
    at: float
    wait_duration: float
    request: dict[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class AlertCallOutcome:
    call: AlertCall
    status: Literal["created", "suppressed", "duplicate"]
    alert_id: str | None
    alert: Alert | None = None
    """The alert that was created (``created`` only)."""


@dataclass(frozen=True)
class ChannelState:
    channel: str
    key: str
    value: Any
    at: float


@dataclass(frozen=True)
class DeliveryAttempt:
    """The outcome of one claimed delivery: the row's new status, attempt count and next due time."""

    notification_id: str
    status: NotificationStatus
    attempts: int
    next_attempt_at: float
    error: str | None = None
    delivered_at: float | None = None


@dataclass(frozen=True)
class OpsCounts:
    """What an operator watches in the database (``/metrics``): alerts by status, the outbox's depth."""

    alerts_by_status: dict[str, int]
    pending_notifications: int
    oldest_pending_created_at: float | None


@dataclass(frozen=True)
class RunLease:
    """Who evaluates a run (cluster mode): a replica's id and address, until ``expires_at``."""

    run_pk: int
    replica: str
    url: str
    expires_at: float


@dataclass
class NewRun:
    project: str
    id: str
    name: str
    config: dict[str, Any]
    tags: list[str]
    notes: str | None
    group: str | None
    job_type: str | None
    started_at: float
    host: str | None
    pid: int | None
    system: dict[str, Any] = field(default_factory=dict)


SeriesX = Literal["step", "time"]


@dataclass(frozen=True)
class SeriesData:
    """One metric series as a chart of ``width`` pixel columns draws it (``Store.series``).

    Columns, one entry per point (``raw``) or per non-empty pixel column (``minmax``): ``xs``/``xe`` the
    first/last x in it (equal in raw mode), ``mins``/``maxs`` the least/greatest *finite* value (None when
    it holds none; equal in raw mode), ``counts`` its number of points (1 in raw mode). Non-finite points
    are never folded into min/max: ``nonfinite`` holds, per column and kind (NaN, +inf, -inf), the x of
    the first such point, the kind as a float, and how many of that kind the column holds.
    """

    key: str
    x: SeriesX
    mode: Literal["raw", "minmax"]
    points: int
    """Points of the whole series (any window)."""
    extent: tuple[float, float] | None
    """The x range of the whole series; None when it has no points."""
    xs: list[float] = field(default_factory=list)
    xe: list[float] = field(default_factory=list)
    mins: list[float | None] = field(default_factory=list)
    maxs: list[float | None] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    nonfinite: list[tuple[float, float, int]] = field(default_factory=list)


@dataclass(frozen=True)
class StoredFile:
    """A file stored with a run (``save``: kind ``file``; ``log_code``: kind ``code``)."""

    path: str
    sha256: str
    size: int
    kind: str
    updated_at: float


@dataclass(frozen=True)
class ArtifactEntry:
    """One path of an artifact version: contents by ``sha256``, or a ``ref`` URI that is never fetched."""

    path: str
    sha256: str | None
    ref: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class NewArtifact:
    project: str
    name: str
    type: str
    description: str | None
    metadata: dict[str, Any]
    aliases: list[str]
    entries: list[ArtifactEntry]
    run_pk: int | None = None
    relation: Literal["logged", "used"] = "logged"
    """How the run relates to it: it logged it (an output) or used it (an input)."""


@dataclass(frozen=True)
class ArtifactVersion:
    pk: int
    project: str
    name: str
    type: str
    version: int
    """0, 1, ... per (project, name): ``v0``, ``v1``, ..."""
    digest: str
    description: str | None
    metadata: dict[str, Any]
    size: int
    file_count: int
    created_by: int | None
    created_at: float
    aliases: list[str] = field(default_factory=list)
    """``latest`` on the newest version, then the user aliases that point here."""


class FileStoreError(Exception):
    """A file or artifact write the store refused; the API answers it with a 4xx naming the problem."""


class RunBytesExceeded(FileStoreError):
    """The run would store more than ``files.max_run_bytes``."""

    def __init__(self, stored: int, adding: int, limit: int) -> None:
        super().__init__(f"the run stores {stored} bytes; {adding} more would exceed {limit}")
        self.stored, self.adding, self.limit = stored, adding, limit


class MissingBlobs(FileStoreError):
    """Contents named by digest that the project has not uploaded."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(f"not uploaded: {', '.join(digests)}")
        self.digests = digests


class ArtifactTypeConflict(FileStoreError):
    """An artifact name already has versions of another type."""

    def __init__(self, name: str, existing: str, requested: str) -> None:
        super().__init__(f"artifact {name!r} is of type {existing!r}, not {requested!r}")
        self.name, self.existing, self.requested = name, existing, requested


class Store(ABC):
    """Async persistence for keys, runs, metric points, media, files, artifacts, alerts and the outbox."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema to the newest migration."""

    @abstractmethod
    async def close(self) -> None: ...

    # API keys -----------------------------------------------------------------------------------
    @abstractmethod
    async def insert_api_key(self, key: ApiKey, key_hash: str) -> None: ...

    @abstractmethod
    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash unless it was revoked."""

    @abstractmethod
    async def list_api_keys(self) -> list[ApiKey]: ...

    @abstractmethod
    async def revoke_api_key(self, key_id: str, at: float) -> bool: ...

    # Runs ---------------------------------------------------------------------------------------
    @abstractmethod
    async def upsert_run(self, new: NewRun, at: float) -> tuple[Run, bool]:
        """Create the run, or return the existing one with the same (project, id); True if created.

        Resuming a run that had ended sets it running again (W&B ``resume``), recorded as an event; the
        init's config is merged over the stored one (the resumed process may change values).
        """

    @abstractmethod
    async def get_run(self, project: str, run_id: str) -> Run | None: ...

    @abstractmethod
    async def get_runs_by_pk(self, pks: list[int]) -> dict[int, Run]:
        """The runs with these primary keys (those that exist), in one query."""

    @abstractmethod
    async def list_runs(self, *, project: str | None, state: str | None = None, tag: str | None = None,
                        name: str | None = None, limit: int = 100, offset: int = 0) -> list[Run]: ...

    @abstractmethod
    async def list_projects(self) -> list[dict[str, Any]]:
        """Every project with runs: ``{"name", "runs", "running", "last_started_at"}``, by name."""

    @abstractmethod
    async def touch_run(self, run_pk: int, at: float) -> None:
        """Record contact from the run's process (what heartbeat loss is measured against)."""

    @abstractmethod
    async def apply_records(self, run: Run, batch: RecordBatch, at: float) -> tuple[bool, RunEvent | None]:
        """Write a batch whose ``first_seq == run.last_seq + 1``.

        Returns (applied, exit event if the batch ended the run); applied is False, and nothing is
        written, when the run's last_seq moved meanwhile (a concurrent copy of the batch won).
        Points with an existing (key, step) are replaced: a later ``log`` of the same step wins.
        """

    @abstractmethod
    async def end_run(self, run_pk: int, exit: RunExit, *,
                      silent_since: float | None = None) -> RunEvent | None:
        """Move a running run to a terminal state; None if it was not running any more. A run that was
        asked to stop (:meth:`request_stop`) ends ``stopped`` whatever ``exit`` says, the request's ``by``
        and ``reason`` as its failure reason.

        With ``silent_since``, only while its last contact is still older than that: a heartbeat that
        arrived after the run was found silent keeps it running.
        """

    @abstractmethod
    async def request_stop(self, run_pk: int, request: dict[str, Any], at: float) -> dict[str, Any] | None:
        """Ask a running run to stop: store ``request`` on it, with a run event, unless a request is
        stored already. Returns the request in force (the earlier one when the run was asked before), or
        None when the run is not running. Once asked, the run ends ``stopped`` (see :meth:`end_run`)."""

    @abstractmethod
    async def stop_requests(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The stop requests of the running runs, by (project, run id)."""

    @abstractmethod
    async def find_silent_runs(self, last_contact_before: float) -> list[Run]:
        """Running runs whose last contact is older than the given time."""

    @abstractmethod
    async def list_run_events(self, run_pk: int) -> list[RunEvent]: ...

    @abstractmethod
    async def history(self, run_pk: int, *, keys: list[str] | None, after_step: int,
                      limit: int) -> list[dict[str, Any]]:
        """Rows ``{"_step", "_timestamp", "_runtime", key: value...}`` with step > after_step, by step.

        ``limit`` counts steps, not rows: with ``keys``, only the rows that have one of the keys are
        returned (W&B's ``history(keys=...)``), so a page may hold fewer rows than ``limit``.
        """

    @abstractmethod
    def history_pages(self, run_pk: int, *, keys: list[str] | None,
                      after_step: int = -1) -> AsyncIterator[list[dict[str, Any]]]:
        """Every ``history`` row after ``after_step``, in pages of a bounded number of points.

        Each page is read on its own, so a slow reader of a long export holds no transaction open; a
        run that is still logging shows the steps that were stored when their page was read.
        """

    @abstractmethod
    async def metric_keys(self, run_pk: int) -> list[str]:
        """Every metric key the run has logged, sorted."""

    @abstractmethod
    async def last_step(self, run_pk: int) -> int | None:
        """The highest step the run has stored, None before its first: where a resumed run goes on."""

    @abstractmethod
    async def series(self, run_pk: int, key: str, *, x: SeriesX = "step", start: float | None = None,
                     end: float | None = None, width: int = 1000) -> SeriesData:
        """The points of ``key`` with ``start <= x <= end`` (None: unbounded), x being the step or the
        point's timestamp, downsampled for a chart ``width`` pixel columns wide.

        At most ``2 * width`` points in the window come back raw; more are reduced in the database to one
        min/max column per x interval of ``1/width`` of the window's points' x range, so a spike stays its
        column's max and a lone NaN/inf stays visible in ``nonfinite``. An unknown key is an empty series.
        """

    @abstractmethod
    async def steps_at(self, run_pk: int, timestamps: list[float]) -> dict[float, int | None]:
        """For each time, the first step logged at or after it (None if none): where a time falls on the
        step axis."""

    @abstractmethod
    async def list_media(self, run_pk: int) -> list[dict[str, Any]]: ...

    # Files and artifacts (``storage/files.py``) ----------------------------------------------------
    @abstractmethod
    async def missing_blobs(self, project: str, digests: list[str]) -> list[str]:
        """The digests among ``digests`` whose contents ``project`` has not uploaded, in the order given."""

    @abstractmethod
    async def put_blob(self, project: str, sha256: str, size: int, data: Iterable[bytes], at: float) -> bool:
        """Store contents the caller verified to hash to ``sha256`` and make them ``project``'s; True
        if the project did not have them. Stored once whichever projects upload them, in short
        transactions (other writers go on meanwhile); a blob becomes visible only when complete."""

    @abstractmethod
    def read_blob(self, sha256: str) -> AsyncIterator[bytes]:
        """The contents, a stored chunk at a time, each read on its own (no transaction held open)."""

    @abstractmethod
    async def put_run_file(self, run_pk: int, path: str, sha256: str, kind: str, at: float, *,
                           max_run_bytes: int) -> StoredFile:
        """Store (or replace) the run's file ``path`` with uploaded contents.

        Raises :class:`RunBytesExceeded` when the run's files and the artifact versions it created
        would exceed ``max_run_bytes``, :class:`MissingBlobs` when the contents were not uploaded by
        the run's project.
        """

    @abstractmethod
    async def list_run_files(self, run_pk: int) -> list[StoredFile]:
        """The run's files by path."""

    @abstractmethod
    async def get_run_file(self, run_pk: int, path: str) -> StoredFile | None: ...

    @abstractmethod
    async def add_artifact(self, new: NewArtifact, at: float, *, max_run_bytes: int) -> tuple[ArtifactVersion, bool]:
        """The version of ``new.name`` with these contents: a new one (True) unless a version with the
        same digest exists. ``new.aliases`` move to it; the run (if any) is recorded as logging or
        using it. Raises :class:`MissingBlobs`, :class:`ArtifactTypeConflict`, :class:`RunBytesExceeded`.
        """

    @abstractmethod
    async def find_artifact(self, project: str, name: str, version: str) -> ArtifactVersion | None:
        """By ``v<N>``, ``latest``, a user alias or the full digest; None if there is no such version."""

    @abstractmethod
    async def artifact_entries(self, artifact_pk: int, path: str | None = None) -> list[ArtifactEntry]:
        """The version's entries by path (only ``path``'s, when given)."""

    @abstractmethod
    async def use_artifact(self, run_pk: int, artifact: ArtifactVersion, aliases: list[str],
                           at: float) -> ArtifactVersion:
        """Record that the run used this version (once), move ``aliases`` to it; returns it afresh."""

    @abstractmethod
    async def run_artifacts(self, run_pk: int) -> list[tuple[str, ArtifactVersion]]:
        """``(relation, version)`` of every artifact the run logged or used, oldest first."""

    # Alerts -------------------------------------------------------------------------------------
    @abstractmethod
    async def get_alert(self, alert_id: str) -> Alert | None:
        """The alert with this id (rule or ``alert()`` call), or None."""

    @abstractmethod
    async def add_explicit_alerts(self, project: str, run_id: str, calls: list[AlertCall],
                                  build: Callable[[AlertCall, int], Alert]) -> list[AlertCallOutcome]:
        """Store a batch of ``alert()`` calls in one transaction, in the order given (by timestamp).

        A call whose ``client_id`` is already stored is a ``duplicate``. Otherwise the throttle by
        (project, run, title) decides: within ``wait_duration`` seconds of the last admitted alert with
        that title the call is ``suppressed`` (and counted); else ``build(call, suppressed_since_last)``
        makes the alert, which is inserted and returned as ``created``.
        """

    @abstractmethod
    async def save_alerts(self, alerts: list[Alert]) -> None:
        """Insert or update (by id) rule alerts as their state changes."""

    @abstractmethod
    async def list_alerts(self, *, project: str | None, status: str | None = None, run_pk: int | None = None,
                          source: str | None = None, rule: str | None = None, severity: str | None = None,
                          fingerprints: list[str] | None = None, limit: int = 500) -> list[Alert]:
        """The newest alerts first; every filter given must match (``fingerprints``: one of them)."""

    # Notification outbox ------------------------------------------------------------------------
    @abstractmethod
    async def enqueue_notifications(self, notifications: list[Notification],
                                    channel_state: list[ChannelState] | None = None) -> None:
        """Add notifications to the outbox and, in the same transaction, set channel state (the
        notification log), so the two never disagree after a crash."""

    @abstractmethod
    async def claim_notifications(self, *, now: float, lease_until: float,
                                  quotas: dict[str, int]) -> tuple[list[Notification], float | None]:
        """Take due notifications for one delivery attempt each: at most ``quotas[channel]`` per channel,
        oldest first. Also returns when the next pending notification (of any channel) is due.

        A claim pushes ``next_attempt_at`` to ``lease_until``, so no other worker takes it, and a worker
        that dies mid-send only delays the retry until the lease runs out.
        """

    @abstractmethod
    async def record_attempts(self, attempts: list[DeliveryAttempt]) -> None:
        """Write the outcome of claimed deliveries (delivered, rescheduled or failed) in one transaction."""

    @abstractmethod
    async def fail_unrouted_notifications(self, channels: list[str], error: str, at: float) -> int:
        """Fail every pending notification for a channel not in ``channels`` (removed from the config)."""

    # Silences ---------------------------------------------------------------------------------------
    @abstractmethod
    async def save_silence(self, silence: dict[str, Any]) -> None:
        """Insert or replace a silence (``Silence.to_json()`` form)."""

    @abstractmethod
    async def list_silences(self) -> list[dict[str, Any]]: ...

    # Channel state ---------------------------------------------------------------------------------
    @abstractmethod
    async def get_channel_state(self, channel: str, key: str) -> Any | None:
        """What a channel remembered under ``key`` (e.g. the Slack message of an alert group)."""

    @abstractmethod
    async def set_channel_state(self, channel: str, key: str, value: Any, at: float) -> None: ...

    @abstractmethod
    async def set_channel_state_once(self, channel: str, key: str, value: Any, at: float) -> Any:
        """Store ``value`` unless the key has a value; return the value stored (the first writer's, when
        several replicas race)."""

    @abstractmethod
    async def get_channel_states(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """The stored values of many (channel, key) pairs at once; missing pairs are left out."""

    @abstractmethod
    async def list_notifications(self, *, status: str | None = None, limit: int = 500) -> list[Notification]: ...

    @abstractmethod
    async def purge_expired(self, kind: str, before: float, limit: int) -> int:
        """Delete at most ``limit`` rows of retention ``kind`` (``storage/retention.py``) that expired
        before ``before``, in one short transaction; how many (0: none is left)."""

    @abstractmethod
    async def check_ready(self) -> None:
        """Raise :class:`~alerts.errors.StorageError` (saying why, without the URL) unless the database
        answers now and its schema is at this release's head migration."""

    @abstractmethod
    async def ops_counts(self) -> OpsCounts:
        """Alerts by status and the pending notifications (count, oldest), read now."""

    # Replicas (``storage/cluster.py``) ----------------------------------------------------------------
    alert_channel: str | None = None
    """Cluster mode: every transaction that saves alerts also sends a ``NOTIFY`` on this PostgreSQL channel
    with their ids and statuses (a JSON list of ``[id, status]``), so the dispatch leader hears of them
    exactly when they commit."""

    @abstractmethod
    async def acquire_run_lease(self, run_pk: int, replica: str, url: str, *, now: float,
                                until: float) -> RunLease:
        """Take or renew the run's lease for ``replica`` if it is free, expired (``expires_at <= now``)
        or already its own; either way return the lease as it stands after (its holder may be another)."""

    @abstractmethod
    async def renew_run_leases(self, replica: str, run_pks: list[int], until: float) -> list[int]:
        """Extend the leases ``replica`` still holds among ``run_pks``; the run pks it still holds."""

    @abstractmethod
    async def release_run_leases(self, replica: str, run_pks: list[int] | None = None) -> None:
        """Give up ``replica``'s leases (of ``run_pks``, or all): another replica may take them at once."""

    @abstractmethod
    async def recent_points(self, run_pk: int, key: str, *, count: int,
                            seconds: float) -> list[tuple[str, int, float, float]]:
        """Every point of a key within ``seconds`` of its latest one, and the ``count`` points before those,
        as ``(key, step, timestamp, value)`` by step (NaN for a stored null): what a takeover judges again."""

    @abstractmethod
    async def key_points(self, run_pk: int, key: str, *, after_step: int,
                         limit: int) -> list[tuple[int, float, float]]:
        """The first ``limit`` points of a key with step > ``after_step``, as ``(step, timestamp, value)`` by
        step (NaN for a stored null): what a ``compare`` rule reads of the other runs of a group."""

    @abstractmethod
    async def get_alerts(self, alert_ids: list[str]) -> list[Alert]:
        """The alerts with these ids that exist (any order)."""

    @abstractmethod
    async def alerts_ended_since(self, at: float) -> list[Alert]:
        """Rule and Prometheus alerts resolved at or after ``at`` (their ``ends_at``)."""

    @abstractmethod
    async def told_since(self, at: float) -> set[tuple[str, str]]:
        """``(alert id, status)`` of every alert some notification queued at or after ``at`` carries (the
        outbox is the record of what was told, written with the notification log)."""
