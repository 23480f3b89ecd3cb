"""The service settings: the shape of ``alerts.yaml`` (SPEC §4.2) as pydantic models.

Environment variables ``ALERTS_<SECTION>__<KEY>`` override the file (pydantic-settings), so a
container can change the port or the storage URL without editing YAML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alerts.dispatch.routes import RouteConfig
from alerts.durations import Duration
from alerts.inhibit.inhibitor import InhibitRule
from alerts.notify.channels.console import ConsoleConfig
from alerts.notify.channels.registry import CHANNEL_CONFIGS
from alerts.timeinterval.intervals import parse_mute_times


class _Strict(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    """Address to listen on (`0.0.0.0` for every interface)."""
    port: int = Field(default=8080, ge=0, le=65535)
    """Port to listen on."""
    public_url: str | None = None
    """The dashboard's address as users reach it: the links in notifications (default: `http://host:port`)."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    """Largest request body; file uploads have their own limits (`files`)."""


class StorageSettings(_Strict):
    url: str = "sqlite:///.alerts/alerts.db"
    """`sqlite:///path` (relative to the config file) or `postgresql://user:pass@host:5432/db`."""

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite://", "postgresql://", "postgresql+asyncpg://")):
            raise ValueError("storage url must start with sqlite:// or postgresql://")
        return url


class RunsSettings(_Strict):
    heartbeat_timeout: Duration = 60.0
    """A running run silent for this long is marked crashed."""
    crash_check_interval: Duration | None = None
    """How often to look for silent runs; default ``min(5s, heartbeat_timeout / 4)``."""


class RetentionSettings(_Strict):
    """How long to keep what is done with; None (the default but for the notification log) keeps it.
    Enforced every ``interval`` in batches of ``batch_size`` rows (``alerts/storage/retention.py``)."""

    notification_log: Duration | None = 120 * 3600.0
    """Entries of the notification log not written for this long (Alertmanager's 120 h)."""
    delivered_notifications: Duration | None = None
    """Outbox rows delivered this long ago (pending ones never go)."""
    failed_notifications: Duration | None = None
    """Outbox rows that failed for good this long ago."""
    resolved_alerts: Duration | None = None
    """Alerts resolved this long ago (firing and pending ones never go)."""
    points: Duration | None = None
    """The metric history of runs that ended this long ago (the runs themselves stay)."""
    finished_runs: Duration | None = None
    """Runs that ended this long ago, with everything of theirs."""
    interval: Duration = Field(default=60.0, gt=0)
    """How often the retention job runs."""
    batch_size: int = Field(default=1000, gt=0, le=100_000)
    """Rows deleted per transaction (ingest waits for one batch at most)."""


class ClusterSettings(_Strict):
    """Several replicas on one PostgreSQL database (``docs/architecture.md``): each run is evaluated by the
    replica holding its lease, one elected replica dispatches, every replica delivers."""

    enabled: bool = False
    """Run as one of several replicas; needs a ``postgresql://`` storage URL."""
    advertise_url: str | None = None
    """How the other replicas reach this one (``http://10.0.0.5:8080``), to forward a run's points to it;
    default ``server.public_url``, else ``http://{server.host}:{server.port}``."""
    lease_ttl: Duration = Field(default=15.0, gt=0)
    """How long a run's lease lasts unrenewed: after its replica dies, the run moves this much later."""
    leader_check_interval: Duration = Field(default=1.0, gt=0)
    """How often a replica that is not the dispatch leader tries to become it."""


