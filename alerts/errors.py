"""Errors of the Runwatch service.

Hierarchy::

    AlertsError                  base of everything the service raises on purpose
    ├── ConfigError              a config or rule file is invalid (message carries file:line)
    ├── StorageError             the database could not be opened or migrated
    └── DeliveryError            a channel could not deliver a notification
        ├── RecoverableDeliveryError   retry later (connection error, timeout, 5xx, 408, 429)
        └── PermanentDeliveryError     do not retry (other 4xx, bad channel config)
"""

from __future__ import annotations


class AlertsError(Exception):
    """Base class of the service's own errors."""


class ConfigError(AlertsError):
    """A config file is invalid; ``errors`` holds every ``file:line: message`` found."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


class StorageError(AlertsError):
    """The storage backend could not be opened, migrated or used."""


class DeliveryError(AlertsError):
    """A channel failed to deliver; the message must never contain a secret."""


class RecoverableDeliveryError(DeliveryError):
    """A transient failure: the retry stage tries again, honouring ``retry_after`` seconds if set."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """A failure that retrying cannot fix; the notification is recorded as failed with this reason."""
