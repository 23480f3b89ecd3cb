"""The run's file uploader: one lazily started daemon thread per run for ``runwatch.files``.

The caller's thread only hands over *items* (paths and their ``stat``); here they are hashed, the
contents the service lacks are uploaded as blobs (``POST .../blobs/missing``, ``PUT .../blobs/{sha256}``)
and then named: a run file (``PUT .../files/{path}``), an artifact version (``POST .../artifacts``) or
the use of one (``POST .../artifacts/used``). An unreachable service is retried with capped backoff;
what is not done when the run finishes (bounded by its ``finish_timeout``) is listed in
``<run dir>/files-pending.json`` for ``runwatch sync``. Offline runs copy the contents into
``<run dir>/blobs/<sha256>`` instead and list everything there.

Items, as the pending manifest stores them::

    {"type": "file", "name": "model.pt", "kind": "file"|"code", "source": "/abs/path", "sha256": ..., "size": ...}
    {"type": "artifact", "name", "artifact_type", "description", "metadata", "aliases", "use": false,
     "entries": [{"path", "source", "ref", "sha256", "size"}]}
    {"type": "use", "project", "name", "version", "aliases"}
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._log import log_once
from .artifacts import Artifact, Remote, hash_file
from .transport import Result, classify

__all__ = ["BLOBS_DIR", "PENDING_NAME", "SYNCED_NAME", "Uploader", "Wire", "upload_pending"]

PENDING_NAME = "files-pending.json"
SYNCED_NAME = "files-synced.json"
BLOBS_DIR = "blobs"
LIVE_POLL_INTERVAL = 2.0
"""Seconds between looks at the files saved with ``policy="live"``."""


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Wire:
    """HTTP for uploads, every outcome classified as the sender's (``runwatch.transport``): ok,
    transient (retry later) or permanent. A run the service does not know yet (its init is still on
    the way) counts as transient."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float) -> None:
        import httpx

        headers = {"User-Agent": "runwatch-python/0.1.0"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._httpx = httpx
        self.client = httpx.Client(base_url=base_url, headers=headers,
                                   timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)))

    def call(self, method: str, path: str, *, json_body: Any = None, content: Any = None,
             params: dict[str, str] | None = None) -> Result:
        headers = {"Content-Type": "application/octet-stream"} if content is not None else None
        try:
            resp = self.client.request(method, path, json=json_body, content=content, params=params, headers=headers)
        except self._httpx.TimeoutException as exc:
            return Result("transient", None, None, f"timeout: {type(exc).__name__}")
        except self._httpx.HTTPError as exc:
            return Result("transient", None, None, f"connection error: {type(exc).__name__}: {exc}")
        outcome = classify(resp.status_code)
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = None
        if outcome == "ok":
            return Result("ok", resp.status_code, data)
        message = f"HTTP {resp.status_code}: {_detail(data, resp.text)}"
        if resp.status_code == 404 and "unknown run" in message:
            outcome = "transient"
        return Result(outcome, resp.status_code, data, message)

    def close(self) -> None:
        self.client.close()


def _detail(data: Any, text: str) -> str:
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)[:500]
    return str(detail)[:500] if detail is not None else text[:300]


class _Gone(Exception):
    """A file to upload no longer exists or cannot be read."""


@dataclasses.dataclass
class _Context:
    """What executing an item needs: where to send it and where contents may already be."""

    wire: Wire | None
    project: str
    run_id: str
    run_dir: Path
    hashes: dict[tuple[str, int, int], str] = dataclasses.field(default_factory=dict)
    abort: Callable[[], bool] = lambda: False


def _resolve(ctx: _Context, holder: dict[str, Any]) -> tuple[str, int, str]:
    """(sha256, size, file to read) of a file item or artifact entry: its copy in the run's blobs
    folder when there is one, else its source (hashed, unless unchanged since the last time)."""
    sha = holder.get("sha256")
    if sha:
        copy = ctx.run_dir / BLOBS_DIR / str(sha)
        if copy.is_file():
            return str(sha), copy.stat().st_size, str(copy)
    source = holder.get("source")
    try:
        stat = os.stat(source) if source else None
    except OSError:
        stat = None
    if stat is None or not os.path.isfile(str(source)):
        raise _Gone(f"{source} does not exist any more")
    key = (str(source), stat.st_size, stat.st_mtime_ns)
    if key not in ctx.hashes:
        try:
            ctx.hashes[key] = hash_file(str(source), ctx.abort)[0]
        except OSError as exc:
            raise _Gone(f"cannot read {source}: {exc}") from None
    return ctx.hashes[key], stat.st_size, str(source)


