"""Looking at rendered charts: decode the PNG, find a colour in a row or a column, keep the picture; and the
100,000-point run they are drawn from.

Every chart a test renders is saved in the test's folder (``tmp_path``) and, when ``RUNWATCH_CHART_OUT``
names a folder, there too, so a person can look at each rule kind's chart.
"""

from __future__ import annotations

import io
import math
import os
import random
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from alerts.charts.render import PanelLayout
from alerts.model import Run
from alerts.storage import NewRun, RecordBatch, Store

OUT_ENV = "RUNWATCH_CHART_OUT"

Pixels = NDArray[np.int16]


def save(png: bytes, folder: Path, name: str) -> Path:
    """Write ``name.png`` into ``folder`` and into ``$RUNWATCH_CHART_OUT`` if set; the first path."""
    path = folder / f"{name}.png"
    path.write_bytes(png)
    extra = os.environ.get(OUT_ENV)
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        (Path(extra) / f"{name}.png").write_bytes(png)
    return path


def decode(png: bytes) -> Pixels:
    """Height × width × RGB, as signed integers (differences do not wrap)."""
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def matches(pixels: Pixels, colour: str, tolerance: int = 40) -> NDArray[np.bool_]:
    """Where the pixels are within ``tolerance`` of ``colour`` in every channel."""
    return np.all(np.abs(pixels - np.array(rgb(colour), dtype=np.int16)) <= tolerance, axis=-1)


def row_share(pixels: Pixels, panel: PanelLayout, row: float, colour: str, *, spread: int = 1) -> float:
    """The share of the panel's plot-area columns with ``colour`` within ``spread`` rows of ``row``."""
    left, _top, right, _bottom = (round(v) for v in panel.box)
    at = round(row)
    found = matches(pixels[at - spread:at + spread + 1, left + 2:right - 1], colour).any(axis=0)
    return float(found.mean())


def column_share(pixels: Pixels, panel: PanelLayout, column: float, colour: str, *, spread: int = 1) -> float:
    """The share of the panel's plot-area rows with ``colour`` within ``spread`` columns of ``column``."""
    _left, top, _right, bottom = (round(v) for v in panel.box)
    at = round(column)
    found = matches(pixels[top + 2:bottom - 1, at - spread:at + spread + 1], colour).any(axis=1)
    return float(found.mean())


def found_near(pixels: Pixels, column: float, row: float, colour: str, *, radius: int = 4) -> bool:
    """Whether ``colour`` is drawn within ``radius`` pixels of (column, row)."""
    c, r = round(column), round(row)
    return bool(matches(pixels[max(0, r - radius):r + radius + 1, max(0, c - radius):c + radius + 1], colour).any())


async def write_long_run(store: Store, steps: int, *, run_id: str = "long") -> Run:
    """A run of ``steps`` steps written as the ingest writes them (batches of records), with a spike, a NaN
    and an inf in the middle and a drop at the end."""
    run, _ = await store.upsert_run(NewRun(project="vision", id=run_id, name="long-run", config={}, tags=[],
                                           notes=None, group=None, job_type=None, started_at=1e9, host=None,
                                           pid=None), 1e9)
    rng = random.Random(3)
    seq = 0
    for first in range(0, steps, 20_000):
        seq += 1
        batch = RecordBatch(first_seq=seq, last_seq=seq)
        for step in range(first, min(steps, first + 20_000)):
            value = 0.9 - 0.5 * step / steps + rng.uniform(-0.02, 0.02)
            if step == steps // 3:
                value = 25.0
            elif step == steps // 2:
                value = math.nan
            elif step == 2 * steps // 3:
                value = math.inf
            elif step >= steps - 40:
                value = 0.1
            batch.steps.append((step, 1e9 + step, float(step)))
            batch.points.append(("val/acc", step, 1e9 + step, value))
        applied, _ = await store.apply_records(run, batch, 1e9)
        assert applied
        run = await store.get_run("vision", run_id) or run
    return run
