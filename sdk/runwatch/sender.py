"""The background sender: one lazily started daemon thread per run (sentry-python transport style).

The caller's thread only appends tuples to ``queue`` (metrics, config, exit) or ``alerts`` and sets the
wake event when ``idle`` is true. Everything else happens here:

1. *drain* (under ``lock``): normalise rows, fold them into the summary, assign ``seq`` 1, 2, 3, ...,
   encode each record to JSON once. Runs of history rows go as one batch: one type check over all their
   values (plain finite numbers skip normalising), one summary fold, one encoder call;
2. *route*: into the in-memory buffer (bounded by ``max_queue_bytes``) or, while the service is
   unreachable, over the bound, or in offline mode, to the spool on disk, keeping order: once records
   reach the spool, newer ones follow them there until the spool is fully replayed;
3. *send*: the init request first and nothing else before it succeeded; then alerts ahead of metric
   batches; a heartbeat when nothing else went out for ``heartbeat_interval``. A record logged on an idle
   link goes out at once; records batch up only while a request is in flight (``linger`` adds a pause).

Nothing is ever dropped: transient failures spill to the spool and retry with capped backoff;
permanent refusals are copied to ``rejected.jsonl``; a finish that times out spills what is left.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate, islice, repeat
from operator import itemgetter, sub
from pathlib import Path
from typing import Any

from ._log import log_once
from .spool import Spool
from .summary import SummaryState
from .transport import Result, Transport
from .values import dumps, encode_history, encode_records, json_safe, normalize_row, plain_rows

__all__ = ["HISTORY", "CONFIG", "EXIT", "BARRIER", "PREEMPTING", "Sender"]

# Queue item tags (first element of each tuple the caller appends).
HISTORY = 0  # (HISTORY, step, timestamp, row)
CONFIG = 1  # (CONFIG, mapping)
EXIT = 2  # (EXIT, state, exit_code, reason, console_tail, timestamp)
BARRIER = 3  # (BARRIER, Barrier)
PREEMPTING = 4  # (PREEMPTING, timestamp): run.mark_preempting()

_TAG = itemgetter(0)
# Items encoded per batch: one encoder call is C code that holds the GIL throughout, so a backlog is
# taken in slices of about a millisecond each, between which the training thread gets its turn.
_DRAIN_BATCH = 4096
_RECORD_PREFIX = b'{"seq":'  # every run record is encoded with "seq" as its first key

_loads: Callable[[bytes], Any]
try:  # optional: validating replayed spool lines is ~3x faster with it
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads


class Barrier:
    """Set once every record queued before it is delivered (or, on abort, safely on disk)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.seq = -1
        self.complete = False  # False when it was released by an abort, with data left on disk


