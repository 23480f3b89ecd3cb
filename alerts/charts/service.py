"""The service's charts: drawn off the event loop, cached per alert state, never later than the bound.

A notification's chart is made in two steps: :func:`~alerts.charts.data.chart_data` reads the series
on the event loop (async database reads), then :func:`~alerts.charts.render.render_png` draws it in a
worker process (``worker.py``: the "spawn" start method, ``charts.workers`` of them at low priority,
started with the service when a channel attaches images, else at the first chart). Drawing in a process
rather than a thread keeps matplotlib off the event loop's GIL: ingest and delivery go on while a chart
is drawn (a 100,000-point chart holds a thread's GIL for most of its ~100 ms).

:meth:`Charts.for_notification` waits at most ``charts.timeout`` (default 2 s). Past it, the channel
sends without the image and says "chart not ready in time"; the drawing goes on and fills the cache,
for the chart's URL and the group's next notification. When the workers already have a chart or two
queued each, or more than they can draw within the bound, a new chart is not queued at all (the same
answer, at once): in an alert storm the workers draw all they can, the notifications they draw for
carry charts, and the rest go out without waiting.

Charts are cached by the state of the alerts they show (ids, statuses, steps) in a small LRU bounded in
bytes (``charts.cache_bytes``). The same notification delivered to Slack and email is drawn once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ipaddress
import logging
import multiprocessing
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from alerts.charts import worker
from alerts.charts.signing import UrlSigner, load_secret
from alerts.model import Alert
from alerts.notify.channels.base import ChartImage, ChartSkipped
from alerts.presentation import alert_object
from alerts.storage.base import Store

if TYPE_CHECKING:
    from alerts.charts.data import ChartData
    from alerts.config.settings import ChartsSettings
    from alerts.rules.loader import Rule

__all__ = ["NOT_READY", "ChartImage", "ChartSkipped", "Charts", "may_have_chart"]

log = logging.getLogger(__name__)

NOT_READY = "chart not ready in time"
_URL_WAIT = 30.0
"""How long :meth:`Charts.for_alert` (a chart URL, the dashboard) waits for a drawing: a person or Slack
fetching an image waits longer than a notification should."""
_MAX_CACHED = 512
_QUEUED_PER_WORKER = 2
_FIRST_GUESS = 0.3
"""Seconds a chart (reading its series, drawing it) is expected to take before one was measured."""
_ERROR_LOG_INTERVAL = 60.0

Key = tuple[tuple[str, str, Any], ...]


def may_have_chart(alert: Mapping[str, Any]) -> bool:
    """Whether an alert object (SPEC §7) can have a chart, decided without reading or drawing anything:
    a rule's alert about a run, or an ``alert()`` call with a run that named a ``chart=`` metric."""
    return bool(alert.get("run")) and (alert.get("source") == "rule" or bool(alert.get("metric")))


