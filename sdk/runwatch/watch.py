"""``watch(model)``: gradient and parameter norms of PyTorch models as ordinary metrics (``wandb.watch``).

Metric names (rules match them with globs such as ``gradients/*global_norm`` or ``gradients/*norm/*``):

- ``gradients/global_norm``: the L2 norm of all the model's parameter gradients together (the number
  ``torch.nn.utils.clip_grad_norm_`` computes, before it clips);
- ``gradients/norm/<param name>``: the L2 norm of one parameter's gradient, e.g. ``gradients/norm/conv1.weight``;
- ``parameters/norm/<param name>``: the L2 norm of the parameter itself;
- with ``histograms=True`` also ``gradients/hist/<param name>`` and ``parameters/hist/<param name>``:
  ``runwatch.Histogram`` media of 64 bins (NaN/±inf counted beside the bins), not evaluated by rules.

The first model a run watches has these names; a further model of the same run (or ``idx=k``) gets
``graph_<k>/`` after the section: ``gradients/graph_1/global_norm``, ``parameters/graph_1/norm/fc.weight``.
Only parameters with ``requires_grad`` are watched, as in W&B.

What is measured: the gradient one backward pass computes for each parameter, taken in a hook before it is
added to ``.grad``. With gradient accumulation that is each micro-batch's gradient, never the running sum
(which would saw-tooth with the accumulation cycle); it is measured before clipping and, with fp16 loss
scaling, still multiplied by the loss scale. A NaN or ±inf anywhere in a gradient makes its norm (and the
global norm) NaN or inf; those values are logged as such, for ``when: not finite`` rules. A parameter that
got no gradient in that backward pass (unused, or outside ``inputs=``) has no point at that log point.
Parameter norms are taken at the same moments: after the backward pass, before the optimizer step.

When: on every ``log_freq``-th backward pass that reaches the model's parameters (the ``log_freq``-th,
``2*log_freq``-th, ...; ``log_freq=1``: every one). Cost: between log points one hook on one parameter
counts backward passes (one Python call per backward pass, whatever the model's size); the backward pass
before a log point arms a hook per parameter for the next one, which computes each gradient's norm on the
gradient's device as it arrives (no copy of any gradient is kept), and its end reads every number back in
one ``tolist()`` per device. ``bench/watch.py`` measures the step time.

Steps: the values go through ``run.log(values, commit=False)``, so they join the step that is open when
``backward()`` returns, as in W&B:

- ``loss.backward(); opt.step(); run.log({"loss": ...})``: they land in the same row as the loss;
- ``run.log(..., step=s)``: the open step is the one last logged (W&B's step semantics keep it open until a
  later step is logged), so they land in that row;
- a script that logs nothing else between two log points (or never logs): W&B would overwrite the
  previous values in the open row. Here, when the previous values are still sitting unsent in the open
  row, that row is sent first, at the same step (the service merges points by key and step), so every
  point reaches the rules; the run's step numbering stays the script's.

Internal errors are logged once and stop the watch; they never reach the training loop.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._log import log_once

if TYPE_CHECKING:
    from .run import Run

__all__ = ["HISTOGRAM_BINS", "LOG_CHOICES", "unwatch", "watch"]

LOG_CHOICES = ("gradients", "parameters", "all", None)
HISTOGRAM_BINS = 64

_lock = threading.Lock()
# Keyed weakly by model (and by run), so a model or run that is dropped takes its watch along.
_watches: weakref.WeakKeyDictionary[Any, _Watch] = weakref.WeakKeyDictionary()
_next_index: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def watch(
    run: Run,
    models: Any,
    criterion: Any = None,
    log: str | None = "gradients",
    log_freq: int = 1000,
    idx: int | None = None,
    log_graph: bool = False,
    *,
    histograms: bool = False,
) -> None:
    """Log gradient and/or parameter norms of ``models`` every ``log_freq`` backward passes.

    ``models``: one ``torch.nn.Module`` or a list/tuple of them. ``log``: ``"gradients"`` (default),
    ``"parameters"``, ``"all"`` or None (nothing). ``criterion`` is accepted for W&B compatibility and
    unused; ``log_graph=True`` is accepted and ignored with a warning. ``histograms=True`` adds histogram
    media. Watching a model again replaces its hooks (never doubles them), also across runs.
    """
    gradients, parameters = _parse_log(log)
    freq = _parse_freq(log_freq)
    if idx is not None and (isinstance(idx, bool) or not isinstance(idx, int) or idx < 0):
        raise ValueError(f"watch idx must be None or a non-negative int, got {idx!r}")
    if log_graph:
        log_once("watch-log-graph", "runwatch.watch: log_graph=True is not supported (Runwatch draws no model "
                 "graph); it is ignored")
    import torch

    model_list = list(models) if isinstance(models, (list, tuple)) else [models]
    if not model_list:
        raise ValueError("runwatch.watch needs at least one torch.nn.Module, got an empty sequence")
    for model in model_list:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"runwatch.watch expects a torch.nn.Module (or a list of them), got "
                            f"{type(model).__name__}")
    if run.finished or run.mode == "disabled":
        return
    with _lock:
        for offset, model in enumerate(model_list):
            old = _watches.pop(model, None)
            if old is not None:
                old.remove()
            if idx is not None:
                index = idx + offset
            elif old is not None and old.run is run:
                index = old.index
            else:
                index = _next_index.get(run, 0)
            _next_index[run] = max(_next_index.get(run, 0), index + 1)
            if not (gradients or parameters):
                continue
            found = _Watch(run, model, index, gradients=gradients, parameters=parameters, freq=freq,
                           histograms=bool(histograms))
            if not found.params:
                log_once(f"watch-no-params-{id(model)}", "runwatch.watch: %s has no parameters that require "
                         "grad; nothing to log", type(model).__name__)
                continue
            _watches[model] = found
            found.install()


def unwatch(run: Run, models: Any = None) -> None:
    """Remove the hooks ``watch`` put on ``models`` for ``run`` (None: all of this run's models)."""
    with _lock:
        if models is None:
            targets = [model for model, found in list(_watches.items()) if found.run is run]
        else:
            targets = list(models) if isinstance(models, (list, tuple)) else [models]
        for model in targets:
            try:
                found = _watches.get(model)
            except TypeError:  # not hashable, so never watched
                continue
            if found is not None and found.run is run:
                del _watches[model]
                found.remove()


def _parse_log(log: object) -> tuple[bool, bool]:
    if log is None:
        return False, False
    if isinstance(log, str) and log in ("gradients", "parameters", "all"):
        return log in ("gradients", "all"), log in ("parameters", "all")
    raise ValueError(f"watch log must be one of 'gradients', 'parameters', 'all' or None, got {log!r}")


def _parse_freq(log_freq: object) -> int:
    if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
        raise ValueError(f"watch log_freq must be a positive int (backward passes between log points), "
                         f"got {log_freq!r}")
    return log_freq


class _Watch:
    """The hooks of one watched model and the state between backward passes.

    Disarmed (most backward passes): one hook on the "sentinel" parameter counts backward passes. The
    backward pass before a log point queues ``_end``, which arms a collector hook on every parameter;
    the first collector of a backward pass counts it and queues ``_end`` again, which logs and disarms.
    The sentinel is the parameter whose gradient arrived first in the first backward pass (the layer
    closest to the loss, used by every pass); until then the watch starts armed.
    """

    def __init__(self, run: Run, model: Any, index: int, *, gradients: bool, parameters: bool, freq: int,
                 histograms: bool) -> None:
        import torch

        self.run = run
        self.index = index
        self.gradients = gradients
        self.parameters = parameters
        self.freq = freq
        self.histograms = histograms
        self._model = weakref.ref(model)
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params: list[Any] = [p for _, p in named]
        graph = f"graph_{index}/" if index else ""
        self.global_key = f"gradients/{graph}global_norm"
        self.grad_keys = [f"gradients/{graph}norm/{name}" for name, _ in named]
        self.param_keys = [f"parameters/{graph}norm/{name}" for name, _ in named]
        self.grad_hist_keys = [f"gradients/{graph}hist/{name}" for name, _ in named]
        self.param_hist_keys = [f"parameters/{graph}hist/{name}" for name, _ in named]
        self.count = 0
        # Gradients need the hooks armed one backward pass ahead; parameter norms are read at its end.
        self._ahead = 1 if gradients else 0
        self._queue_callback: Callable[[Callable[[], None]], None] = (
            torch.autograd.Variable._execution_engine.queue_callback)
        self._sentinel: int | None = None
        self._sentinel_handle: Any = None
        self._collectors: list[Any] | None = None
        self._forward_handle: Any = None
        self._start_lock = threading.Lock()
        self._in_backward = False
        self._logging = False
        self._broken = False
        self._grad_norms: list[Any] = [None] * len(self.params)
        self._grad_hists: list[Any] = [None] * len(self.params)
        self._open_row: Any = None
        self._open_step = -1

    # -- hooks -------------------------------------------------------------------------------------
    def install(self) -> None:
        self._arm()

    def remove(self) -> None:
        """Remove every hook (the watch is dead afterwards)."""
        self._broken = True
        for handle in [self._sentinel_handle, self._forward_handle, *(self._collectors or [])]:
            if handle is not None:
                handle.remove()
        self._sentinel_handle = self._forward_handle = self._collectors = None

    def _arm(self) -> None:
        if self._sentinel_handle is not None:
            self._sentinel_handle.remove()
            self._sentinel_handle = None
        self._collectors = [p.register_hook(functools.partial(self._collect, i)) for i, p in enumerate(self.params)]
        model = self._model()
        if model is not None:
            self._forward_handle = model.register_forward_pre_hook(_ForwardHook(self))

    def _disarm(self) -> None:
        for handle in self._collectors or []:
            handle.remove()
        self._collectors = None
        if self._forward_handle is not None:
            self._forward_handle.remove()
            self._forward_handle = None
        if self._sentinel is not None and self._sentinel_handle is None:
            self._sentinel_handle = self.params[self._sentinel].register_hook(self._count)

    def _count(self, grad: Any) -> None:
        """The sentinel: the only code that runs in a backward pass between log points."""
        n = self.count + 1
        self.count = n
        if (n + self._ahead) % self.freq == 0:
            self._logging = n % self.freq == 0  # parameters only: log at the end of this pass
            try:
                self._queue_callback(self._end)
            except Exception as exc:
                log_once("watch-error", "runwatch.watch skipped a log point after an internal error: %r", exc)

    def _collect(self, i: int, grad: Any) -> None:
        """An armed hook: the first one of a backward pass counts it; each takes its gradient's norm."""
        if self._broken:
            return
        try:
            if not self._in_backward:
                with self._start_lock:  # CUDA runs hooks of different devices on different threads
                    if not self._in_backward:
                        self._in_backward = True
                        n = self.count + 1
                        self.count = n
                        self._logging = n % self.freq == 0
                        if self._sentinel is None:
                            self._sentinel = i
                        self._queue_callback(self._end)
            if self._logging and self.gradients:
                g = grad.detach()
                self._grad_norms[i] = _norm(g)
                if self.histograms:
                    self._grad_hists[i] = _histogram_parts(g)
        except Exception as exc:
            self._broken = True  # hooks are removed at the end of the pass, not while autograd runs them
            log_once("watch-error", "runwatch.watch stopped after an internal error: %r", exc)

    def _reset(self) -> None:
        self._in_backward = False
        self._logging = False
        self._grad_norms = [None] * len(self.params)
        self._grad_hists = [None] * len(self.params)

    def _end(self) -> None:
        """End of a backward pass that was due: log, then arm or disarm for the next one."""
        logging = self._logging
        self._in_backward = False
        self._logging = False
        try:
            if self._broken or self.run.finished:
                self._retire()
                return
            if logging:
                self._flush()
            armed = self.gradients and (self.count + 1) % self.freq == 0
            if armed and self._collectors is None:
                self._arm()
            elif not armed and self._collectors is not None:
                self._disarm()
        except Exception as exc:
            log_once("watch-error", "runwatch.watch stopped after an internal error: %r", exc)
            self._retire()

    def _retire(self) -> None:
        self.remove()
        model = self._model()
        with _lock:
            if model is not None and _watches.get(model) is self:
                del _watches[model]

    # -- logging -----------------------------------------------------------------------------------
    def _flush(self) -> None:
        import torch

        keys: list[str] = []
        norms: list[Any] = []
        if self.gradients:
            for i, norm in enumerate(self._grad_norms):
                if norm is not None:
                    keys.append(self.grad_keys[i])
                    norms.append(norm)
        grad_count = len(norms)
        if self.parameters:
            with torch.no_grad():
                norms += _norms(self.params)
            keys += self.param_keys
        values = _floats(norms)
        data: dict[str, Any] = {}
        if grad_count:
            # hypot: no overflow for huge norms; inf if any is inf, else NaN if any is NaN.
            data[self.global_key] = math.hypot(*values[:grad_count])
        data.update(zip(keys, values, strict=True))
        if self.histograms:
            data.update(self._histograms())
        self._grad_norms = [None] * len(self.params)
        self._grad_hists = [None] * len(self.params)
        if data:
            self._log(data)

    def _histograms(self) -> dict[str, Any]:
        import torch

        try:
            from .histogram import Histogram
        except ImportError as exc:  # pragma: no cover - the SDK ships it
            log_once("watch-histogram", "runwatch.watch: histograms are unavailable: %r", exc)
            return {}
        parts: list[tuple[str, Any]] = []
        for i, found in enumerate(self._grad_hists):
            if found is not None:
                parts.append((self.grad_hist_keys[i], found))
        if self.parameters:
            with torch.no_grad():
                for i, p in enumerate(self.params):
                    found = _histogram_parts(p.detach())
                    if found is not None:
                        parts.append((self.param_hist_keys[i], found))
        if not parts:
            return {}
        counts = _rows([found[0] for _, found in parts])
        bounds = _floats([t for _, found in parts for t in found[1:]])
        out: dict[str, Any] = {}
        bins = HISTOGRAM_BINS
        for j, (key, _) in enumerate(parts):
            row, lo, hi = counts[j], bounds[2 * j], bounds[2 * j + 1]
            if lo > hi:
                edges = [k / bins for k in range(bins + 1)]  # no finite value: empty bins on [0, 1]
            elif hi > lo:
                edges = [lo + (hi - lo) * k / bins for k in range(bins)] + [hi]
            else:
                edges = [lo - 0.5 + k / bins for k in range(bins + 1)]  # numpy's range for a single value
            try:
                histogram = Histogram(np_histogram=(row[:bins], edges))
            except ValueError:
                continue  # a range too wide for float edges: leave this one out
            histogram.nonfinite = {"nan": int(row[bins]), "inf": int(row[bins + 1]), "-inf": int(row[bins + 2])}
            out[key] = histogram
        return out

    def _log(self, data: dict[str, Any]) -> None:
        run = self.run
        if self._open_row is not None and run._pending is self._open_row and run._step == self._open_step:
            # Nothing was committed since our last values joined this row: send it now, at the same step,
            # rather than overwrite them (the service merges points by key and step).
            run._commit_pending()
        run.log(data, commit=False)
        self._open_row = run._pending
        self._open_step = run._step


class _ForwardHook:
    """The model's forward pre-hook while a watch is armed.

    A backward pass that raised (an OOM a training loop catches and skips) never runs its end callback;
    the next forward pass drops its partial data, or no backward pass would ever be counted again. A copy
    of the model (``copy.deepcopy`` for an EMA model) or a pickle (``torch.save(model)``) gets a no-op in
    its place instead of the watch and its run.
    """

    __slots__ = ("watch",)

    def __init__(self, watch: _Watch) -> None:
        self.watch = watch

    def __call__(self, module: Any, args: Any) -> None:
        if self.watch._in_backward:
            self.watch._reset()

    def __deepcopy__(self, memo: dict[int, Any]) -> _NoHook:
        return _NoHook()

    def __reduce__(self) -> tuple[type[_NoHook], tuple[()]]:
        return _NoHook, ()


class _NoHook:
    """What copies and pickles of a watched model hold instead of :class:`_ForwardHook`."""

    def __call__(self, module: Any, args: Any) -> None:
        return None


# -- tensor helpers (torch is imported by then: they run inside its hooks) ---------------------------
def _norm(t: Any) -> Any:
    """The L2 norm of ``t`` as a 0-d tensor on its device (no sync); half precision summed in float32."""
    import torch

    if t.is_sparse:
        t = t.coalesce().values()
    if t.dtype in (torch.float16, torch.bfloat16):
        return torch.linalg.vector_norm(t, dtype=torch.float32)
    return torch.linalg.vector_norm(t)


def _norms(tensors: list[Any]) -> list[Any]:
    """Norms of many tensors: one fused ``_foreach_norm`` when they allow it."""
    import torch

    plain = [t.detach() for t in tensors]
    foreach = getattr(torch, "_foreach_norm", None)
    if foreach is not None and not any(t.is_sparse or t.dtype in (torch.float16, torch.bfloat16) for t in plain):
        try:
            return list(foreach(plain))
        except RuntimeError:
            pass
    return [_norm(t) for t in plain]


def _floats(tensors: list[Any]) -> list[float]:
    """0-d tensors -> floats: one ``stack(...).tolist()`` (one device sync) per device."""
    return [float(v) for v in _rows(tensors)]


def _rows(tensors: list[Any]) -> list[Any]:
    """``tensor.tolist()`` of each of ``tensors`` (same shapes), read back with one sync per device."""
    import torch

    if not tensors:
        return []
    device = tensors[0].device
    if all(t.device == device for t in tensors):
        return list(torch.stack(tensors).tolist())
    out: list[Any] = [None] * len(tensors)
    groups: dict[Any, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(t.device, []).append(i)
    for indices in groups.values():
        for i, value in zip(indices, torch.stack([tensors[i] for i in indices]).tolist(), strict=True):
            out[i] = value
    return out


def _histogram_parts(t: Any) -> tuple[Any, Any, Any] | None:
    """(counts of the 64 bins then NaN, +inf, -inf counts; smallest; largest finite value), on ``t``'s device.

    No device sync: the bin of each value comes from arithmetic on the device's min/max, so nothing is
    read back until the flush reads every histogram at once. None for an empty tensor.
    """
    import torch

    if t.is_sparse:
        t = t.coalesce().values()
    flat = t.reshape(-1)
    if flat.numel() == 0:
        return None
    if flat.dtype != torch.float64:
        flat = flat.float()
    bins = HISTOGRAM_BINS
    finite = torch.isfinite(flat)
    lo = torch.where(finite, flat, math.inf).amin()
    hi = torch.where(finite, flat, -math.inf).amax()
    span = hi - lo
    wide = span > 0
    start = torch.where(wide, lo, lo - 0.5)
    width = torch.where(wide, span, 1.0) / bins
    index = ((flat - start) / width).floor().clamp(0, bins - 1)
    index = torch.where(finite, index, float(bins)).long()
    counts = torch.bincount(index, minlength=bins + 1)[:bins]
    special = torch.stack([torch.isnan(flat).sum(), (flat == math.inf).sum(), (flat == -math.inf).sum()])
    return torch.cat([counts, special]), lo, hi


def _active_watches(run: Run) -> list[Any]:
    """The models ``run`` watches (for tests and tools)."""
    with _lock:
        return [model for model, found in list(_watches.items()) if found.run is run]

