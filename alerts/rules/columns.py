"""A batch's points regrouped per metric key, so the engine judges each series over a column at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class KeyColumn:
    """One key's points of a batch, in arrival order; ``indices`` are their positions in the batch."""

    key: str
    indices: Sequence[int]
    steps: Sequence[int]
    stamps: Sequence[float]
    values: Sequence[float]

    @property
    def first(self) -> int:
        return self.indices[0]


def key_columns(points: list[tuple[str, int, float, float]]) -> list[KeyColumn]:
    """The columns of ``points`` (``(key, step, timestamp, value)``), keys in first-seen order.

    An SDK batch logs the same keys in the same order at every step; such a batch is cut into strided
    slices without Python code per point. Any other batch is grouped point by point.
    """
    keys, steps, stamps, values = zip(*points, strict=True)
    count = len(keys)
    try:
        width = keys.index(keys[0], 1)
    except ValueError:
        width = count
    if count % width == 0 and keys[:width] * (count // width) == keys and len(set(keys[:width])) == width:
        return [KeyColumn(keys[j], range(j, count, width), steps[j::width], stamps[j::width], values[j::width])
                for j in range(width)]
    grouped: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        found = grouped.get(key)
        if found is None:
            grouped[key] = [index]
        else:
            found.append(index)
    return [KeyColumn(key, indices, [steps[i] for i in indices], [stamps[i] for i in indices],
                      [values[i] for i in indices]) for key, indices in grouped.items()]
