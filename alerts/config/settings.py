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
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)


class StorageSettings(_Strict):
    url: str = "sqlite:///.alerts/alerts.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite://", "postgresql://", "postgresql+asyncpg://")):
            raise ValueError("storage url must start with sqlite:// or postgresql://")
        return url


class RunsSettings(_Strict):
    heartbeat_timeout: Duration = 60.0
    crash_check_interval: Duration | None = None
    """How often to look for silent runs; default ``min(5s, heartbeat_timeout / 4)``."""


class RetentionSettings(_Strict):
    """How long to keep what is done with; None (the default but for the notification log) keeps it.
    Enforced every ``interval`` in batches of ``batch_size`` rows (``alerts/storage/retention.py``)."""

    notification_log: Duration | None = 120 * 3600.0
    """Entries of the notification log not written for this long (Alertmanager's 120 h)."""
    delivered_notifications: Duration | None = None
    failed_notifications: Duration | None = None
    resolved_alerts: Duration | None = None
    points: Duration | None = None
    """The metric history of runs that ended this long ago (the runs themselves stay)."""
    finished_runs: Duration | None = None
    """Runs that ended this long ago, with everything of theirs."""
    interval: Duration = Field(default=60.0, gt=0)
    batch_size: int = Field(default=1000, gt=0, le=100_000)


class LoggingSettings(_Strict):
    format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (time, level, logger, message, exception) for log shippers."""
    level: Literal["debug", "info", "warning", "error"] = "info"


class FilesSettings(_Strict):
    """Limits of the files and artifacts runs store (``save``, ``log_code``, ``log_artifact``).

    Sizes are bytes or text such as ``100MiB``, ``1GiB``, ``500MB``. An upload over a limit is refused
    with 413 and a message naming the file and the limit.
    """

    max_file_bytes: ByteSize = Field(default=ByteSize(100 * 2**20), gt=0)
    """The largest single file (a saved file or one file of an artifact)."""
    max_run_bytes: ByteSize = Field(default=ByteSize(2**30), gt=0)
    """What one run may store: its files plus the artifact versions it creates."""


class DeliverySettings(_Strict):
    """Retry policy of the outbox: exponential backoff with jitter, given up after ``max_age``."""

    initial_backoff: Duration = 1.0
    max_backoff: Duration = 300.0
    max_age: Duration = 86400.0
    timeout: Duration = 10.0
    concurrency: int = Field(default=32, ge=1)
    """Deliveries in flight per channel (a channel's own ``concurrency`` overrides it)."""


# One config model per channel type, each defined beside its channel (alerts/notify/channels/).
if TYPE_CHECKING:
    Channel = Any
else:
    Channel = Annotated[Union[CHANNEL_CONFIGS], Field(discriminator="type")]  # noqa: UP007


class DefaultsSettings(_Strict):
    channels: list[str] = Field(default_factory=lambda: ["console"])
    group_by: list[str] = Field(default_factory=lambda: ["project", "run", "rule"])
    group_wait: Duration = 0.0
    group_interval: Duration = 60.0
    repeat_interval: Duration = 4 * 3600.0
    send_resolved: bool = True
    mute_times: list[str] = Field(default_factory=list)


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

    model_config = SettingsConfigDict(env_prefix="ALERTS_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=lambda: ServerSettings())
    storage: StorageSettings = Field(default_factory=lambda: StorageSettings())
    runs: RunsSettings = Field(default_factory=lambda: RunsSettings())
    delivery: DeliverySettings = Field(default_factory=lambda: DeliverySettings())
    files: FilesSettings = Field(default_factory=lambda: FilesSettings())
    logging: LoggingSettings = Field(default_factory=lambda: LoggingSettings())
    retention: RetentionSettings = Field(default_factory=lambda: RetentionSettings())
    rule_files: list[str] = Field(default_factory=list)
    """Globs of rule files, relative to the config file."""
    channels: dict[str, Channel] = Field(default_factory=_console_only)
    defaults: DefaultsSettings = Field(default_factory=lambda: DefaultsSettings())
    routes: list[RouteConfig] = Field(default_factory=list)
    inhibit: list[InhibitRule] = Field(default_factory=list)
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
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def heartbeat_interval(self) -> float:
        """What the SDK is told to use: often enough that three beats fit in one timeout."""
        return min(10.0, self.runs.heartbeat_timeout / 3)
