"""System metrics (extra ``runwatch[system]``: psutil, nvidia-ml-py).

On by default when psutil can be imported (silently off when it cannot); off with
``runwatch.init(settings={"system_metrics": False})`` or the env var ``RUNWATCH_SYSTEM_METRICS=0``.
Asking for them explicitly (``True`` / ``=1``) without psutil warns once. Every 15 s the sender logs
``system/cpu_percent``, ``system/memory_percent``, ``system/disk_percent`` and per GPU
``system/gpu.N.utilization``, ``system/gpu.N.memory_percent``, ``system/gpu.N.temperature`` (charted under
``system/``) as ordinary history points at the current step (their own record: the service merges
points by (run, key, step)).
"""

from __future__ import annotations

import os
from typing import Any

from ._log import log_once

__all__ = ["SystemMonitor"]


class SystemMonitor:
    """Samples host metrics; GPUs are optional (no NVML, no GPU keys)."""

    def __init__(self, psutil: Any, nvml: Any | None, gpu_count: int, disk_path: str) -> None:
        self._psutil = psutil
        self._nvml = nvml
        self._gpu_count = gpu_count
        self._disk_path = disk_path
        psutil.cpu_percent(interval=None)  # the first call only primes the counter

    @classmethod
    def create(cls, *, warn: bool = True) -> SystemMonitor | None:
        """A monitor, or None without psutil (warned once when ``warn``: the user asked for metrics)."""
        try:
            import psutil
        except ImportError:
            if warn:
                log_once(
                    "system-missing",
                    "runwatch: system metrics need psutil: pip install 'runwatch[system]'",
                )
            return None
        nvml = None
        count = 0
        try:
            import pynvml

            pynvml.nvmlInit()
            count = int(pynvml.nvmlDeviceGetCount())
            nvml = pynvml
        except Exception:  # no package, no driver or no GPU: CPU metrics only
            nvml = None
        return cls(psutil, nvml, count, os.getcwd())

    def sample(self) -> dict[str, Any]:
        p = self._psutil
        out: dict[str, Any] = {
            "system/cpu_percent": float(p.cpu_percent(interval=None)),
            "system/memory_percent": float(p.virtual_memory().percent),
        }
        try:
            out["system/disk_percent"] = float(p.disk_usage(self._disk_path).percent)
        except OSError:
            pass
        nvml: Any = self._nvml
        for i in range(self._gpu_count if nvml is not None else 0):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                util = nvml.nvmlDeviceGetUtilizationRates(handle)
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
                temp = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            except Exception as exc:
                log_once("nvml", "runwatch: reading GPU %d failed: %r", i, exc)
                continue
            out[f"system/gpu.{i}.utilization"] = float(util.gpu)
            out[f"system/gpu.{i}.memory_percent"] = 100.0 * float(mem.used) / float(mem.total or 1)
            out[f"system/gpu.{i}.temperature"] = float(temp)
        return out
