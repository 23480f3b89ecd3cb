"""Exceptions raised by the Runwatch SDK.

Hierarchy::

    Error                 base class of everything the SDK raises on purpose
    ├── UsageError        the API was used in the wrong order (e.g. ``alert()`` after ``finish()``)
    └── ConfigError       a ``config`` key was changed without ``allow_val_change=True``

Only usage errors reach the training loop; network, disk and encoding problems are logged once via
``logging.getLogger("runwatch")`` and swallowed.
"""

from __future__ import annotations

__all__ = ["Error", "UsageError", "ConfigError"]


class Error(Exception):
    """Base class of every exception the Runwatch SDK raises on purpose."""


class UsageError(Error):
    """The SDK was used in a way its contract forbids (wrong order, finished run)."""


class ConfigError(Error):
    """A config value was changed without ``allow_val_change=True``."""
