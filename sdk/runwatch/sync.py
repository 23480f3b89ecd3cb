"""``runwatch sync PATH``: upload spooled runs (offline runs, or what an online run could not send).

PATH is a run directory (containing ``spool.jsonl``) or a directory of them. For each run: the init
line is re-sent (idempotent), then records in order (the service ignores seqs it already has, so an
interrupted sync can simply be run again) and alerts marked ``delayed: true`` with their original
timestamp. A fully uploaded spool is moved to ``synced.jsonl`` beside it (data is never deleted).

Then the files and artifacts the run could not upload (``files-pending.json``, see :func:`sync_files`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import Error
from .settings import load_api_key
from .spool import REJECTED_NAME, SPOOL_NAME, iter_spool
from .transport import Result, Transport, open_transport
from .values import dumps

__all__ = ["SyncResult", "find_run_dirs", "sync_files", "sync_path"]

SYNC_STATE = "sync.json"
SYNCED_NAME = "synced.jsonl"


@dataclasses.dataclass
class SyncResult:
    run_dir: Path
    project: str = ""
    run_id: str = ""
    records: int = 0
    alerts: int = 0
    rejected: int = 0
    ok: bool = False
    error: str = ""
    files: int = 0
    """Files, artifacts and artifact uses uploaded from ``files-pending.json``."""


def _has_work(run_dir: Path) -> bool:
    from ._uploader import PENDING_NAME

    return (run_dir / SPOOL_NAME).is_file() or (run_dir / PENDING_NAME).is_file()


def find_run_dirs(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` itself if it holds a spool or pending files, else its subdirectories that do (sorted)."""
    p = Path(path)
    if _has_work(p):
        return [p]
    if not p.is_dir():
        raise Error(f"{p} is neither a run directory nor a directory of runs")
    return sorted(d for d in p.iterdir() if d.is_dir() and _has_work(d))


