"""``Histogram``: a distribution for ``log`` (W&B's ``wandb.Histogram``), binned at construction.

``Histogram(sequence)`` bins the values like ``numpy.histogram(values, bins=num_bins)`` (equal-width
bins from the smallest to the largest value, the last bin closed); ``Histogram(np_histogram=(counts,
bin_edges))`` takes numpy's result as it is. Plain sequences need no numpy; numpy arrays and torch
tensors are binned with numpy (already imported by whoever made them).

Unlike W&B, NaN and ±inf in a sequence do not raise (one diverged value must not kill a training
loop): they are left out of the bins and counted in ``nonfinite`` (``{"nan": n, "inf": n, "-inf": n}``),
which the run page shows beside the bars.

On the wire (``{"_type": "histogram", ...}``, built on the sender thread)::

    {"_type": "histogram", "values": [counts...], "bins": [edges...], "nonfinite": {"nan": 0, "inf": 0, "-inf": 0}}

with ``len(bins) == len(values) + 1`` and at most 512 bins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["MAX_BINS", "Histogram"]

MAX_BINS = 512
"""W&B's limit (``Histogram.MAX_LENGTH``); the service refuses longer histograms."""


class Histogram:
    """A histogram for ``log``: ``Histogram(sequence=None, np_histogram=None, num_bins=64)``.

    Attributes as in W&B: ``histogram`` (the counts) and ``bins`` (the edges, one more than counts);
    also ``nonfinite``, the NaN/±inf values of ``sequence`` left out of the bins.
    """

    MAX_LENGTH = MAX_BINS

    def __init__(self, sequence: Any = None, np_histogram: Any = None, num_bins: int = 64) -> None:
        self.nonfinite: dict[str, int] = {"nan": 0, "inf": 0, "-inf": 0}
        if np_histogram is not None:
            self.histogram, self.bins = _from_np_histogram(np_histogram)
        elif sequence is not None:
            self.histogram, self.bins = _from_sequence(sequence, _check_num_bins(num_bins), self.nonfinite)
        else:
            raise ValueError("Histogram needs a sequence of numbers or np_histogram=(counts, bin_edges)")

    def to_json(self) -> dict[str, Any]:
        """The protocol's histogram media object."""
        return {"_type": "histogram", "values": list(self.histogram), "bins": list(self.bins),
                "nonfinite": dict(self.nonfinite)}

    def __repr__(self) -> str:
        nonfinite = sum(self.nonfinite.values())
        extra = f", nonfinite={nonfinite}" if nonfinite else ""
        return f"Histogram(bins={len(self.histogram)}, count={sum(self.histogram)}{extra})"


def _check_num_bins(num_bins: Any) -> int:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int):
        index = getattr(num_bins, "__index__", None)  # numpy integers
        if index is None or isinstance(num_bins, bool):
            raise TypeError(f"Histogram num_bins must be an int, got {type(num_bins).__name__} {num_bins!r}")
        num_bins = int(index())
    if not 1 <= num_bins <= MAX_BINS:
        raise ValueError(f"Histogram num_bins must be between 1 and {MAX_BINS}, got {num_bins}")
    return int(num_bins)


def _as_list(value: Any) -> list[Any]:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        found = tolist()
        return found if isinstance(found, list) else [found]
    return list(value)


def _from_np_histogram(np_histogram: Any) -> tuple[list[int | float], list[float]]:
    try:
        counts_in, edges_in = np_histogram
    except (TypeError, ValueError):
        raise ValueError("np_histogram must be a (counts, bin_edges) pair, as numpy.histogram returns") from None
    counts: list[int | float] = []
    for i, c in enumerate(_as_list(counts_in)):
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            raise ValueError(f"np_histogram counts must be finite numbers; count {i} is {c!r}")
        counts.append(c)
    edges: list[float] = []
    for i, e in enumerate(_as_list(edges_in)):
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e):
            raise ValueError(f"np_histogram bin edges must be finite numbers; edge {i} is {e!r}")
        if edges and e < edges[-1]:
            raise ValueError(f"np_histogram bin edges must not decrease; edge {i} ({e}) < edge {i - 1} ({edges[-1]})")
        edges.append(float(e))
    if not counts or len(counts) > MAX_BINS:
        raise ValueError(f"a histogram has 1 to {MAX_BINS} bins, got {len(counts)}")
    if len(edges) != len(counts) + 1:
        raise ValueError(f"np_histogram needs one more bin edge than counts: {len(counts)} counts, "
                         f"{len(edges)} edges")
    return counts, edges