def _upload_blobs(ctx: _Context, blobs: list[tuple[str, int, str, str]]) -> Result | None:
    """Upload the ``(sha256, size, file, label)`` the project lacks; None when all are there."""
    assert ctx.wire is not None
    project = quote(ctx.project, safe="")
    res = ctx.wire.call("POST", f"/api/v1/projects/{project}/blobs/missing",
                        json_body={"sha256": sorted({sha for sha, *_ in blobs})})
    if res.outcome != "ok":
        return res
    missing = set(res.data.get("missing") or []) if isinstance(res.data, dict) else set()
    limit = res.data.get("max_file_bytes") if isinstance(res.data, dict) else None
    for sha, size, path, label in blobs:
        if sha not in missing:
            continue
        if isinstance(limit, int) and size > limit:
            return Result("permanent", 413, None, f"file {label!r} is {human_size(size)}, over the service's limit "
                                                  f"files.max_file_bytes = {human_size(limit)}")
        try:
            with open(path, "rb") as f:
                res = ctx.wire.call("PUT", f"/api/v1/projects/{project}/blobs/{sha}", content=f, params={"path": label})
        except OSError as exc:
            raise _Gone(f"cannot read {path}: {exc}") from None
        if res.status == 422:  # the file changed between hashing and sending: hash it again
            ctx.hashes = {k: v for k, v in ctx.hashes.items() if k[0] != path}
            return Result("transient", 422, None, f"{label} changed while it was uploaded")
        if res.outcome != "ok":
            return res
        missing.discard(sha)
    return None


def execute(ctx: _Context, item: dict[str, Any]) -> Result:
    """Send one item to the service (blobs first). Raises :class:`_Gone` for a file that disappeared."""
    assert ctx.wire is not None
    run = f"/api/v1/runs/{quote(ctx.project, safe='')}/{quote(ctx.run_id, safe='')}"
    if item["type"] == "file":
        sha, size, path = _resolve(ctx, item)
        item.update(sha256=sha, size=size)
        if (res := _upload_blobs(ctx, [(sha, size, path, item["name"])])) is not None:
            return res
        return ctx.wire.call("PUT", f"{run}/files/{quote(item['name'])}",
                             json_body={"sha256": sha, "kind": item.get("kind", "file")})
    if item["type"] == "artifact":
        entries: list[dict[str, Any]] = []
        blobs = []
        for entry in item["entries"]:
            if entry.get("ref") is not None:
                entries.append({"path": entry["path"], "ref": entry["ref"], "size": entry.get("size")})
                continue
            now = _signature(entry["source"]) if entry.get("stat") and entry.get("source") else None
            if now is not None and now != tuple(entry["stat"]):
                log_once(f"artifact-changed-{item['name']}", "runwatch: %s changed after it was added to artifact %s; "
                         "its contents as they are now are stored", entry["source"], item["name"])
            sha, size, path = _resolve(ctx, entry)
            blobs.append((sha, size, path, f"{item['name']}/{entry['path']}"))
            entries.append({"path": entry["path"], "sha256": sha, "size": size})
        if (res := _upload_blobs(ctx, blobs)) is not None:
            return res
        res = ctx.wire.call("POST", f"/api/v1/projects/{quote(ctx.project, safe='')}/artifacts", json_body={
            "name": item["name"], "type": item["artifact_type"], "description": item.get("description"),
            "metadata": item.get("metadata") or {}, "aliases": item.get("aliases") or [], "entries": entries,
            "run_id": ctx.run_id, "use": bool(item.get("use"))})
        if res.status == 409 and isinstance(res.data, dict) and res.data.get("missing"):
            return Result("transient", 409, None, res.message)  # contents went missing meanwhile: upload again
        return res
    if item["type"] == "use":
        return ctx.wire.call("POST", f"{run}/artifacts/used", json_body={
            "project": item["project"], "name": item["name"], "version": item["version"],
            "aliases": item.get("aliases") or []})
    return Result("permanent", None, None, f"unknown item type {item.get('type')!r}")


