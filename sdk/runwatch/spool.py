"""The on-disk spool: an append-only JSON-lines file per run, ``<RUNWATCH_DIR>/run-<id>/spool.jsonl``.

Line types (one JSON object per line):

- ``{"type": "init", "body": {...}, "base_url": "..."}`` — always the first line of a spool file;
- a run record exactly as sent (``history``/``config``/``summary``/``exit``, with its ``seq``);
- ``{"type": "alert", "alert": {...}}`` — an ``alert()`` call;
- ``{"type": "seq_base", "value": n}`` — a resumed run's seq offset, learned from the service.

The sender appends and replays from a read offset; once everything is replayed the file is removed.
Batches the service refused permanently are copied to ``rejected.jsonl`` beside it (data is never
deleted). A torn last line (process killed mid-write) is skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["REJECTED_NAME", "SPOOL_NAME", "Spool", "iter_spool"]

SPOOL_NAME = "spool.jsonl"
REJECTED_NAME = "rejected.jsonl"


class Spool:
    """Append-only writer plus an in-order reader with its own offset. Used by one thread only."""

    def __init__(self, run_dir: Path, header: bytes) -> None:
        self.run_dir = run_dir
        self.path = run_dir / SPOOL_NAME
        self.header = header  # first line of every new spool file
        self._writer: IO[bytes] | None = None
        self._reader: IO[bytes] | None = None
        self.read_offset = 0
        self.written = 0  # bytes in the file (ours, since open)

    def append(self, lines: list[bytes]) -> None:
        """Append lines (each without the newline) and flush them to the OS."""
        if self._writer is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._writer = open(self.path, "ab")
            self.written = self.path.stat().st_size
            if fresh:
                self._write(self.header)
        for line in lines:
            self._write(line)
        self._writer.flush()

    def _write(self, line: bytes) -> None:
        assert self._writer is not None
        data = line + b"\n"
        self._writer.write(data)
        self.written += len(data)

    def has_unread(self) -> bool:
        return self._writer is not None and self.read_offset < self.written

    def read(self, max_lines: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Up to ``max_lines`` complete lines from the read offset, as (offset after line, line)."""
        if self._writer is None:
            return []
        if self._reader is None:
            self._reader = open(self.path, "rb")
        self._reader.seek(self.read_offset)
        out: list[tuple[int, bytes]] = []
        pos = self.read_offset
        size = 0
        while len(out) < max_lines and size < max_bytes and pos < self.written:
            line = self._reader.readline()
            if not line.endswith(b"\n"):
                break
            pos += len(line)
            size += len(line)
            out.append((pos, line.rstrip(b"\n")))
        return out

    def clear(self) -> None:
        """Everything was replayed: remove the file so the next outage starts a fresh one."""
        self.close()
        try:
            self.path.unlink()
        except OSError:
            pass
        self.read_offset = 0
        self.written = 0

    def close(self) -> None:
        for f in (self._writer, self._reader):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._writer = None
        self._reader = None

    def reject(self, lines: list[bytes]) -> Path:
        """Keep lines the service refused permanently in ``rejected.jsonl``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / REJECTED_NAME
        with open(path, "ab") as f:
            for line in lines:
                f.write(line + b"\n")
        return path


def iter_spool(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Parsed lines of a spool file; torn or corrupt lines are skipped."""
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj
