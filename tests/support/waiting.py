"""Waiting for a state, never for a time: every wait of the suite polls with a generous deadline."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], check: Callable[[T], bool], *, timeout: float = 60,
               what: str = "the condition", interval: float = 0.1) -> T:
    """Poll ``probe()`` until ``check`` accepts its value and return that value; fail after ``timeout``
    seconds, showing the last value seen. A passing wait returns at once, so the deadline costs nothing
    on a fast machine and leaves room on a slow, busy one."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last seen: {value!r}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Ask a child to stop with ``sig``; SIGKILL it if it has not exited within ``timeout`` seconds."""
    if process is not None and process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