def stage(ctx: _Context, item: dict[str, Any]) -> None:
    """Offline: copy the item's contents into ``<run dir>/blobs/<sha256>`` (hashing while copying)."""
    holders = [item] if item["type"] == "file" else [e for e in item.get("entries", []) if e.get("ref") is None]
    folder = ctx.run_dir / BLOBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for holder in holders:
        if holder.get("sha256") and (folder / str(holder["sha256"])).is_file():
            continue
        source = str(holder.get("source") or "")
        import hashlib

        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".copy-")
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                while piece := src.read(1024 * 1024):
                    if ctx.abort():
                        raise InterruptedError("staging was interrupted")
                    digest.update(piece)
                    out.write(piece)
                    size += len(piece)
            os.replace(tmp, folder / digest.hexdigest())
        except OSError as exc:
            raise _Gone(f"cannot copy {source}: {exc}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        holder.update(sha256=digest.hexdigest(), size=size)


def _label(item: dict[str, Any]) -> str:
    if item["type"] == "file":
        return f"file {item['name']!r}"
    if item["type"] == "artifact":
        return f"artifact {item['name']!r}"
    return f"the use of artifact {item.get('project')}/{item.get('name')}:{item.get('version')}"


# -- the pending manifest -------------------------------------------------------------------------
def read_pending(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / PENDING_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("items"), list) else None


def write_pending(run_dir: Path, header: dict[str, Any], items: list[dict[str, Any]]) -> Path:
    """Atomically (re)write ``files-pending.json``; with no items it is removed."""
    path = run_dir / PENDING_NAME
    if not items:
        path.unlink(missing_ok=True)
        return path
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**header, "version": 1, "items": items}, indent=1), "utf-8")
    os.replace(tmp, path)
    return path


@dataclasses.dataclass
class _Job:
    item: dict[str, Any]
    artifact: Artifact | None = None


@dataclasses.dataclass
class _Tracked:
    """A file saved with policy ``live`` or ``end``."""

    source: str
    kind: str
    policy: str
    uploaded: tuple[int, int] | None = None
    """(size, mtime_ns) of the contents last uploaded (or staged)."""