def _loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class _Cache:
    """Least recently used charts (or "nothing to draw", stored as None), bounded in bytes and entries."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[Key, ChartImage | None] = OrderedDict()
        self._bytes = 0

    def get(self, key: Key) -> tuple[bool, ChartImage | None]:
        if key not in self._entries:
            return False, None
        self._entries.move_to_end(key)
        return True, self._entries[key]

    def put(self, key: Key, image: ChartImage | None) -> None:
        size = len(image.png) if image is not None else 0
        if size > self._max_bytes:
            return
        if key in self._entries:
            self._bytes -= _size(self._entries.pop(key))
        self._entries[key] = image
        self._bytes += size
        while self._bytes > self._max_bytes or len(self._entries) > _MAX_CACHED:
            _old, dropped = self._entries.popitem(last=False)
            self._bytes -= _size(dropped)


def _size(image: ChartImage | None) -> int:
    return len(image.png) if image is not None else 0


class Charts:
    """Charts for channels (:class:`~alerts.notify.channels.base.ChartSource`), chart URLs and the dashboard."""

    def __init__(self, settings: ChartsSettings, store: Store, *, rules: Callable[[], Sequence[Rule]],
                 public_url: str) -> None:
        self._settings = settings
        self.enabled = settings.enabled
        """False when ``charts.enabled`` is, or matplotlib is missing (found at :meth:`start`)."""
        self._store = store
        self._rules = rules
        self._public_url = public_url
        self.urls_reachable = not _loopback(public_url)
        self._signer: UrlSigner | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._cache = _Cache(int(settings.cache_bytes))
        self._drawing: dict[Key, asyncio.Task[ChartImage | None]] = {}
        self._viewers = asyncio.Semaphore(1)
        """Charts for a person or Slack (:meth:`for_alert`) are drawn one at a time: a page of undrawn
        thumbnails waits here, not in the workers' queue ahead of notifications."""
        self._chart_seconds = _FIRST_GUESS
        self._logged_error_at = -_ERROR_LOG_INTERVAL

    async def start(self) -> None:
        """Check that charts can be drawn and load the URL signing key (the store must be open)."""
        if not self.enabled:
            return
        if importlib.util.find_spec("matplotlib") is None:
            log.warning("charts are off: matplotlib is not installed (pip install matplotlib to draw them)")
            self.enabled = False
            return
        self._signer = UrlSigner(await load_secret(self._store), self._public_url)

    def warm(self) -> None:
        """Start the workers now, without waiting: their start (an interpreter importing matplotlib, a few
        seconds on a busy machine) would make the first alert's chart miss the bound."""
        if self.enabled:
            self._workers().submit(worker.ready)

    async def stop(self) -> None:
        """Stop drawing: cancel what waits, end the worker processes."""
        for task in list(self._drawing.values()):
            task.cancel()
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(_end_pool, pool)

    # -- what channels use ---------------------------------------------------------------------------

    async def for_notification(self, alerts: Sequence[Mapping[str, Any]]) -> ChartImage | ChartSkipped | None:
        """The chart of a notification's alerts, within ``charts.timeout``: the image, :class:`ChartSkipped`
        (``"chart not ready in time"``) past the bound, or None when there is nothing to draw (charts off,
        no alert that can have a chart, no stored points, a drawing that failed)."""
        chartable = [alert for alert in alerts if may_have_chart(alert)]
        if not self.enabled or not chartable:
            return None
        return await self._chart(chartable, wait=self._settings.timeout, queue_anyway=False)

    def chart_url(self, alert: Mapping[str, Any]) -> str | None:
        """The signed URL of ``alert``'s chart, or None when charts are off or it cannot have one."""
        return self.signed_url(str(alert["id"])) if may_have_chart(alert) else None

    def signed_url(self, alert_id: str) -> str | None:
        """``{public_url}/charts/{alert_id}.png?exp=...&sig=...``, valid for ``charts.url_expiry``."""
        if not self.enabled or self._signer is None:
            return None
        return self._signer.url(alert_id, expires=int(time.time() + self._settings.url_expiry))

    def url_valid(self, alert_id: str, exp: str | None, sig: str | None) -> bool:
        """Whether a chart URL's parts are ours and unexpired."""
        return self.enabled and self._signer is not None and self._signer.valid(alert_id, exp, sig)

    # -- what the chart URL and the dashboard use -----------------------------------------------------

    async def for_alert(self, alert: Alert) -> bytes | None:
        """The PNG of a stored alert in its current state (cached), or None: no chart, charts off. The
        caller has looked the alert up (and checked who may see it)."""
        if not self.enabled:
            return None
        runs = await self._store.get_runs_by_pk([alert.run_pk]) if alert.run_pk is not None else {}
        shown = alert_object(alert, runs.get(alert.run_pk) if alert.run_pk is not None else None, self._public_url)
        if not may_have_chart(shown):
            return None
        found = await self._chart([shown], wait=_URL_WAIT, queue_anyway=True)
        return found.png if isinstance(found, ChartImage) else None

    # -- drawing -------------------------------------------------------------------------------------

    async def _chart(self, alerts: list[Mapping[str, Any]], *, wait: float,
                     queue_anyway: bool) -> ChartImage | ChartSkipped | None:
        key: Key = tuple((str(alert["id"]), str(alert["status"]), alert.get("step")) for alert in alerts)
        known, image = self._cache.get(key)
        if known:
            return image
        try:
            async with asyncio.timeout(wait):
                task = self._drawing.get(key)
                if task is None and queue_anyway:
                    return await self._for_viewer(key, alerts)
                if task is None:
                    if self._backlogged(wait):
                        return ChartSkipped(NOT_READY)
                    task = self._start(key, alerts)
                # shield: past the bound the drawing goes on and fills the cache for the next reader.
                return await asyncio.shield(task)
        except TimeoutError:
            log.debug("chart of %d alert(s) not ready within %gs", len(alerts), wait)
            return ChartSkipped(NOT_READY)
        except Exception:  # logged by _drawn; a chart never fails a delivery
            return None

    async def _for_viewer(self, key: Key, alerts: list[Mapping[str, Any]]) -> ChartImage | None:
        async with self._viewers:
            known, image = self._cache.get(key)  # drawn while this waited its turn
            if known:
                return image
            return await asyncio.shield(self._drawing.get(key) or self._start(key, alerts))

    def _start(self, key: Key, alerts: list[Mapping[str, Any]]) -> asyncio.Task[ChartImage | None]:
        task = asyncio.create_task(self._make(key, alerts), name="chart")
        self._drawing[key] = task
        task.add_done_callback(lambda done: self._drawn(key, done))
        return task

    def _backlogged(self, wait: float) -> bool:
        """Whether a new chart would wait too long behind those under way (reading or drawing): past
        ``wait`` by the measured cost of a chart, or more than :data:`_QUEUED_PER_WORKER` deep. The depth
        keeps a storm moving: a notification waiting for its chart holds one of its channel's delivery
        slots, and a few such slots keep the workers busy while the rest go out at once."""
        under_way = len(self._drawing)
        if not under_way:
            return False
        ahead = under_way / self._settings.workers
        return under_way >= _QUEUED_PER_WORKER * self._settings.workers or (ahead + 1) * self._chart_seconds > wait

    async def _make(self, key: Key, alerts: list[Mapping[str, Any]]) -> ChartImage | None:
        from alerts.charts.data import chart_data  # the series' reader: rules and storage, loaded once used

        started = time.perf_counter()
        data = await chart_data(self._store, self._rules(), alerts)
        reading = time.perf_counter() - started
        image = None
        if data is not None:
            png, drawing = await self._draw(data)
            image = ChartImage(png, alt_text=_alt_text(data))
            # What a chart costs, without the time it waited for a worker: the backlog's unit.
            self._chart_seconds = 0.8 * self._chart_seconds + 0.2 * (reading + drawing)
        self._cache.put(key, image)
        return image

    async def _draw(self, data: ChartData) -> tuple[bytes, float]:
        pool = self._workers()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, worker.draw, data)
        except BrokenProcessPool:
            if self._pool is pool:  # a worker died (killed, out of memory): the next chart starts afresh
                self._pool = None
                await asyncio.to_thread(_end_pool, pool)
            raise

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self._settings.workers,
                                             mp_context=multiprocessing.get_context("spawn"), initializer=worker.start)
        return self._pool

    def _drawn(self, key: Key, task: asyncio.Task[ChartImage | None]) -> None:
        self._drawing.pop(key, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, ImportError):
            log.warning("charts are off: cannot draw them (%s: %s)", type(exc).__name__, exc)
            self.enabled = False
            return
        now = time.monotonic()
        if now - self._logged_error_at >= _ERROR_LOG_INTERVAL:  # a storm of failures is one line a minute
            self._logged_error_at = now
            log.warning("cannot draw a chart; the notification goes without it", exc_info=exc)


def _end_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now, even one in the middle of a drawing (the result is not wanted)."""
    workers = dict(getattr(pool, "_processes", None) or {})  # private, but the only handle on the processes
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers.values():
        with contextlib.suppress(Exception):
            process.terminate()
    for process in workers.values():
        with contextlib.suppress(Exception):
            process.join(timeout=5)


def _alt_text(data: ChartData) -> str:
    """What the chart shows, in words: the image's alt text and the uploaded file's title."""
    return f"Chart of {data.title}" + (f" ({data.subtitle})" if data.subtitle else "")
