"""The dispatch leader: one replica at a time runs the dispatcher (groups and their timers).

Election is a PostgreSQL session advisory lock held on a connection of its own. The same connection
``LISTEN``\\ s on the alert channel, which every replica's alert writes ``NOTIFY`` in their transaction
(``Store.alert_channel``). So leadership and hearing alerts stand or fall together: when the leader dies,
its connection closes, PostgreSQL frees the lock, and the next replica to ask (every
``leader_check_interval``) takes it and restores the groups from the database, as a restart does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
import orjson

log = logging.getLogger(__name__)

LOCK_KEY = 0x52554E57  # "RUNW": the advisory lock every replica of one database competes for
ALERT_CHANNEL = "runwatch_alerts"


class DispatchLeader:
    def __init__(self, dsn: str, *, interval: float, elected: Callable[[], Awaitable[None]],
                 deposed: Callable[[], Awaitable[None]],
                 alerts: Callable[[list[tuple[str, str]]], Awaitable[None]]) -> None:
        """``elected`` runs when this replica becomes the leader, ``deposed`` when it stops being it;
        ``alerts`` gets the ``(id, status)`` of alerts saved anywhere while this replica leads, in order."""
        self._dsn = dsn
        self._interval = interval
        self._elected = elected
        self._deposed = deposed
        self._alerts = alerts
        self.is_leader = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dispatch-leader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._campaign()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: try again, as a follower
                log.warning("dispatch leadership: %s: %s; retrying", type(exc).__name__, exc)
            await asyncio.sleep(self._interval)

    async def _campaign(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY, timeout=10):
                await asyncio.sleep(self._interval)
            heard: asyncio.Queue[str] = asyncio.Queue()
            await conn.add_listener(ALERT_CHANNEL, lambda _conn, _pid, _channel, payload: heard.put_nowait(payload))
            self.is_leader = True
            log.info("this replica is now the dispatch leader")
            try:
                await self._elected()
                await self._serve(conn, heard)
            finally:
                self.is_leader = False
                log.info("this replica is no longer the dispatch leader")
                await self._deposed()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=5)

    async def _serve(self, conn: asyncpg.Connection, heard: asyncio.Queue[str]) -> None:
        while True:
            try:
                payload = await asyncio.wait_for(heard.get(), timeout=self._interval)
            except TimeoutError:
                await conn.fetchval("SELECT 1", timeout=10)  # a dead connection ends the leadership
                continue
            notices = [(alert_id, status) for alert_id, status in orjson.loads(payload)]
            while not heard.empty():  # a burst of writes: one read, one submit
                notices.extend((alert_id, status) for alert_id, status in orjson.loads(heard.get_nowait()))
            await self._alerts(notices)
