"""Notification-only naming: the group key a notification carries.

Alert objects, run URLs and time formatting live in :mod:`alerts.presentation`.
"""

from __future__ import annotations


def group_key(route: str, group_labels: dict[str, str]) -> str:
    """Alertmanager's spelling: ``{route}:{label="value", ...}``."""
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(group_labels.items()))
    return f"{route}:{{{inner}}}"