class Sender:
    """Owns the wire state of one run. Only the caller-facing attributes are touched by other threads:
    ``queue``, ``alerts``, ``idle``, ``wake()``, ``lock`` (with ``drain``) and ``abort()``."""

    def __init__(
        self,
        *,
        init_body: dict[str, Any],
        base_url: str,
        run_dir: Path,
        offline: bool,
        transport_factory: Callable[[], Transport],
        summary: SummaryState,
        start_time: float,
        max_queue_bytes: int,
        batch_max_records: int = 1000,
        batch_max_bytes: int = 1024 * 1024,
        heartbeat_interval: float = 10.0,
        summary_interval: float = 5.0,
        retry_max_backoff: float = 3.0,
        linger: float = 0.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_init: Callable[[dict[str, Any]], None] | None = None,
        system_sampler: Callable[[], dict[str, Any]] | None = None,
        system_interval: float = 15.0,
        current_step: Callable[[], int] | None = None,
        on_stop: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self.alerts: collections.deque[dict[str, Any]] = collections.deque()
        self.idle = False
        self.lock = threading.RLock()
        self._event = threading.Event()
        self._thread: threading.Thread | None = None

        self._init_body = init_body
        self._project = str(init_body["project"])
        self._run_id = str(init_body["id"])
        self._records_path = f"/api/v1/runs/{self._project}/{self._run_id}/records"
        self._alerts_path = f"/api/v1/runs/{self._project}/{self._run_id}/alerts"
        self._heartbeat_path = f"/api/v1/runs/{self._project}/{self._run_id}/heartbeat"
        header = dumps({"type": "init", "body": json_safe(init_body), "base_url": base_url})
        self.spool = Spool(run_dir, header)
        self.run_dir = run_dir
        self._local = offline  # offline mode, or the service refused the run for good
        self._transport_factory = transport_factory
        self._transport: Transport | None = None
        self._summary = summary
        self._start_time = start_time
        self._max_queue_bytes = max_queue_bytes
        self._batch_max_records = batch_max_records
        self._batch_max_bytes = batch_max_bytes
        self.heartbeat_interval = heartbeat_interval
        self._summary_interval = summary_interval
        self._retry_max_backoff = retry_max_backoff
        self._linger = linger
        self._clock = clock
        self._monotonic = monotonic
        self._on_init = on_init
        self._system_sampler = system_sampler
        self._system_interval = system_interval
        self._current_step = current_step or (lambda: 0)
        self._on_stop = on_stop
        self.stop_request: dict[str, Any] | None = None
        """What the service answered once someone asked the run to stop (told to ``on_stop`` once)."""

        self._seq = 0
        self._seq_base = 0
        # Encoded records drained and not yet routed, then those in memory waiting to be sent; both hold
        # consecutive seqs, so only the seq of the newest line in the buffer is kept.
        self._ready: list[bytes] = []
        self._buf: collections.deque[bytes] = collections.deque()
        self._buf_last_seq = 0
        self._buf_bytes = 0
        self._spooling = False
        self._init_acked = False
        self._init_sent_to_spool = False
        self._done_seq = 0
        self._barriers: list[Barrier] = []
        self._pending_barriers: list[Barrier] = []
        self._retry_at = 0.0
        self._backoff = 0.0
        self._last_contact = monotonic()
        self._last_summary = monotonic()
        self._next_system = monotonic() + system_interval
        self._aborting = False
        self._stopping = False
        self._stopped = threading.Event()
        self.exit_seen = False

    # -- caller side -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="runwatch-sender", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self.idle = False
        self._event.set()

    def barrier(self) -> Barrier:
        """Queue a barrier behind everything logged so far and wake the sender."""
        b = Barrier()
        self.queue.append((BARRIER, b))
        self.wake()
        return b

    def abort(self) -> None:
        """Stop sending: put everything not yet delivered in the spool, then release all barriers."""
        self._aborting = True
        self.wake()

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    def join(self, timeout: float) -> bool:
        if self._thread is None:
            return True
        return self._stopped.wait(timeout)

    @property
    def undelivered(self) -> int:
        """Records and alerts not yet acknowledged by the service (approximate, for messages)."""
        return max(0, self._seq - self._done_seq) + len(self.alerts)

    # -- thread ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                self._event.clear()
                self.idle = True
                if not self.queue and not self.alerts and not self._stopping and not self._aborting:
                    woke = self._event.wait(self._next_timeout())
                    if woke and self._linger > 0:
                        # Opt-in: a pause before sending lets a burst of log() calls land in one batch.
                        # Without it, batches still form on their own while a request is in flight.
                        time.sleep(self._linger)
                self.idle = False
                try:
                    self._step()
                except Exception as exc:  # the sender must survive anything
                    log_once("sender-crash", "runwatch: internal sender error: %r", exc, level=logging.ERROR)
                    time.sleep(0.05)
                if self._stopping and not self.queue:
                    break
        finally:
            self._close()
            self.idle = False
            self._stopped.set()

    def _close(self) -> None:
        if self._transport is not None:
            try:
                self._transport.close()
            except Exception:
                pass
        self.spool.close()

    def _next_timeout(self) -> float:
        now = self._monotonic()
        deadlines = [now + 1.0]
        if self._init_acked and not self._local:
            deadlines.append(self._last_contact + self.heartbeat_interval)
        if self._retry_at > now or self._spooling or not self._init_acked:
            deadlines.append(max(self._retry_at, now + 0.01))
        if self._summary.dirty:
            deadlines.append(self._last_summary + self._summary_interval)
        if self._system_sampler is not None:
            deadlines.append(self._next_system)
        return max(0.001, min(deadlines) - now)

    def _step(self) -> None:
        self._maybe_sample_system()
        with self.lock:
            self.drain()
        if self._aborting:
            self._spill_everything()
            self._release_barriers(force=True)
            self._stopping = True
            return
        if not self._local:
            self._send_round()
        self._settle()
        if self._local:
            self._done_seq = self._seq
        self._release_barriers()

    def _settle(self) -> None:
        """Route what was drained; while on disk only (offline, or an outage in backoff), alerts go to
        the spool first so they stay ahead of the metrics drained with them."""
        if self._local or (self._spooling and self._monotonic() < self._retry_at):
            if self._local and not self._init_sent_to_spool:
                self._to_spool([])  # an offline run's spool always starts with the init line
            self._write_alerts_to_spool()
        self._route()

    # -- drain (also called from the caller thread by summary reads, under ``lock``) ---------------
    def drain(self) -> None:
        """Turn queued caller items into encoded records; must hold ``lock``."""
        q = self.queue
        popleft = q.popleft
        summary = self._summary
        while q:
            # Only this thread (holding the lock) pops; the caller only appends behind what we take.
            items = [popleft() for _ in range(min(len(q), _DRAIN_BATCH))]
            if not any(map(_TAG, items)):  # all HISTORY (tag 0): the common case, one batch
                self._drain_history(items)
            else:
                self._drain_mixed(items)
        if summary.dirty and self._monotonic() - self._last_summary >= self._summary_interval:
            self._emit_summary()

    def _drain_mixed(self, items: list[tuple[Any, ...]]) -> None:
        run: list[tuple[Any, ...]] = []
        for item in items:
            if item[0] == HISTORY:
                run.append(item)
                continue
            if run:
                self._drain_history(run)
                run = []
            self._drain_other(item)
        if run:
            self._drain_history(run)

    def _drain_history(self, items: list[tuple[Any, ...]]) -> None:
        """A run of consecutive history items -> records, in order, with one encoder call."""
        _, steps, stamps, rows = zip(*items, strict=True)
        plain = plain_rows(rows)
        datas = rows if plain else [row if plain_rows((row,)) else _normalize(row) for row in rows]
        self._summary.observe_rows(datas, plain=plain)
        first = self._seq + 1
        seqs = range(first, first + len(items))
        start = self._start_time
        lines = None
        if plain:
            lines = encode_history(seqs, steps, stamps, list(map(sub, stamps, repeat(start))), rows)
        if lines is None:
            recs = [
                {"seq": seq, "type": "history", "step": step, "timestamp": ts, "runtime": ts - start, "data": data}
                for seq, step, ts, data in zip(seqs, steps, stamps, datas, strict=True)
            ]
            try:
                lines = encode_records(recs)
            except (TypeError, ValueError):
                lines = [_encode_one(rec) for rec in recs]
        self._seq = seqs[-1]
        self._ready.extend(lines)

    def _drain_other(self, item: tuple[Any, ...]) -> None:
        tag = item[0]
        rec: dict[str, Any]
        if tag == CONFIG:
            rec = {"seq": 0, "type": "config", "config": json_safe(item[1])}
        elif tag == EXIT:
            _, state, exit_code, reason, tail, ts = item
            self._emit_summary()
            rec = {
                "seq": 0,
                "type": "exit",
                "state": state,
                "exit_code": exit_code,
                "reason": reason,
                "console_tail": tail,
                "timestamp": ts,
            }
            self.exit_seen = True
        elif tag == PREEMPTING:
            rec = {"seq": 0, "type": "preempting", "timestamp": item[1]}
        elif tag == BARRIER:
            barrier: Barrier = item[1]
            barrier.seq = self._seq
            self._pending_barriers.append(barrier)
            return
        else:  # pragma: no cover - programming error
            return
        self._emit(rec)

    def _emit(self, rec: dict[str, Any]) -> None:
        self._seq += 1
        rec["seq"] = self._seq
        self._ready.append(_encode_one(rec))

    def _emit_summary(self) -> None:
        self._last_summary = self._monotonic()
        self._summary.dirty = False
        self._emit({"seq": 0, "type": "summary", "summary": json_safe(self._summary.values)})

    # -- routing ---------------------------------------------------------------------------------
    def _route(self) -> None:
        with self.lock:  # summary reads drain from the caller's thread
            ready, self._ready = self._ready, []
            ready_last_seq = self._seq
            if self._pending_barriers:
                self._barriers.extend(self._pending_barriers)
                self._pending_barriers = []
        if not ready:
            return
        if self._local or self._spooling:
            self._to_spool(ready)
            return
        self._buf.extend(ready)
        self._buf_last_seq = ready_last_seq
        self._buf_bytes += sum(map(len, ready))
        if self._buf_bytes > self._max_queue_bytes:
            log_once(
                "overflow",
                "runwatch: more than %d bytes queued in memory; spilling to %s",
                self._max_queue_bytes,
                self.spool.path,
            )
            self._enter_spooling()

    def _to_spool(self, lines: list[bytes]) -> None:
        try:
            # One write of the lines joined: the same bytes as one write per line, without a Python call
            # per record.
            self.spool.append([b"\n".join(lines)] if len(lines) > 1 else lines)
        except OSError as exc:
            # Nowhere safe to put it: keep it in memory rather than lose it.
            log_once("disk", "runwatch: cannot write the spool %s: %s", self.spool.path, exc, level=logging.ERROR)
            return
        self._init_sent_to_spool = True

    def _enter_spooling(self) -> None:
        """Move the memory buffer to the spool; records keep their order from here on."""
        lines = list(self._buf)
        self._buf.clear()
        self._buf_bytes = 0
        if lines or not self._spooling:
            self._to_spool(lines)
        self._spooling = True

    def _write_alerts_to_spool(self) -> None:
        if not self.alerts:
            return
        lines = []
        while self.alerts:
            lines.append(dumps({"type": "alert", "alert": self.alerts.popleft()}))
        self._to_spool(lines)

    def _spill_everything(self) -> None:
        with self.lock:
            self.drain()
        self._write_alerts_to_spool()  # alerts stay ahead of metrics, on disk too
        if not self._local:
            self._enter_spooling()
        self._route()

    # -- sending ---------------------------------------------------------------------------------
    def _post(self, path: str, body: bytes | None) -> Result:
        if self._transport is None:
            self._transport = self._transport_factory()
        res = self._transport.request("POST", path, body)
        if res.outcome == "ok":
            self._last_contact = self._monotonic()
            self._backoff = 0.0
            self._retry_at = 0.0
            # Records and heartbeat answers carry a stop request (a rule's stop_run, `alerts runs stop`).
            if isinstance(res.data, dict) and isinstance(res.data.get("stop"), dict) and self.stop_request is None:
                self.stop_request = res.data["stop"]
                if self._on_stop is not None:
                    self._on_stop(self.stop_request)
        elif res.outcome == "transient":
            self._backoff = min(self._retry_max_backoff, max(0.1, self._backoff * 2))
            self._retry_at = self._monotonic() + self._backoff * random.uniform(0.8, 1.0)
            log_once(
                "transient",
                "runwatch: service unreachable (%s); keeping records in %s and retrying",
                res.message,
                self.run_dir,
            )
        return res

    def _send_round(self) -> None:
        """Send until there is nothing left, the link fails, or the caller is waiting on abort."""
        for _ in range(1000):
            if self._aborting or self._monotonic() < self._retry_at:
                return
            if not self._init_acked:
                if not self._send_init():
                    return
            with self.lock:
                self.drain()
            progressed = self._send_alerts()
            self._route()
            if self._aborting or self._monotonic() < self._retry_at:
                return
            if self._spooling:
                progressed = self._replay_one() or progressed
            elif self._buf:
                progressed = self._send_buffer_batch() or progressed
            self._release_barriers()
            if not progressed:
                break
        if self._init_acked and self._monotonic() - self._last_contact >= self.heartbeat_interval:
            res = self._post(self._heartbeat_path, None)
            if res.outcome == "ok" and isinstance(res.data, dict):
                self._learn_interval(res.data)

    def _learn_interval(self, data: dict[str, Any]) -> None:
        interval = data.get("heartbeat_interval")
        if isinstance(interval, (int, float)) and interval > 0:
            self.heartbeat_interval = float(interval)

    def _send_init(self) -> bool:
        res = self._post("/api/v1/runs", dumps(json_safe(self._init_body)))
        if res.outcome == "ok":
            self._init_acked = True
            data = res.data if isinstance(res.data, dict) else {}
            self._learn_interval(data)
            last_seq = data.get("last_seq")
            if data.get("resumed") and isinstance(last_seq, int) and last_seq > 0:
                self._seq_base = last_seq
                if self._init_sent_to_spool:
                    self._to_spool([dumps({"type": "seq_base", "value": last_seq})])
                else:
                    self.spool.header += b"\n" + dumps({"type": "seq_base", "value": last_seq})
            if self._on_init is not None:
                try:
                    self._on_init(data)
                except Exception:
                    pass
            return True
        if res.outcome == "transient":
            if not self._spooling:
                self._enter_spooling()
            self._write_alerts_to_spool()
            return False
        # Bad key, wrong project, invalid body: this run cannot go online. Keep it all on disk.
        log_once(
            "init-refused",
            "runwatch: the service refused run %s/%s (%s); keeping everything in %s - fix the problem "
            "(e.g. the API key) and upload it with `runwatch sync %s`",
            self._project,
            self._run_id,
            res.message,
            self.run_dir,
            self.run_dir,
            level=logging.ERROR,
        )
        self._local = True
        self._enter_spooling()
        self._write_alerts_to_spool()
        self._done_seq = self._seq
        return False

    def _send_alerts(self) -> bool:
        if not self.alerts:
            return False
        batch: list[dict[str, Any]] = []
        while self.alerts and len(batch) < 100:
            batch.append(self.alerts.popleft())
        res = self._post(self._alerts_path, dumps({"alerts": batch}))
        if res.outcome == "transient":
            self.alerts.extendleft(reversed(batch))
            self._enter_spooling()
            self._write_alerts_to_spool()
            return False
        if res.outcome == "permanent":
            self._reject([dumps({"type": "alert", "alert": a}) for a in batch], res)
        return True

    def _records_body(self, lines: list[bytes]) -> bytes:
        if self._seq_base:
            recs = []
            for line in lines:
                rec = json.loads(line)
                rec["seq"] = int(rec["seq"]) + self._seq_base
                recs.append(dumps(rec))
            lines = recs
        return b'{"records":[' + b",".join(lines) + b"]}"

    def _send_buffer_batch(self) -> bool:
        buf = self._buf
        first_seq = self._buf_last_seq - len(buf) + 1
        head = list(islice(buf, self._batch_max_records))
        ends = list(accumulate(map(len, head)))  # bytes up to and including each record
        count = max(1, bisect_right(ends, self._batch_max_bytes))  # at least one, however large
        batch = head[:count]
        size = ends[count - 1]
        res = self._post(self._records_path, self._records_body(batch))
        if res.outcome == "transient":
            self._enter_spooling()
            return False
        if res.outcome == "permanent" and res.status == 413 and len(batch) > 1:
            self._batch_max_records = max(1, len(batch) // 2)
            return True
        popleft = buf.popleft
        for _ in batch:
            popleft()
        self._buf_bytes -= size
        if res.outcome == "permanent":
            self._reject(batch, res)
        self._done_seq = max(self._done_seq, first_seq + count - 1)
        return True

    def _replay_one(self) -> bool:
        """Send the next group of spool lines (records together, alerts together)."""
        lines = self.spool.read(self._batch_max_records, self._batch_max_bytes)
        if not lines:
            if not self.spool.has_unread():
                self.spool.clear()
                self._init_sent_to_spool = False
                self._spooling = False
                return True
            return False
        group: list[bytes] = []
        group_kind = None
        end = self.spool.read_offset
        max_seq = 0
        for offset, line in lines:
            if line.startswith(_RECORD_PREFIX) and group_kind != "alert":
                # A run record: checked below, with the whole group in one parse.
                group_kind = "record"
                group.append(line)
                end = offset
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                end = offset
                continue
            kind = obj.get("type")
            if kind in ("init", "seq_base"):
                if group:
                    break
                end = offset
                continue
            kind = "alert" if kind == "alert" else "record"
            if group_kind is not None and kind != group_kind:
                break
            group_kind = kind
            group.append(line if kind == "record" else dumps(obj["alert"]))
            if kind == "record":
                max_seq = max(max_seq, int(obj.get("seq", 0)))
            end = offset
        if not group:
            self.spool.read_offset = end
            return True
        if group_kind == "record":
            group, max_seq = _valid_records(group)
            if not group:
                self.spool.read_offset = end
                return True
            res = self._post(self._records_path, self._records_body(group))
        else:
            res = self._post(self._alerts_path, b'{"alerts":[' + b",".join(group) + b"]}")
        if res.outcome == "transient":
            return False
        if res.outcome == "permanent":
            if res.status == 413 and len(group) > 1:
                self._batch_max_records = max(1, len(group) // 2)
                return True
            self._reject(group, res)
        self.spool.read_offset = end
        self._done_seq = max(self._done_seq, max_seq)
        return True

    def _reject(self, lines: list[bytes], res: Result) -> None:
        try:
            path = self.spool.reject(lines)
        except OSError as exc:
            log_once("disk", "runwatch: cannot write %s: %s", self.run_dir, exc, level=logging.ERROR)
            return
        log_once(
            f"rejected-{res.status}",
            "runwatch: the service refused data for run %s/%s (%s); kept in %s",
            self._project,
            self._run_id,
            res.message,
            path,
            level=logging.ERROR,
        )

    # -- barriers and extras ---------------------------------------------------------------------
    def _delivered(self, seq: int) -> bool:
        if self._ready or self.alerts:
            return False
        if self._local:
            return True
        return self._init_acked and not self._spooling and not self._buf and self._done_seq >= seq

    def _release_barriers(self, force: bool = False) -> None:
        if not self._barriers:
            return
        keep = []
        for b in self._barriers:
            if self._delivered(b.seq):
                b.complete = True
                b.event.set()
            elif force:
                b.complete = False
                b.event.set()
            else:
                keep.append(b)
        self._barriers = keep

    def _maybe_sample_system(self) -> None:
        if self._system_sampler is None or self._monotonic() < self._next_system or self.exit_seen:
            return
        self._next_system = self._monotonic() + self._system_interval
        try:
            data = self._system_sampler()
        except Exception as exc:
            log_once("system", "runwatch: system metrics failed: %r", exc)
            return
        if data:
            # Its own history record at the current step: the service merges points by (key, step),
            # so the user's pending row for this step is not disturbed.
            self.queue.append((HISTORY, self._current_step(), self._clock(), data))


def _normalize(row: dict[str, Any]) -> dict[str, Any]:
    try:
        return normalize_row(row)
    except Exception as exc:
        log_once("encode", "runwatch: could not encode a logged row: %r", exc)
        return {str(k): json_safe(v) for k, v in row.items()}


def _encode_one(rec: dict[str, Any]) -> bytes:
    try:
        return dumps(rec)
    except (TypeError, ValueError) as exc:
        log_once("encode", "runwatch: could not encode a record: %r", exc)
        return dumps(json_safe(rec))


def _valid_records(lines: list[bytes]) -> tuple[list[bytes], int]:
    """Spooled record lines that parse as JSON objects (one parse for the lot; a corrupt line, e.g. a torn
    line a later process appended to, is skipped as before), and their largest ``seq``."""
    try:
        recs = _loads(b"[" + b",".join(lines) + b"]")
        if len(recs) == len(lines):
            return lines, max(int(rec.get("seq", 0)) for rec in recs)
    except (ValueError, TypeError, AttributeError):
        pass
    good: list[bytes] = []
    max_seq = 0
    for line in lines:
        try:
            rec = json.loads(line)
            seq = int(rec.get("seq", 0))
        except (ValueError, TypeError, AttributeError):
            continue
        good.append(line)
        max_seq = max(max_seq, seq)
    return good, max_seq