class PrometheusSettings(_Strict):
    """Alerts posted to ``/api/v2/alerts`` by Prometheus (or any Alertmanager client): which project they
    belong to, and when one that is not posted again resolves."""

    project_label: str = Field(default="project", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    """The label whose value names an alert's project."""
    default_project: str = Field(default="infra", min_length=1, max_length=200,
                                 pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    """The project of an alert without that label, posted with an admin key (a project key's alerts are its
    own project's)."""
    resolve_timeout: Duration = Field(default=300.0, gt=0)
    """An alert posted without ``endsAt`` resolves this long after its last post (Alertmanager's
    ``resolve_timeout``); in the v2 API an ``alert()`` call shows as firing this long."""


class LoggingSettings(_Strict):
    format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (time, level, logger, message, exception) for log shippers."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe level logged."""


class FilesSettings(_Strict):
    """Limits of the files and artifacts runs store (``save``, ``log_code``, ``log_artifact``).

    Sizes are bytes or text such as ``100MiB``, ``1GiB``, ``500MB``. An upload over a limit is refused
    with 413 and a message naming the file and the limit.
    """

    max_file_bytes: ByteSize = Field(default=ByteSize(100 * 2**20), gt=0)
    """The largest single file (a saved file or one file of an artifact)."""
    max_run_bytes: ByteSize = Field(default=ByteSize(2**30), gt=0)
    """What one run may store: its files plus the artifact versions it creates."""


class ChartsSettings(_Strict):
    """Charts in notifications: the alert's series drawn with matplotlib in a worker process, attached by
    Slack and email, linked by webhooks (``chart_url``). A channel's ``charts: false`` leaves them out."""

    enabled: bool = True
    """Draw charts (off by itself, with one warning, when matplotlib is not installed)."""
    timeout: Duration = Field(default=2.0, gt=0)
    """The most a chart may delay a notification: past it the notification goes without the image and says
    "chart not ready in time" (the drawing goes on, for the chart's URL and the next notification)."""
    url_expiry: Duration = Field(default=7 * 86400.0, gt=0)
    """How long a signed `chart_url` stays valid; after that it answers 403."""
    workers: int = Field(default=1, ge=1, le=4)
    """Processes drawing charts, at low priority (started with the service when a Slack or email channel
    attaches charts, else at the first chart); drawing never blocks the service."""
    cache_bytes: ByteSize = Field(default=ByteSize(16 * 2**20), ge=0)
    """Memory kept for drawn charts (per alert state), bytes or text such as `16MiB`; 0 keeps none."""


class DeliverySettings(_Strict):
    """Retry policy of the outbox: exponential backoff with jitter, given up after ``max_age``."""

    initial_backoff: Duration = 1.0
    """Wait before the first retry of a failed delivery."""
    max_backoff: Duration = 300.0
    """Longest wait between retries (the backoff doubles up to it, with jitter)."""
    max_age: Duration = 86400.0
    """A notification still undelivered after this long fails for good."""
    timeout: Duration = 10.0
    """Bound on one delivery attempt (a channel's own `timeout` overrides it)."""
    concurrency: int = Field(default=32, ge=1)
    """Deliveries in flight per channel (a channel's own ``concurrency`` overrides it)."""


# One config model per channel type, each defined beside its channel (alerts/notify/channels/).
if TYPE_CHECKING:
    Channel = Any
else:
    Channel = Annotated[Union[CHANNEL_CONFIGS], Field(discriminator="type")]  # noqa: UP007


class DefaultsSettings(_Strict):
    channels: list[str] = Field(default_factory=lambda: ["console"])
    """Channels of alerts no route sends elsewhere."""
    group_by: list[str] = Field(default_factory=lambda: ["project", "run", "rule"])
    """Labels whose values make an alert group (`...`: every label, each alert its own group)."""
    group_wait: Duration = 0.0
    """Wait after a group's first alert for more before the first notification."""
    group_interval: Duration = 60.0
    """Wait between notifications of a group that changed."""
    repeat_interval: Duration = 4 * 3600.0
    """Notify a group that still fires, unchanged, again after this long."""
    send_resolved: bool = True
    """Notify when a group's alerts resolve."""
    mute_times: list[str] = Field(default_factory=list)
    """Names of `mute_times` intervals during which nothing is sent."""


def _walk_routes(routes: list[RouteConfig], where: str) -> list[tuple[str, RouteConfig]]:
    found = []
    for index, route in enumerate(routes):
        found.append((f"{where}[{index}]", route))
        found.extend(_walk_routes(route.routes, f"{where}[{index}].routes"))
    return found


def _console_only() -> dict[str, Any]:
    return {"console": ConsoleConfig(type="console")}


class AlertsSettings(BaseSettings):
    """Everything ``alerts.yaml`` can say; ``ALERTS_*`` environment variables win over the file."""

    model_config = SettingsConfigDict(use_attribute_docstrings=True, env_prefix="ALERTS_", env_nested_delimiter="__",
                                      extra="forbid")

    server: ServerSettings = Field(default_factory=lambda: ServerSettings())
    """The HTTP listener."""
    storage: StorageSettings = Field(default_factory=lambda: StorageSettings())
    """The database."""
    runs: RunsSettings = Field(default_factory=lambda: RunsSettings())
    """Run lifecycle."""
    delivery: DeliverySettings = Field(default_factory=lambda: DeliverySettings())
    """The outbox's retry policy."""
    files: FilesSettings = Field(default_factory=lambda: FilesSettings())
    """Limits of run files and artifacts."""
    logging: LoggingSettings = Field(default_factory=lambda: LoggingSettings())
    """The service's log."""
    retention: RetentionSettings = Field(default_factory=lambda: RetentionSettings())
    """How long finished things are kept (`alerts/storage/retention.py`)."""
    cluster: ClusterSettings = Field(default_factory=lambda: ClusterSettings())
    """Several replicas on one PostgreSQL database."""
    prometheus: PrometheusSettings = Field(default_factory=lambda: PrometheusSettings())
    """Alerts from Prometheus (the Alertmanager API v2 under `/api/v2`)."""
    charts: ChartsSettings = Field(default_factory=lambda: ChartsSettings())
    """Charts of the alerts' series in notifications."""
    rule_files: list[str] = Field(default_factory=list)
    """Globs of rule files, relative to the config file."""
    channels: dict[str, Channel] = Field(default_factory=_console_only)
    """Named channels (`type: console | webhook | slack | email`)."""
    defaults: DefaultsSettings = Field(default_factory=lambda: DefaultsSettings())
    """The root route: what alerts no route matches get."""
    routes: list[RouteConfig] = Field(default_factory=list)
    """The routing tree below the defaults: first match wins unless `continue: true`."""
    inhibit: list[InhibitRule] = Field(default_factory=list)
    """Alerts that mute others while they fire."""
    mute_times: dict[str, Any] = Field(default_factory=dict)
    """Named time intervals (``{name: interval or [intervals]}``) that routes mute during."""

    @field_validator("mute_times")
    @classmethod
    def _intervals(cls, raw: dict[str, Any]) -> dict[str, Any]:
        parse_mute_times(raw)  # raises ValueError naming the bad value
        return raw

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must override it, not the reverse.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _channels_exist(self) -> AlertsSettings:
        unknown = [name for name in self.defaults.channels if name not in self.channels]
        if unknown:
            raise ValueError(f"defaults.channels names unknown channel(s): {', '.join(unknown)}")
        problems = []
        for where, route in _walk_routes(self.routes, "routes"):
            missing = [name for name in route.channels or [] if name not in self.channels]
            if missing:
                problems.append(f"{where}.channels names unknown channel(s): {', '.join(missing)}")
            muted = [name for name in route.mute_times or [] if name not in self.mute_times]
            if muted:
                problems.append(f"{where}.mute_times names unknown interval(s): {', '.join(muted)}")
        unknown_mute = [name for name in self.defaults.mute_times if name not in self.mute_times]
        if unknown_mute:
            problems.append(f"defaults.mute_times names unknown interval(s): {', '.join(unknown_mute)}")
        if self.cluster.enabled and not self.storage.url.startswith("postgresql"):
            problems.append("cluster.enabled needs a postgresql:// storage.url (replicas share one database)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def heartbeat_interval(self) -> float:
        """What the SDK is told to use: often enough that three beats fit in one timeout."""
        return min(10.0, self.runs.heartbeat_timeout / 3)