def sync_path(
    path: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    transport_factory: Callable[[str, str | None], Transport] | None = None,
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[SyncResult]:
    """Upload every spooled run under ``path``; returns one result per run directory."""
    results = []
    for run_dir in find_run_dirs(path):
        if (run_dir / SPOOL_NAME).is_file():
            result = _sync_run(run_dir, base_url, api_key, transport_factory, attempts, sleep)
        else:
            result = SyncResult(run_dir, ok=True)
        if not result.error.startswith(("init refused", "service unreachable")):
            files = sync_files(run_dir, base_url=base_url, api_key=api_key, attempts=attempts, sleep=sleep)
            result.project, result.run_id = result.project or files.project, result.run_id or files.run_id
            result.files = files.files
            if not files.ok:
                result.ok = False
                result.error = "; ".join(filter(None, [result.error, files.error]))
        results.append(result)
    return results


def sync_files(
    run_dir: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncResult:
    """Upload the files, artifacts and artifact uses listed in ``<run_dir>/files-pending.json`` (what
    an online run had not uploaded when it finished, or everything of an offline run, whose contents
    wait in ``<run_dir>/blobs``). Done items leave the list, so an interrupted sync can run again; the
    run must be known to the service (its spool is synced first)."""
    from ._uploader import read_pending, upload_pending

    folder = Path(run_dir)
    pending = read_pending(folder) or {}
    result = SyncResult(folder, project=str(pending.get("project") or ""), run_id=str(pending.get("run_id") or ""))
    if not pending:
        result.ok = True
        return result
    done = upload_pending(folder, base_url=base_url, api_key=api_key, attempts=attempts, sleep=sleep)
    result.files = done.uploaded
    result.ok = not done.errors
    result.error = "; ".join(done.errors)
    return result


def _post(transport: Transport, path: str, body: bytes, attempts: int, sleep: Callable[[float], None]) -> Result:
    delay = 0.5
    res = Result("transient", message="not attempted")
    for _ in range(max(1, attempts)):
        res = transport.request("POST", path, body)
        if res.outcome != "transient":
            return res
        sleep(delay)
        delay = min(delay * 2, 5.0)
    return res


def _sync_run(
    run_dir: Path,
    base_url: str | None,
    api_key: str | None,
    transport_factory: Callable[[str, str | None], Transport] | None,
    attempts: int,
    sleep: Callable[[float], None],
) -> SyncResult:
    result = SyncResult(run_dir)
    spool_path = run_dir / SPOOL_NAME
    lines = list(iter_spool(spool_path))
    if not lines or lines[0].get("type") != "init":
        result.error = f"{spool_path} does not start with an init line"
        return result
    header = lines[0]
    body: dict[str, Any] = header["body"]
    url = (base_url or os.environ.get("RUNWATCH_BASE_URL") or header.get("base_url") or "").rstrip("/")
    if not url:
        url = "http://127.0.0.1:8080"
    key = api_key or os.environ.get("RUNWATCH_API_KEY") or load_api_key(url)
    project, run_id = str(body["project"]), str(body["id"])
    result.project, result.run_id = project, run_id
    transport = transport_factory(url, key) if transport_factory else open_transport(url, key)
    try:
        res = _post(transport, "/api/v1/runs", dumps(body), attempts, sleep)
        if res.outcome != "ok":
            result.error = f"init refused: {res.message}"
            return result
        answer = res.data if isinstance(res.data, dict) else {}
        seq_base = _seq_base(run_dir, lines, body, answer)
        records_path = f"/api/v1/runs/{project}/{run_id}/records"
        alerts_path = f"/api/v1/runs/{project}/{run_id}/alerts"
        group: list[dict[str, Any]] = []
        kind = ""

        def flush() -> bool:
            nonlocal group
            if not group:
                return True
            if kind == "record":
                # delayed: no process is there any more to stop; a rule's stop_run leaves the run alone
                payload = dumps({"records": group, "delayed": True})
                r = _post(transport, records_path, payload, attempts, sleep)
                counted = "records"
            else:
                payload = dumps({"alerts": group})
                r = _post(transport, alerts_path, payload, attempts, sleep)
                counted = "alerts"
            if r.outcome == "transient":
                result.error = f"service unreachable: {r.message}"
                return False
            if r.outcome == "permanent":
                with open(run_dir / REJECTED_NAME, "ab") as f:
                    for item in group:
                        f.write(dumps(item) + b"\n")
                result.rejected += len(group)
                result.error = f"some data was refused: {r.message} (kept in {REJECTED_NAME})"
            else:
                setattr(result, counted, getattr(result, counted) + len(group))
            group = []
            return True

        for obj in lines[1:]:
            t = obj.get("type")
            if t in ("init", "seq_base"):
                continue
            if t == "alert":
                item = dict(obj["alert"])
                item["delayed"] = True
                this = "alert"
            else:
                item = dict(obj)
                item["seq"] = int(item["seq"]) + seq_base
                this = "record"
            if group and (this != kind or len(group) >= 500):
                if not flush():
                    return result
            kind = this
            group.append(item)
        if not flush():
            return result
    finally:
        transport.close()
    _mark_synced(spool_path)
    result.ok = not result.rejected
    return result


def _seq_base(run_dir: Path, lines: list[dict[str, Any]], body: dict[str, Any], answer: dict[str, Any]) -> int:
    for obj in lines:
        if obj.get("type") == "seq_base":
            return int(obj["value"])
    if not body.get("resume"):
        return 0
    state_path = run_dir / SYNC_STATE
    try:
        return int(json.loads(state_path.read_text("utf-8"))["seq_base"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    last = answer.get("last_seq")
    base = int(last) if answer.get("resumed") and isinstance(last, int) else 0
    state_path.write_text(json.dumps({"seq_base": base}), "utf-8")
    return base


def _mark_synced(spool_path: Path) -> None:
    target = spool_path.with_name(SYNCED_NAME)
    if not target.exists():
        os.replace(spool_path, target)
        return
    with open(target, "ab") as out, open(spool_path, "rb") as src:
        out.write(src.read())
    spool_path.unlink()
