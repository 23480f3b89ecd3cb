"""Telling a database outage (a restart, a crash, a refused connection) from a query's own fault.

An outage is expected and ends by itself: requests get 503 with Retry-After (the SDK retries them; a
point is never lost), background loops log one line per failed turn and try again. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import exc as sa_exc

# SQLSTATE classes of a connection that failed or of a server going away: 08 (connection exception),
# 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now), 53 (insufficient resources).
_OUTAGE_STATES = ("08", "57P", "53")


def is_outage(error: BaseException) -> bool:
    """True if ``error`` says the database was unreachable, not that the statement was wrong."""
    if isinstance(error, OSError | TimeoutError):  # refused, reset, unreachable: before any statement ran
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        if isinstance(state, str) and state.startswith(_OUTAGE_STATES):
            return True
        # asyncpg's "cannot switch to state N; another operation is in progress": a pooled connection that a
        # dropped server left half-way through a statement. It is discarded, like a closed one.
        return type(error.orig).__name__ == "InternalClientError"
    return False


def describe(error: BaseException) -> str:
    """One line naming the failure, for a log (no traceback, no statement, no parameters)."""
    orig = getattr(error, "orig", None) or error
    text = str(orig).splitlines()[0] if str(orig) else ""
    return f"{type(orig).__name__}: {text}"[:300]


def log_failure(log: logging.Logger, message: str, error: BaseException, *args: object) -> None:
    """``log.exception(message)``, except during an outage: then a warning line without the traceback."""
    if is_outage(error):
        log.warning(message + " (the database is unavailable: %s)", *args, describe(error))
    else:
        log.error(message, *args, exc_info=error)


def guarded(job: Callable[[], Awaitable[object]], what: str,
            log: logging.Logger) -> Callable[[], Awaitable[None]]:
    """A scheduled job that reports an outage in one line and lets the scheduler run it again."""
    async def run() -> None:
        try:
            await job()
        except Exception as error:
            log_failure(log, "%s failed", error, what)

    run.__name__ = run.__qualname__ = getattr(job, "__qualname__", what)
    return run