def _from_sequence(sequence: Any, num_bins: int, nonfinite: dict[str, int]) -> tuple[list[int | float], list[float]]:
    array = _numpy_view(sequence)
    if array is not None:
        found = _numpy_histogram(array, num_bins, nonfinite)
        if found is not None:
            return found
        sequence = array.tolist()
    finite: list[float] = []
    for v in _flat(sequence):
        if v != v:
            nonfinite["nan"] += 1
        elif v == math.inf:
            nonfinite["inf"] += 1
        elif v == -math.inf:
            nonfinite["-inf"] += 1
        else:
            finite.append(v)
    return _bin(finite, num_bins)


def _flat(values: Any) -> Iterable[float]:
    """Every number in a (nested) sequence, as floats."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"Histogram needs numbers, got {type(values).__name__} {values!r}")
    for v in values:
        if isinstance(v, (int, float)):
            yield float(v)
            continue
        if isinstance(v, (str, bytes)):
            raise TypeError(f"Histogram needs numbers, got {type(v).__name__} {v!r}")
        try:
            number = float(v)  # numpy scalars, Decimal, Fraction, one-element arrays
        except (TypeError, ValueError):
            if not hasattr(v, "__iter__"):
                raise TypeError(f"Histogram needs numbers, got {type(v).__name__} {v!r}") from None
            yield from _flat(v)  # nested lists, rows of a 2-D array
        else:
            yield number


def _numpy_view(sequence: Any) -> Any:
    """A numpy array for numpy arrays and torch tensors (duck typed: never imports either)."""
    if hasattr(sequence, "detach") and hasattr(sequence, "cpu"):
        tensor = sequence.detach().cpu()
        try:
            return tensor.numpy()
        except (TypeError, RuntimeError):  # bfloat16 and friends have no numpy dtype
            return tensor.float().numpy()
    if hasattr(sequence, "dtype") and hasattr(sequence, "shape") and hasattr(sequence, "ravel"):
        return sequence
    return None


def _numpy_histogram(array: Any, num_bins: int,
                     nonfinite: dict[str, int]) -> tuple[list[int | float], list[float]] | None:
    import numpy as np  # the caller already holds a numpy array, so numpy is loaded

    flat = np.asarray(array).ravel()
    if flat.dtype.kind in "biu":
        flat = flat.astype(np.float64)
    if flat.dtype.kind != "f":
        return None  # object or other dtypes: the pure-Python path checks each value
    nan = np.isnan(flat)
    pos = np.isposinf(flat)
    neg = np.isneginf(flat)
    nonfinite["nan"] += int(nan.sum())
    nonfinite["inf"] += int(pos.sum())
    nonfinite["-inf"] += int(neg.sum())
    finite = flat[~(nan | pos | neg)]
    try:
        with np.errstate(all="ignore"):
            counts, edges = np.histogram(finite, bins=num_bins)
    except ValueError:  # a range too wide for float64 bin widths
        return _bin(finite.astype(np.float64).tolist(), num_bins)
    return [int(c) for c in counts.tolist()], [float(e) for e in edges.tolist()]


def _bin(values: list[float], num_bins: int) -> tuple[list[int | float], list[float]]:
    """numpy.histogram(values, bins=num_bins) in pure Python, for finite values."""
    if values:
        lo, hi = min(values), max(values)
    else:
        lo, hi = 0.0, 1.0
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = [lo + (hi - lo) * i / num_bins for i in range(num_bins + 1)]
    if not all(math.isfinite(e) for e in edges):  # hi - lo overflowed: interpolate without the difference
        edges = [lo * (1 - i / num_bins) + hi * (i / num_bins) for i in range(num_bins + 1)]
    edges[-1] = hi
    counts = [0] * num_bins
    span = hi - lo
    last = num_bins - 1
    for v in values:
        if v < lo or v > hi:
            continue
        if math.isfinite(span):
            i = int((v - lo) / span * num_bins)
        else:
            i = int((v / 2 - lo / 2) / (hi / 2 - lo / 2) * num_bins)
        i = min(max(i, 0), last)
        # Rounding may put a value next to its bin; the edges decide, as in numpy.
        if v < edges[i]:
            i -= 1
        elif i < last and v >= edges[i + 1]:
            i += 1
        counts[i] += 1
    return list(counts), edges
