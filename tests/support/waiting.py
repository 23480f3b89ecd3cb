"""Waiting for a state, never for a time: every wait of the suite polls with a generous deadline."""

from __future__ import annotations

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
