"""The service's log: text lines by default, one JSON object per line when ``logging.format: json``.

JSON lines are for log shippers (Loki, Elasticsearch, Cloud Logging): ``time`` (UTC, ISO 8601), ``level``,
``logger``, ``message`` and, for an error with a traceback, ``exception``. The messages are the same as
in text, so what keeps secrets out of them (redaction where a message is made) holds for both.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

from alerts.config.settings import LoggingSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_service_logging(settings: LoggingSettings) -> None:
    """Set the root logger's level and format for ``serve``; uvicorn's loggers propagate to it."""
    root = logging.getLogger()
    root.setLevel(settings.level.upper())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT))
