"""The SDK's logger and log-once helper: internal errors are reported once per kind, never raised."""

from __future__ import annotations

import logging
import threading

__all__ = ["is_silent", "logger", "log_once", "quieten", "reset_log_once"]

logger = logging.getLogger("runwatch")

_seen: set[str] = set()
_lock = threading.Lock()


def log_once(kind: str, message: str, *args: object, level: int = logging.WARNING) -> bool:
    """Log ``message`` the first time ``kind`` is seen in this process; return whether it was logged."""
    with _lock:
        if kind in _seen:
            return False
        _seen.add(kind)
    logger.log(level, message, *args)
    return True


def reset_log_once() -> None:
    """Forget which kinds were logged (for tests)."""
    with _lock:
        _seen.clear()


_silent = False


def quieten() -> None:
    """``silent`` (``Settings(silent=True)``, ``RUNWATCH_SILENT``/``WANDB_SILENT``): print nothing, log errors only."""
    global _silent
    _silent = True
    logger.setLevel(logging.ERROR)


def is_silent() -> bool:
    return _silent
