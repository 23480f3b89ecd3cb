"""``Run``: one training run — ``log``, ``alert``, ``define_metric``, ``finish`` (SPEC 3.2-3.6).

The hot path is ``log``: on the caller's thread it only checks key types, does the step bookkeeping of
SPEC 3.3, copies the dict, reads the clock, appends one tuple to a deque and wakes the sender if (and
only if) the sender is idle. Normalising, flattening, summaries, JSON and all I/O happen on the sender.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from . import lifecycle
from ._log import is_silent, log_once, logger
from .alert import AlertLevel, parse_chart, parse_level, parse_wait_duration
from .config import Config
from .errors import UsageError
from .names import generate_name
from .resume import fetch_resumed_run
from .sender import CONFIG, EXIT, HISTORY, PREEMPTING, Sender
from .settings import Settings
from .summary import AGGREGATES, Summary, SummaryState
from .transport import Transport, open_transport
from .values import check_keys

__all__ = ["Run"]

# States of a run, checked with one attribute read on the hot path.
_ACTIVE = 0
_FINISHED = 1
_FORKED = 2
_DISABLED = 3


class Run:
    """A run. Create it with ``runwatch.init()``; attributes: ``id``, ``name``, ``project``, ``url``,
    ``config``, ``summary``, ``step``, ``dir``, ``mode``."""

    def __init__(
        self,
        *,
        settings: Settings,
        id: str,
        name: str | None,
        project: str,
        config: Any = None,
        tags: list[str] | None = None,
        notes: str | None = None,
        group: str | None = None,
        job_type: str | None = None,
        resume: str | bool | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
        transport_factory: Callable[[], Transport] | None = None,
        install_hooks: bool = True,
        on_stop: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.id = id
        self.name = name or generate_name()  # a resumed run keeps its stored name unless given another
        self._name_given = bool(name)
        self.project = project
        self.mode = settings.mode
        self.tags = list(tags or [])
        self.notes = notes
        self.group = group
        self.job_type = job_type
        self.url: str | None = f"{settings.base_url}/runs/{project}/{id}" if self.mode == "online" else None
        self.dir = Path(settings.root_dir) / f"run-{id}"
        self._clock = clock
        self._new_uuid = new_uuid
        self._start_time = clock()
        self._step = 0
        self._pending: dict[str, Any] | None = None
        self._state = _DISABLED if self.mode == "disabled" else _ACTIVE
        self._finish_lock = threading.RLock()
        self._hooks = install_hooks
        self._metric_defs: dict[str, dict[str, Any]] = {}
        self._summary_state = SummaryState()
        self.summary = Summary(self._summary_state, self._summary_sync, self._summary_changed)
        self.config = Config(config, on_change=None)
        self._sender: Sender | None = None
        self._queue: Any = None
        self._on_stop = on_stop
        self._stop_request: dict[str, Any] | None = None
        self.resumed = False
        if self._state == _DISABLED:
            return

        resume_value = _resume_value(resume)
        transport: Transport | None = None
        if transport_factory is None and self.mode == "online":
            # Built here, on the caller's thread during init (never in log): importing httpx and
            # creating its SSL context on the sender thread could be cut in half by a fork (DataLoader
            # workers right after init), leaving import locks held forever in the child.
            transport = open_transport(settings.base_url, settings.api_key, settings.request_timeout)
        if resume_value is not None and self.mode == "online":
            self._resume_from_service(transport or transport_factory(), resume_value, config)  # type: ignore[misc]
        init_body = {
            "project": project,
            "id": id,
            "name": self.name,
            "config": self.config.as_dict(),
            "tags": self.tags,
            "notes": notes,
            "group": group,
            "job_type": job_type,
            "started_at": self._start_time,
            "resume": resume_value,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        if not settings.disable_system_info:
            # Once, here on the caller's thread (a fork can never cut it in half); cheap, never raises.
            from .sysinfo import collect

            system = collect(git=not settings.disable_git)
            # Where the run keeps its local files and the settings the script chose (W&B's run overview
            # shows both); never the key.
            chosen = {k: v for k, v in settings.given().items() if k != "api_key"}
            system["runwatch"] = {"dir": str(self.dir.resolve()), "mode": self.mode, "settings": chosen}
            init_body["system"] = system
        if transport is not None:
            shared = transport

            def transport_factory() -> Transport:
                return shared

        elif transport_factory is None:

            def transport_factory() -> Transport:
                raise RuntimeError("offline runs have no transport")

        sampler = None
        if settings.system_metrics is not False:  # None: on when the runwatch[system] extra is there
            from .system import SystemMonitor

            monitor = SystemMonitor.create(warn=settings.system_metrics is True)
            sampler = monitor.sample if monitor is not None else None
        self._sender = Sender(
            init_body=init_body,
            base_url=settings.base_url,
            run_dir=self.dir,
            offline=self.mode == "offline",
            transport_factory=transport_factory,
            summary=self._summary_state,
            start_time=self._start_time,
            max_queue_bytes=settings.max_queue_bytes,
            batch_max_records=settings.batch_max_records,
            batch_max_bytes=settings.batch_max_bytes,
            heartbeat_interval=settings.heartbeat_interval,
            summary_interval=settings.summary_interval,
            retry_max_backoff=settings.retry_max_backoff,
            linger=settings.linger,
            clock=clock,
            monotonic=monotonic,
            on_init=self._on_init_answer,
            system_sampler=sampler,
            system_interval=settings.system_metrics_interval,
            current_step=lambda: self._step,
            on_stop=self._stop_heard,
        )
        self._queue = self._sender.queue
        object.__setattr__(self.config, "_on_change", self._config_changed)
        self._sender.start()
        if install_hooks:
            lifecycle.install(self, console=settings.console, signals=settings.signals)

    # -- properties ------------------------------------------------------------------------------
    @property
    def stop_request(self) -> dict[str, Any] | None:
        """Set once the service asked this run to stop (a rule's ``stop_run``, ``alerts runs stop``, the
        dashboard): ``by``, ``rule``, ``reason``, ``step``, ``at``. A loop may poll it instead of being
        interrupted (with ``init(on_stop=...)``)."""
        return self._stop_request

    @property
    def step(self) -> int:
        """The current (not yet committed) step."""
        return self._step

    @property
    def finished(self) -> bool:
        return self._state == _FINISHED

    # W&B's run attributes that scripts print or pass on.
    entity: str | None = None
    sweep_id: str | None = None

    @property
    def path(self) -> str:
        """``project/id``: what ``runwatch.Api().run()`` takes (W&B's ``entity/project/id``)."""
        return f"{self.project}/{self.id}"

    @property
    def start_time(self) -> float:
        return self._start_time

    @property
    def offline(self) -> bool:
        return self.mode == "offline"

    @property
    def disabled(self) -> bool:
        return self.mode == "disabled"

    def get_url(self) -> str | None:
        """The run's page on the dashboard (None offline)."""
        return self.url

    def get_project_url(self) -> str | None:
        return f"{self.settings.base_url}/projects/{self.project}" if self.mode == "online" else None

    def project_name(self) -> str:
        return self.project

    def __repr__(self) -> str:
        return f"<runwatch.Run {self.project}/{self.id} name={self.name!r} mode={self.mode}>"

    # -- log -------------------------------------------------------------------------------------
    def log(self, data: Mapping[str, Any] | None = None, step: int | None = None,
            commit: bool | None = None) -> None:
        """Log metrics with W&B step semantics (SPEC 3.3). Never blocks, never does I/O.

        ``log()`` with no data commits the pending step (W&B's way to close several ``commit=False`` calls).
        """
        if self._state:
            return self._log_inactive()
        if data is None:
            data = {}
        elif type(data) is not dict:
            data = _as_dict(data)
        for k, v in data.items():
            if type(k) is not str:
                check_keys(data)
            if type(v) is dict:
                check_keys(v, k + ".")
        if step is None:
            if commit is False:
                if self._pending is None:
                    self._pending = dict(data)
                else:
                    self._pending.update(data)
                return None
            row = self._pending
            if row is None:
                row = dict(data)
            else:
                row.update(data)
                self._pending = None
            s = self._step
            self._step = s + 1
            self._queue.append((HISTORY, s, self._clock(), row))
            if self._sender.idle:  # type: ignore[union-attr]
                self._sender.wake()  # type: ignore[union-attr]
            return None
        self._log_at_step(data, step, commit)
        return None

    def _log_at_step(self, data: dict[str, Any], step: Any, commit: bool | None) -> None:
        if isinstance(step, bool) or not isinstance(step, int):
            try:
                step = int(step.__index__())
            except (AttributeError, TypeError):
                raise TypeError(f"step must be an int, got {type(step).__name__} {step!r}") from None
        current = self._step
        if step < current:
            logger.warning(
                "runwatch: tried to log to step %d, which is before the current step %d; steps must "
                "increase, so this data is dropped",
                step,
                current,
            )
            return
        if step > current:
            self._commit_pending()
            self._step = step
        if self._pending is None:
            self._pending = dict(data)
        else:
            self._pending.update(data)
        if commit:
            self._commit_pending()
            self._step = step + 1

    def _commit_pending(self) -> None:
        row = self._pending
        if row is None:
            return
        self._pending = None
        self._queue.append((HISTORY, self._step, self._clock(), row))
        sender = self._sender
        if sender is not None and sender.idle:
            sender.wake()

    def _log_inactive(self) -> None:
        if self._state == _FINISHED:
            raise UsageError(
                f"run {self.project}/{self.id} is finished; call runwatch.init() to start a new run "
                "before logging"
            )
        if self._state == _FORKED:
            log_once(
                "forked-log",
                "runwatch: log() in a forked child process is ignored; only the process that called "
                "init() sends data for run %s",
                self.id,
            )
        return None

    # -- alert -----------------------------------------------------------------------------------
    def alert(
        self,
        title: str,
        text: str,
        level: AlertLevel | str | None = None,
        wait_duration: float | Any = None,
        *,
        chart: str | None = None,
    ) -> None:
        """Raise an alert now (SPEC 3.5). Non-blocking; sent ahead of queued metrics.

        ``chart`` (keyword-only; W&B's ``alert()`` has no such argument) names a metric key of this run:
        the notification then carries a chart of that metric around ``step``. A key this run never logged
        gives an alert without a chart."""
        if self._state == _FINISHED:
            raise UsageError(
                f"run {self.project}/{self.id} is finished; alert() must be called before finish()"
            )
        if not isinstance(title, str) or not title:
            raise TypeError(f"alert title must be a non-empty str, got {title!r}")
        if not isinstance(text, str):
            raise TypeError(f"alert text must be a str, got {type(text).__name__}")
        lvl = parse_level(level)
        seconds = parse_wait_duration(wait_duration)
        metric = parse_chart(chart)
        if self._state != _ACTIVE or self._sender is None:
            return
        call: dict[str, Any] = {
            "id": self._new_uuid(),
            "title": title,
            "text": text,
            "level": lvl.wire,
            "wait_duration": seconds,
            "timestamp": self._clock(),
            # The step the alert belongs to: the open one, else the last committed one.
            "step": self._step if self._pending is not None or self._step == 0 else self._step - 1,
            "delayed": False,
        }
        if metric is not None:
            call["chart"] = metric  # only when given: the wire stays what older services know
        self._sender.alerts.append(call)
        self._sender.wake()

    # -- metrics definitions and summary ---------------------------------------------------------
    def define_metric(
        self,
        name: str,
        step_metric: str | None = None,
        *,
        summary: str | None = None,
        hidden: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Choose the summary aggregate of ``name`` (a key or a glob like ``"val/*"``).

        ``summary`` is one of min, max, mean, last, first, none. ``step_metric`` is recorded for
        compatibility with W&B scripts; the service plots against ``_step``.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"define_metric name must be a non-empty str, got {name!r}")
        if summary is not None:
            summary = summary.strip().lower()
            if summary not in AGGREGATES:
                raise ValueError(f"summary must be one of {'|'.join(AGGREGATES)}, got {summary!r}")
            with self._summary_sync():
                self._summary_state.define(name, summary)
        definition = {"name": name, "step_metric": step_metric, "summary": summary, "hidden": hidden}
        self._metric_defs[name] = definition
        return definition

    @contextlib.contextmanager
    def _summary_sync(self) -> Iterator[None]:
        sender = self._sender
        if sender is None or self._state == _FORKED:
            yield
            return
        with sender.lock:
            sender.drain()
            yield

    def _summary_changed(self) -> None:
        if self._sender is not None and self._state == _ACTIVE:
            self._sender.wake()

    def _config_changed(self, mapping: dict[str, Any]) -> None:
        if self._state == _ACTIVE and self._queue is not None:
            self._queue.append((CONFIG, mapping))
            self._sender.wake()  # type: ignore[union-attr]

    # -- W&B's model, file and artifact calls (runwatch.watch, runwatch.files) -----------------------
    def watch(self, models: Any, criterion: Any = None, log: str | None = "gradients", log_freq: int = 1000,
              idx: int | None = None, log_graph: bool = False, **kwargs: Any) -> None:
        """Log gradient and parameter norms of PyTorch ``models`` every ``log_freq`` backward passes
        (``runwatch.watch``)."""
        if self._state != _ACTIVE:
            return
        from .watch import watch

        watch(self, models, criterion=criterion, log=log, log_freq=log_freq, idx=idx, log_graph=log_graph,
              **kwargs)

    def unwatch(self, models: Any = None) -> None:
        """Remove the hooks ``watch`` put on ``models`` (all of this run's when None)."""
        from .watch import unwatch

        unwatch(self, models)

    def save(self, glob_str: Any = None, base_path: Any = None, policy: str = "live") -> Any:
        """Upload files matching ``glob_str`` to the run (``runwatch.files``); returns the matched paths."""
        from . import files

        return files.save(self, glob_str, base_path=base_path, policy=policy)

    def log_code(self, root: Any = ".", name: str | None = None, include_fn: Any = None,
                 exclude_fn: Any = None) -> Any:
        """Store the source files under ``root`` (``*.py`` by default) with the run."""
        from . import files

        return files.log_code(self, root=root, name=name, include_fn=include_fn, exclude_fn=exclude_fn)

    def log_artifact(self, artifact_or_path: Any, name: str | None = None, type: str | None = None,
                     aliases: list[str] | None = None, **kwargs: Any) -> Any:
        """Store an ``Artifact`` (or a file/directory path) as a new version, if its contents changed."""
        from . import files

        return files.log_artifact(self, artifact_or_path, name=name, type=type, aliases=aliases, **kwargs)

    def use_artifact(self, artifact_or_name: Any, type: str | None = None, aliases: list[str] | None = None,
                     **kwargs: Any) -> Any:
        """Fetch an artifact (``"name:latest"``, ``"name:v3"``, ``"project/name:alias"``) as this run's input."""
        from . import files

        return files.use_artifact(self, artifact_or_name, type=type, aliases=aliases, **kwargs)

    def log_model(self, path: Any, name: str | None = None, aliases: list[str] | None = None) -> Any:
        """Store a model file or directory as a ``model`` artifact."""
        from . import files

        return files.log_model(self, path, name=name, aliases=aliases)

    def use_model(self, name: str) -> Any:
        """Download a model artifact; returns its local path."""
        from . import files

        return files.use_model(self, name)

    def link_model(self, path: Any, registered_model_name: str, name: str | None = None,
                   aliases: list[str] | None = None) -> Any:
        """W&B's model registry: not supported (warns once)."""
        from . import files

        return files.link_model(self, path, registered_model_name, name=name, aliases=aliases)

    def mark_preempting(self) -> None:
        """Tell the service that the job scheduler may stop this run soon (W&B's ``mark_preempting``).

        Stored as a run event; if the process then goes silent, the service records the crash as a
        preemption, to be resumed with the same id. Non-blocking, like ``log``."""
        if self._state != _ACTIVE or self._queue is None:
            return
        self._queue.append((PREEMPTING, self._clock()))
        self._sender.wake()  # type: ignore[union-attr]

    def _resume_from_service(self, transport: Transport, resume: str, given_config: Any) -> None:
        """Go on where the stored run ended: its next step, its config (updated by ``given_config``) and
        summary; runs once in ``init``, before the sender starts (``runwatch.resume``)."""
        found = fetch_resumed_run(transport, self.project, self.id, resume, timeout=self.settings.init_timeout)
        if found is None:
            return
        self.resumed = True
        self._step = found.next_step
        if found.name and not self._name_given:
            self.name = found.name
        config = Config(found.config)
        config.update(given_config, allow_val_change=True)
        self.config = config
        self._summary_state.values.update(found.summary)

    def _on_init_answer(self, data: dict[str, Any]) -> None:
        url = data.get("url")
        if isinstance(url, str) and url:
            self.url = url

    # -- stop on request -------------------------------------------------------------------------
    def _stop_heard(self, request: dict[str, Any]) -> None:
        """The service asked this run to stop (on the sender thread, once). As W&B's stop from the UI:
        the main thread is interrupted (``KeyboardInterrupt``), unless the script gave ``init(on_stop=)``,
        which is called with the request instead. Either way the run ends ``stopped``."""
        self._stop_request = request
        step = request.get("step")
        at_step = f" at step {step}" if step is not None else ""
        _say(f"runwatch: run {self.project}/{self.id} was asked to stop by {request.get('by')}{at_step}: "
             f"{request.get('reason')}")
        if self._state != _ACTIVE:
            return
        if self._on_stop is not None:
            try:
                self._on_stop(request)
            except Exception:
                logger.exception("runwatch: the on_stop callback raised")
            return
        lifecycle.interrupt_main_thread()

    # -- finish ----------------------------------------------------------------------------------
    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Commit the pending step, send summary and exit record, flush (bounded by finish_timeout).

        State ``finished`` for exit code 0/None, ``failed`` otherwise. What does not go out in time
        stays in the spool; ``runwatch sync <dir>`` uploads it later.
        """
        state = "finished" if not exit_code else "failed"
        self._finalize(state, int(exit_code or 0), None, None, self.settings.finish_timeout, quiet)

    def _finish_exception(self, exc_type: type[BaseException], exc: BaseException) -> None:
        message = str(exc)
        reason = f"{exc_type.__name__}: {message}" if message else exc_type.__name__
        self._finalize("failed", 1, reason, lifecycle.console_tail(), self.settings.finish_timeout, None)

    def _finish_killed(self, signal_name: str, signum: int) -> None:
        # The process is going down: keep the flush short, the spool keeps the rest.
        timeout = min(self.settings.finish_timeout, 5.0)
        self._finalize("killed", 128 + int(signum), signal_name, lifecycle.console_tail(), timeout, None)

    def _finalize(
        self,
        state: str,
        exit_code: int,
        reason: str | None,
        tail: str | None,
        timeout: float,
        quiet: bool | None,
    ) -> None:
        with self._finish_lock:
            if self._state in (_FINISHED, _FORKED):
                return
            was = self._state
            self._state = _FINISHED
        if self._stop_request is not None and state in ("finished", "killed"):
            # The interrupt (or the script's own way out) after a stop request. A failure is reported as
            # such: the service ends the run stopped all the same, and keeps what failed in its reason.
            state = "stopped"
        try:
            if was == _ACTIVE and self._sender is not None:
                self._flush_and_stop(state, exit_code, reason, tail, timeout, quiet)
        finally:
            watch = sys.modules.get(f"{__package__}.watch")
            if watch is not None:  # the model outlives the run: take our hooks off it
                try:
                    watch.unwatch(self)
                except Exception:
                    pass
            if self._hooks:
                lifecycle.uninstall(self)
            from . import _session

            _session._run_finished(self)

    def _flush_and_stop(
        self,
        state: str,
        exit_code: int,
        reason: str | None,
        tail: str | None,
        timeout: float,
        quiet: bool | None,
    ) -> None:
        sender = self._sender
        assert sender is not None
        self._commit_pending()
        files = sys.modules.get(f"{__package__}.files")
        if files is not None:  # saved files and artifacts go up first, within the same finish budget
            started = time.monotonic()
            files.finish(self, timeout)
            timeout -= time.monotonic() - started
        self._queue.append((EXIT, state, exit_code, reason, tail, self._clock()))
        barrier = sender.barrier()
        if not barrier.event.wait(max(0.0, timeout)):
            sender.abort()
            # The sender may be inside one HTTP request; give it that long to put the rest on disk.
            barrier.event.wait(self.settings.request_timeout + 2.0)
        sender.stop()
        sender.join(2.0)
        complete = barrier.event.is_set() and barrier.complete
        if self.mode == "offline":
            if not quiet:
                _say(f"runwatch: offline run {self.id} saved in {self.dir}; upload it with `runwatch sync {self.dir}`")
        elif not complete:
            _say(
                f"runwatch: run {self.project}/{self.id}: {sender.undelivered} records/alerts were not "
                f"delivered before the timeout; they are kept in {self.dir} - upload them with "
                f"`runwatch sync {self.dir}`"
            )

    # -- fork ------------------------------------------------------------------------------------
    def _on_fork_child(self) -> None:
        """In a forked child: this run belongs to the parent; go silent and drop the copied queue."""
        if self._state in (_ACTIVE,):
            self._state = _FORKED
        if self._sender is not None:
            self._sender.queue.clear()
            self._sender.alerts.clear()
            self._sender.lock = threading.RLock()  # the parent's sender may have held it at fork time

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish(0)
        elif issubclass(exc_type, KeyboardInterrupt):
            import signal

            self._finish_killed("SIGINT", signal.SIGINT)
        else:
            assert exc is not None
            self._finish_exception(exc_type, exc)

    # -- test seam -------------------------------------------------------------------------------
    def _flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything logged so far is delivered (or spooled offline). For tests/tools."""
        if self._sender is None or self._state != _ACTIVE:
            return True
        return self._sender.barrier().event.wait(timeout)


def _as_dict(data: Any) -> dict[str, Any]:
    if isinstance(data, Mapping):
        return dict(data)
    raise TypeError(f"runwatch.log expects a dict of metrics, got {type(data).__name__}")


def _resume_value(resume: str | bool | None) -> str | None:
    if resume is None or resume is False:
        return None
    if resume is True or resume == "auto":
        return "allow"
    if resume in ("allow", "never", "must"):
        return str(resume)
    raise ValueError(f"resume must be None, True, 'allow', 'never' or 'must', got {resume!r}")


def _say(message: str) -> None:
    if is_silent():
        return
    try:
        print(message, file=sys.stderr)
    except Exception:
        logger.log(logging.WARNING, message)
