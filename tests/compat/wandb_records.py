"""Read what the real ``wandb`` wrote for an offline run: the ``run-<id>.wandb`` transaction log.

wandb 0.31 dropped its Python ``datastore`` reader, so this is a small one of our own. The file is a
leveldb-log-like stream: a 7-byte file header (``:W&B`` magic, version), then 32 KiB blocks of
records, each with a 7-byte header ``<IHB`` (crc32, payload length, type: 1 full, 2 first, 3 middle,
4 last); a block whose tail is shorter than a header is zero padding. Each reassembled payload is a
``wandb.proto.wandb_internal_pb2.Record``.

``read_run`` folds those records into what the comparison needs: the committed history rows, the
config, the summary, the run's group and job type, and the saved file paths.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FILE_HEADER = 7
_BLOCK = 32 * 1024
_HEADER = struct.Struct("<IHB")
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def record_payloads(path: Path) -> list[bytes]:
    """The reassembled record payloads of one ``.wandb`` file, in order."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a wandb transaction log (header {data[:_FILE_HEADER]!r})")
    payloads: list[bytes] = []
    pending: bytes | None = None
    pos = _FILE_HEADER
    while pos + _HEADER.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER.size:  # too short for a header: padding up to the next block
            pos += left
            continue
        _crc, length, kind = _HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero fill at the end of a block (or of the file)
            pos += left
            continue
        payload = data[pos + _HEADER.size:pos + _HEADER.size + length]
        pos += _HEADER.size + length
        if kind == _FULL:
            payloads.append(payload)
        elif kind == _FIRST:
            pending = payload
        elif kind == _MIDDLE and pending is not None:
            pending += payload
        elif kind == _LAST and pending is not None:
            payloads.append(pending + payload)
            pending = None
        else:
            raise ValueError(f"{path}: record type {kind} at byte {pos} out of sequence")
    return payloads


def records(path: Path) -> list[Any]:
    """The ``Record`` protobufs of one ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    out = []
    for payload in record_payloads(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        out.append(record)
    return out


def _value(value_json: str) -> Any:
    # wandb writes non-finite floats as bare NaN/Infinity, which json.loads accepts.
    return json.loads(value_json)


def _items(items: Any) -> dict[str, Any]:
    """History/config/summary items -> one nested dict (``nested_key`` paths become nested dicts)."""
    out: dict[str, Any] = {}
    for item in items:
        path = list(item.nested_key) or [item.key]
        target = out
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = _value(item.value_json)
    return out


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys, as both SDKs name nested metrics; a dict with ``_type`` is one
    media value and stays whole."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and "_type" not in value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@dataclass
class WandbRun:
    """What one offline wandb run recorded."""

    path: Path
    run_id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    preempting: bool = False
    exit_code: int | None = None
    start_time: float = 0.0

    def steps(self) -> list[int]:
        return [int(row["_step"]) for row in self.history]


def read_run(path: Path) -> WandbRun:
    """Fold the records of ``run-<id>.wandb`` into a :class:`WandbRun`."""
    run = WandbRun(path=path)
    for record in records(path):
        kind = record.WhichOneof("record_type")
        run.kinds.append(kind or "")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.group, run.job_type = r.run_id, r.project, r.run_group, r.job_type
            run.name, run.tags, run.notes = r.display_name, list(r.tags), r.notes
            run.start_time = r.start_time.seconds + r.start_time.nanos / 1e9
            _merge(run.config, _items(r.config.update))
        elif kind == "history":
            row = flatten(_items(record.history.item))
            row.setdefault("_step", record.history.step.num)
            run.history.append(row)
        elif kind == "config":  # a nested_key update sets one leaf (e.g. _wandb.visualize.<chart>)
            _merge(run.config, _items(record.config.update))
            for item in record.config.remove:
                run.config.pop(item.key, None)
        elif kind == "summary":
            _merge(run.summary, _items(record.summary.update))
            for item in record.summary.remove:
                run.summary.pop(item.key, None)
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
        elif kind == "artifact":
            a = record.artifact
            run.artifacts.append({"name": a.name, "type": a.type, "description": a.description,
                                  "metadata": json.loads(a.metadata) if a.metadata else {},
                                  "aliases": list(a.aliases),
                                  "files": sorted(entry.path for entry in a.manifest.contents)})
        elif kind == "alert":
            a = record.alert
            run.alerts.append({"title": a.title, "text": a.text, "level": a.level,
                               "wait_duration": a.wait_duration})
        elif kind == "preempting":
            run.preempting = True
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def _merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict) and "_type" not in value:
            _merge(target[key], value)
        else:
            target[key] = value


def find_runs(wandb_dir: Path) -> list[WandbRun]:
    """Every offline run under ``<WANDB_DIR>/wandb``, in the order they started (the folder names have
    one-second resolution, so the run records' start times decide)."""
    runs = [read_run(path) for path in (wandb_dir / "wandb").glob("offline-run-*/run-*.wandb")]
    return sorted(runs, key=lambda run: (run.start_time, str(run.path)))


def same_number(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
