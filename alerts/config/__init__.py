"""Service configuration: ``alerts.yaml`` plus ``ALERTS_*`` environment overrides."""

from alerts.config.loader import load_settings, resolve_config_path
from alerts.config.settings import AlertsSettings

__all__ = ["AlertsSettings", "load_settings", "resolve_config_path"]
