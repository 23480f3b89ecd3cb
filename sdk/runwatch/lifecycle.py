"""Process hooks that let a run end with the right state whatever happens to the process.

- ``atexit``: finish the active run (state ``finished``).
- ``sys.excepthook`` (chained: the previous hook runs first, so the traceback is printed and captured):
  state ``failed`` with ``"Type: message"`` and the console tail; ``KeyboardInterrupt`` means ``killed``
  by ``SIGINT``. ``threading.excepthook`` is left alone: a crashing worker thread does not fail the run.
- SIGTERM/SIGINT (installed from the main thread only): state ``killed`` with the signal name, a short
  bounded flush, then the previous handler runs (or the default action is re-raised).
- ``os.register_at_fork``: in a child every run of the parent goes silent (it never sends on the
  parent's behalf).
- Console tee: ``sys.stdout``/``sys.stderr`` are wrapped so output still reaches the terminal while the
  last 100 lines are kept for the exit record.
"""

from __future__ import annotations

import atexit
import collections
import os
import signal
import sys
import threading
import weakref
from types import FrameType, TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run import Run

__all__ = ["ConsoleTee", "console_tail", "install", "uninstall"]

TAIL_LINES = 100
_MAX_PARTIAL = 10_000

_current: Run | None = None
_all_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
_partial = [""]
_tail_lock = threading.Lock()
_prev_excepthook: Any = None
_prev_signals: dict[int, Any] = {}
_atexit_registered = False
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ConsoleTee:
    """A text stream that writes through to ``stream`` and remembers the last lines written."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.active = True

    def write(self, s: str) -> int:
        n = self._stream.write(s)
        if self.active and isinstance(s, str):
            _record(s)
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _record(s: str) -> None:
    with _tail_lock:
        if "\n" not in s:
            _partial[0] = (_partial[0] + s)[-_MAX_PARTIAL:]
            return
        parts = (_partial[0] + s).split("\n")
        _tail.extend(parts[:-1])
        _partial[0] = parts[-1][-_MAX_PARTIAL:]


def console_tail() -> str:
    """The last ``TAIL_LINES`` lines written to stdout/stderr since the tee was installed."""
    with _tail_lock:
        lines = list(_tail)
        if _partial[0]:
            lines.append(_partial[0])
    return "\n".join(lines[-TAIL_LINES:])


def install(run: Run, *, console: bool = True, signals: bool = True) -> None:
    """Make ``run`` the run that process-level events finish."""
    global _current, _prev_excepthook, _atexit_registered
    _current = run
    _all_runs.add(run)
    if console:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, ConsoleTee):
                stream.active = True
            elif stream is not None:
                setattr(sys, name, ConsoleTee(stream))
    if sys.excepthook is not _excepthook:
        _prev_excepthook = sys.excepthook
        sys.excepthook = _excepthook
    if signals and threading.current_thread() is threading.main_thread():
        for sig in _SIGNALS:
            try:
                current = signal.getsignal(sig)
                if current is not _signal_handler:
                    _prev_signals[sig] = current
                    signal.signal(sig, _signal_handler)
            except (ValueError, OSError):  # not the main interpreter, or unsupported
                pass
    if not _atexit_registered:
        atexit.register(_atexit)
        _atexit_registered = True


def uninstall(run: Run) -> None:
    """Undo ``install`` once ``run`` is over (hooks installed by others after us are left in place)."""
    global _current, _prev_excepthook
    if _current is not run:
        return
    _current = None
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, ConsoleTee):
            setattr(sys, name, stream._stream)
    if sys.excepthook is _excepthook and _prev_excepthook is not None:
        sys.excepthook = _prev_excepthook
        _prev_excepthook = None
    if threading.current_thread() is threading.main_thread():
        for sig, prev in list(_prev_signals.items()):
            try:
                if signal.getsignal(sig) is _signal_handler:
                    signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
            except (ValueError, OSError):
                pass
            _prev_signals.pop(sig, None)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    prev = _prev_excepthook or sys.__excepthook__
    try:
        prev(exc_type, exc, tb)
    finally:
        run = _current
        if run is not None:
            try:
                if issubclass(exc_type, KeyboardInterrupt):
                    run._finish_killed("SIGINT", signal.SIGINT)
                else:
                    run._finish_exception(exc_type, exc)
            except Exception:
                pass


def _signal_handler(signum: int, frame: FrameType | None) -> None:
    prev = _prev_signals.get(signum, signal.SIG_DFL)
    if signum == signal.SIGINT and prev is signal.default_int_handler:
        # Python's own SIGINT behaviour: KeyboardInterrupt unwinds the stack; if nothing catches it
        # the excepthook records "killed"; if the program catches it, the run simply goes on.
        prev(signum, frame)
        return
    run = _current
    if run is not None:
        try:
            run._finish_killed(signal.Signals(signum).name, signum)
        except Exception:
            pass
    try:
        signal.signal(signum, prev if prev is not None else signal.SIG_DFL)
    except (ValueError, OSError):
        pass
    if callable(prev):
        prev(signum, frame)
    elif prev == signal.SIG_DFL or prev is None:
        os.kill(os.getpid(), signum)


def _atexit() -> None:
    run = _current
    if run is not None:
        try:
            run.finish()
        except Exception:
            pass


def _our_signals() -> list[int]:
    return [sig for sig in _SIGNALS if signal.getsignal(sig) is _signal_handler]


def _before_fork() -> None:
    # A signal that reaches a child between fork() and Python's after-fork bookkeeping is caught by
    # our Python-level handler and then discarded by CPython: the child never dies (multiprocessing's
    # Pool.terminate() then hangs forever). Block our signals across fork; the child restores the
    # default handlers first and unblocks, so such a signal is delivered and acts as the default.
    ours = _our_signals()
    if ours and threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, ours)
        _fork_blocked.extend(ours)


def _after_fork_in_parent() -> None:
    if _fork_blocked:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, list(_fork_blocked))
        _fork_blocked.clear()


def _after_fork_in_child() -> None:
    global _current, _tail_lock
    _current = None
    for sig in _our_signals():  # the child is not the run's process: it gets the original behaviour
        prev = _prev_signals.get(sig)
        try:
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        except (ValueError, OSError):
            pass
    if _fork_blocked:
        blocked = list(_fork_blocked)
        _fork_blocked.clear()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
    # Another thread of the parent may have held these at fork time; the child gets fresh ones.
    _tail_lock = threading.Lock()
    from . import _log

    _log._lock = threading.Lock()
    for run in list(_all_runs):
        try:
            run._on_fork_child()
        except Exception:
            pass


_fork_blocked: list[int] = []
os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


def interrupt_main_thread() -> None:
    """Raise ``KeyboardInterrupt`` in the main thread, as Ctrl-C would (a stop request from the service).

    With a Python SIGINT handler in place (the default, or the script's own), the main thread gets a real
    SIGINT: it also wakes a ``sleep`` or a blocking read. Where SIGINT is ignored (a background job of a
    non-interactive shell) or cannot be sent, the exception is set on the main thread directly, and is
    raised at its next bytecode."""
    main = threading.main_thread()
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and hasattr(signal, "pthread_kill") and main.ident is not None:
        try:
            signal.pthread_kill(main.ident, signal.SIGINT)
            return
        except (OSError, ValueError):
            pass
    import ctypes

    if main.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(main.ident), ctypes.py_object(KeyboardInterrupt))
