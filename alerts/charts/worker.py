"""What runs in a chart worker process: :func:`draw` around ``render_png``, and an exit when the service dies.

The service starts its workers with the "spawn" method (``service.py``), so a worker imports this module
and matplotlib, nothing of the service's state. A worker whose service was killed (``kill -9``, the OOM
killer) notices the parent's end of its pipe closing and exits at once instead of waiting forever.

Test hook: ``RUNWATCH_CHART_TEST_DELAY=<seconds>`` in the service's environment makes every drawing
take that much longer (tests of the notification bound); nothing else reads it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alerts.charts.data import ChartData

TEST_DELAY_ENV = "RUNWATCH_CHART_TEST_DELAY"
_NICENESS = 10


def start() -> None:
    """The pool's initializer: exit with the parent, yield the CPU to the service, leave Ctrl-C to the
    service, import matplotlib now."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C reaches the whole process group
    # A chart is a nicety and a delivery is not: on a busy machine (an alert storm) drawing gets the CPU
    # the service leaves, and the bound turns a late chart into a "not ready" line, never a late message.
    with contextlib.suppress(OSError):
        os.nice(_NICENESS)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel, os.getppid()), daemon=True,
                         name="chart-worker-parent-watch").start()
    # The first chart should not pay for matplotlib's import. If it cannot be imported, draw() raises
    # the ImportError, and the service turns charts off with one warning.
    with contextlib.suppress(ImportError):
        import alerts.charts.render  # noqa: F401


def _exit_with_parent(sentinel: int, parent_pid: int) -> None:
    # The sentinel becomes readable when the parent's end of the pipe closes, which the kernel does when
    # the parent dies however it dies. The pid check is a belt to those braces.
    while not multiprocessing.connection.wait([sentinel], timeout=5.0):
        if os.getppid() != parent_pid:
            break
    os._exit(0)


def ready() -> None:
    """Nothing: submitted to start a worker ahead of the first chart."""


def draw(data: ChartData) -> tuple[bytes, float]:
    """The chart's PNG and the seconds it took to draw (which the service uses to predict the next)."""
    from alerts.charts.render import render_png

    started = time.perf_counter()
    delay = _test_delay()
    if delay > 0:
        time.sleep(delay)
    png = render_png(data)
    return png, time.perf_counter() - started


def _test_delay() -> float:
    try:
        return max(0.0, float(os.environ.get(TEST_DELAY_ENV) or 0.0))
    except ValueError:
        return 0.0