class Uploader:
    """Uploads (or, offline, stages) the items of one run on its own daemon thread."""

    def __init__(self, *, project: str, run_id: str, run_dir: Path, base_url: str, api_key: str | None,
                 timeout: float, retry_max_backoff: float, offline: bool) -> None:
        self.pid = os.getpid()
        self.project, self.run_id, self.run_dir = project, run_id, run_dir
        self.base_url, self.api_key, self.timeout = base_url, api_key, timeout
        self.offline = offline
        self._retry_max_backoff = max(0.2, retry_max_backoff)
        # Built here, on the caller's thread (see Run.__init__: a fork must not cut httpx's setup in half).
        wire = None if offline else Wire(base_url, api_key, timeout)
        self._ctx = _Context(wire, project, run_id, run_dir, abort=lambda: self._abort)
        self._cond = threading.Condition()
        self._queue: collections.deque[_Job] = collections.deque()
        self._busy: _Job | None = None
        self._tracked: dict[str, _Tracked] = {}
        self._staged: list[dict[str, Any]] = []
        self._retry_at = 0.0
        self._stopping = False
        self._abort = False
        self._thread: threading.Thread | None = None
        self._dirty = False
        previous = read_pending(run_dir)
        self._previous: list[dict[str, Any]] = list(previous["items"]) if previous else []
        self.remote: Remote | None = None
        """Blocking reads on the caller's thread (``use_artifact``, downloads), made on first use; it outlives
        the run, as its artifacts may be downloaded after ``finish``."""

    # -- caller side -----------------------------------------------------------------------------
    def submit(self, item: dict[str, Any], artifact: Artifact | None = None) -> None:
        with self._cond:
            if item["type"] == "file":
                for job in self._queue:
                    if job is not self._busy and job.item["type"] == "file" and job.item["name"] == item["name"]:
                        job.item = item  # a newer save of the same name replaces the one still waiting
                        return
            self._queue.append(_Job(item, artifact))
            self._cond.notify_all()
        self._start()

    def track(self, name: str, source: str, kind: str, policy: str) -> None:
        with self._cond:
            self._tracked[name] = _Tracked(source, kind, policy)
            self._cond.notify_all()
        self._start()

    def caller_remote(self) -> Remote:
        if self.remote is None:
            self.remote = Remote.connect(self.base_url, self.api_key, self.timeout)
        return self.remote

    def finish(self, timeout: float) -> bool:
        """Queue the last versions of ``live``/``end`` files, wait up to ``timeout`` s for everything,
        then stop; what is left goes to the pending manifest. True if nothing is left."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            for name, tracked in self._tracked.items():
                signature = _signature(tracked.source)
                if signature is None:
                    log_once(f"files-missing-{name}", "runwatch: %s was saved for run %s/%s but does not exist at "
                             "finish; nothing was uploaded for it", tracked.source, self.project, self.run_id)
                elif signature != tracked.uploaded:
                    self._queue.append(_Job(_file_item(name, tracked.source, tracked.kind)))
            self._cond.notify_all()
        self._start()
        with self._cond:
            while (self._queue or self._busy is not None) and self._thread_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            left = list(self._queue)
            self._stopping = True
            self._abort = bool(left)
            self._cond.notify_all()
            staged = list(self._staged)
        items = self._previous + staged + [job.item for job in left]
        path = self.run_dir / PENDING_NAME
        if items or path.exists():
            try:
                path = write_pending(self.run_dir, self._header(), items)
            except OSError as exc:
                log_once("files-pending-disk", "runwatch: cannot write %s: %s", path, exc, level=logging.ERROR)
        for job in left:
            if job.artifact is not None:
                job.artifact._failed(f"artifact {job.item['name']} was not stored before run {self.project}/"
                                     f"{self.run_id} finished; it is listed in {path}: upload it with "
                                     f"`runwatch sync {self.run_dir}`")
        if left and not self.offline:
            _say(f"runwatch: run {self.project}/{self.run_id}: {len(left)} file/artifact uploads were not done "
                 f"before the timeout; they are listed in {path} - upload them with `runwatch sync {self.run_dir}`")
        return not left

    # -- thread ----------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._loop, name="runwatch-files", daemon=True)
            self._thread.start()

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        backoff = 0.0
        next_poll = time.monotonic() + LIVE_POLL_INTERVAL
        try:
            while True:
                with self._cond:
                    job = None
                    while not self._stopping:
                        now = time.monotonic()
                        if self._queue and now >= self._retry_at:
                            job = self._queue[0]
                            break
                        if self._dirty and not self._queue:
                            break
                        waits = [next_poll - now] if self._polls() else []
                        if self._queue:
                            waits.append(self._retry_at - now)
                        if waits and min(waits) <= 0:
                            break
                        self._cond.wait(min(waits) if waits else None)
                    if self._stopping:
                        if self._abort or not self._queue:
                            return
                        job = self._queue[0]
                    self._busy = job
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + LIVE_POLL_INTERVAL
                    self._poll_live()
                if job is None:
                    self._flush_staged()
                    continue
                outcome = self._run(job)
                with self._cond:
                    self._busy = None
                    if outcome == "transient":
                        backoff = min(self._retry_max_backoff, max(0.2, backoff * 2))
                        self._retry_at = time.monotonic() + backoff * random.uniform(0.8, 1.0)
                    else:
                        backoff = 0.0
                        self._retry_at = 0.0
                        if self._queue and self._queue[0] is job:
                            self._queue.popleft()
                    self._cond.notify_all()
        except Exception as exc:  # the uploader must never take the process down
            log_once("files-crash", "runwatch: internal file uploader error: %r", exc, level=logging.ERROR)
        finally:
            with self._cond:
                self._busy = None
                self._cond.notify_all()
            if self._ctx.wire is not None:
                self._ctx.wire.close()

    def _polls(self) -> bool:
        return not self.offline and any(t.policy == "live" for t in self._tracked.values())

    def _poll_live(self) -> None:
        if not self._polls():
            return
        with self._cond:
            queued = {job.item["name"] for job in self._queue if job.item["type"] == "file"}
            for name, tracked in self._tracked.items():
                if tracked.policy != "live" or name in queued:
                    continue
                signature = _signature(tracked.source)
                if signature is not None and signature != tracked.uploaded:
                    self._queue.append(_Job(_file_item(name, tracked.source, tracked.kind)))
            self._cond.notify_all()

    def _run(self, job: _Job) -> str:
        item = job.item
        tracked = self._tracked.get(item["name"]) if item["type"] == "file" else None
        before = _signature(item["source"]) if item["type"] == "file" else None
        try:
            if self.offline:
                stage(self._ctx, item)
                res = Result("ok")
            else:
                res = execute(self._ctx, item)
        except InterruptedError:
            return "transient"
        except _Gone as exc:
            res = Result("permanent", None, None, str(exc))
        if res.outcome == "transient":
            log_once("files-transient", "runwatch: cannot upload files of run %s/%s yet (%s); retrying", self.project,
                     self.run_id, res.message)
            return "transient"
        if res.outcome == "ok":
            if tracked is not None and tracked.source == item["source"]:
                tracked.uploaded = before
            if self.offline:
                with self._cond:
                    self._staged = [i for i in self._staged if not (item["type"] == "file" and i["type"] == "file"
                                                                    and i["name"] == item["name"])]
                    self._staged.append(item)
                    self._dirty = True
            if job.artifact is not None:
                if self.offline:
                    from .artifacts import manifest_digest

                    job.artifact._digest = manifest_digest(
                        (e["path"], e.get("sha256"), e.get("ref")) for e in item["entries"])
                    job.artifact._failed(f"artifact {item['name']} belongs to offline run {self.run_id}; it gets "
                                         f"its version when `runwatch sync {self.run_dir}` uploads it")
                elif isinstance(res.data, dict):
                    job.artifact._committed(res.data)
            return "ok"
        log_once(f"files-refused-{item['type']}-{item.get('name')}",
                 "runwatch: the service refused %s of run %s/%s: %s", _label(item), self.project, self.run_id,
                 res.message, level=logging.ERROR)
        if job.artifact is not None:
            job.artifact._failed(f"the service refused {_label(item)}: {res.message}")
        return "permanent"

    def _flush_staged(self) -> None:
        """Offline: keep the pending manifest current whenever the queue runs dry (a crash keeps it)."""
        with self._cond:
            if not self._dirty:
                return
            self._dirty = False
            items = self._previous + list(self._staged)
        try:
            write_pending(self.run_dir, self._header(), items)
        except OSError as exc:
            log_once("files-pending-disk", "runwatch: cannot write %s: %s", self.run_dir / PENDING_NAME, exc,
                     level=logging.ERROR)

    def _header(self) -> dict[str, Any]:
        return {"project": self.project, "run_id": self.run_id, "base_url": self.base_url}


def _signature(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


def _file_item(name: str, source: str, kind: str) -> dict[str, Any]:
    return {"type": "file", "name": name, "kind": kind, "source": source, "sha256": None, "size": None}


def _say(message: str) -> None:
    import sys

    try:
        print(message, file=sys.stderr)
    except Exception:
        log_once("files-say", "%s", message)


# -- runwatch sync ----------------------------------------------------------------------------------
@dataclasses.dataclass
class PendingResult:
    uploaded: int = 0
    left: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


def upload_pending(run_dir: Path, *, base_url: str | None, api_key: str | None,
                   wire_factory: Callable[[str, str | None], Wire] | None = None, attempts: int = 5,
                   sleep: Callable[[float], None] = time.sleep) -> PendingResult:
    """Upload what ``files-pending.json`` lists, in order; done items leave it (it becomes
    ``files-synced.json`` once empty), items the service refuses for good are reported and dropped."""
    from .settings import load_api_key

    result = PendingResult()
    pending = read_pending(run_dir)
    if pending is None:
        return result
    url = (base_url or os.environ.get("RUNWATCH_BASE_URL") or pending.get("base_url") or "http://127.0.0.1:8080")
    url = url.rstrip("/")
    key = api_key or os.environ.get("RUNWATCH_API_KEY") or load_api_key(url)
    wire = wire_factory(url, key) if wire_factory else Wire(url, key, 30.0)
    ctx = _Context(wire, str(pending["project"]), str(pending["run_id"]), run_dir)
    items: list[dict[str, Any]] = pending["items"]
    done: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    try:
        for index, item in enumerate(items):
            delay = 0.5
            res = Result("transient", message="not attempted")
            for _ in range(max(1, attempts)):
                try:
                    res = execute(ctx, item)
                except _Gone as exc:
                    res = Result("permanent", None, None, str(exc))
                if res.outcome != "transient":
                    break
                sleep(delay)
                delay = min(delay * 2, 5.0)
            if res.outcome == "transient" or res.status in (401, 403):  # wait for the service, or a usable key
                result.errors.append(f"{_label(item)} was not uploaded: {res.message}")
                left = items[index:]
                break
            if res.outcome == "ok":
                done.append(item)
                result.uploaded += 1
            else:
                result.errors.append(f"{_label(item)} was refused: {res.message}")
    finally:
        wire.close()
    write_pending(run_dir, {k: v for k, v in pending.items() if k not in ("items", "version")}, left)
    result.left = len(left)
    if done:
        synced = run_dir / SYNCED_NAME
        try:
            earlier = json.loads(synced.read_text("utf-8")).get("items", []) if synced.exists() else []
        except (OSError, ValueError):
            earlier = []
        synced.write_text(json.dumps({"items": earlier + done}, indent=1), "utf-8")
    if not left:
        shutil.rmtree(run_dir / BLOBS_DIR, ignore_errors=True)
    return result
