"""Turning logged Python values into protocol JSON (runs on the sender thread, never the caller's).

- int/float -> number; bool -> 0/1 (rules compare numbers); non-finite floats -> ``"NaN"``,
  ``"Infinity"``, ``"-Infinity"`` (JSON has no NaN; a bare string in ``data`` always means one of these).
- numpy scalars, size-1 arrays and torch tensors with one element -> their Python number, found by duck
  typing (``.item()``, ``.size``/``.numel()``, ``.detach()``) so numpy and torch are never imported.
- ``Table``/``Image`` -> their media objects; ``Histogram`` -> histogram media; ``plot.*`` charts ->
  table media with a ``chart`` spec; a matplotlib figure (or ``pyplot``) or PIL image logged directly ->
  image media; ``str`` -> text media; lists, None, other -> json media.
- Nested dicts flatten with dots: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``.

The sender's fast path: a row whose values are all finite floats or ints (the common ``{"loss": l}``) is
already its wire form (``plain_rows`` checks a whole batch in C-level loops); ``encode_records`` encodes a
batch of records with one encoder call (``orjson`` when importable, else the stdlib C encoder) and splits
the result into one JSON document per record; ``encode_history`` does the same for history records of
plain rows without building a dict per record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from typing import Any

from .histogram import Histogram
from .media import Image, Table, render_png
from .plot import CustomChart

__all__ = [
    "check_keys",
    "dumps",
    "encode_float",
    "encode_history",
    "encode_records",
    "flatten",
    "json_safe",
    "normalize",
    "normalize_row",
    "plain_rows",
    "decode_float",
    "snapshot_figures",
]

_INF = math.inf
_NINF = -math.inf
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Large arrays are stored as json media; past this many elements only their shape is kept, so a
# stray activation tensor cannot blow up a batch.
_MAX_ARRAY_ELEMENTS = 10_000


def encode_float(v: float) -> float | str:
    """A float as it travels on the wire (non-finite values become strings)."""
    if v != v:
        return "NaN"
    if v == _INF:
        return "Infinity"
    if v == _NINF:
        return "-Infinity"
    return v


def decode_float(v: Any) -> Any:
    """Inverse of ``encode_float`` for values read back from the service."""
    if isinstance(v, str) and v in _NON_FINITE:
        return _NON_FINITE[v]
    return v


def check_keys(data: Mapping[Any, Any], prefix: str = "") -> None:
    """Raise ``TypeError`` for a non-str key anywhere in ``data`` (nested dicts included)."""
    for k, v in data.items():
        if type(k) is not str and not isinstance(k, str):
            where = f" under {prefix!r}" if prefix else ""
            raise TypeError(f"runwatch.log keys must be str, got {type(k).__name__} {k!r}{where}")
        if isinstance(v, Mapping):
            check_keys(v, f"{prefix}{k}.")


def flatten(data: Mapping[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Flatten nested mappings with dots; ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    if out is None:
        out = {}
    for k, v in data.items():
        if isinstance(v, Mapping) and not isinstance(v, (Table, Image)):
            flatten(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = v
    return out


def _scalar_of(v: Any) -> tuple[bool, Any]:
    """(True, python number) when ``v`` is a one-element array/tensor/numpy scalar, else (False, None)."""
    item = getattr(v, "item", None)
    if item is None or not callable(item):
        return False, None
    numel = getattr(v, "numel", None)
    if callable(numel):  # torch-like: numel() is the element count, detach() before item()
        if numel() != 1:
            return False, None
        detach = getattr(v, "detach", None)
        return True, (detach() if callable(detach) else v).item()
    size = getattr(v, "size", 1)  # numpy: .size is an int; numpy scalars have size 1
    if isinstance(size, int) and size != 1:
        return False, None
    return True, item()


def normalize(v: Any) -> Any:
    """One logged value -> its wire form (number, non-finite string, or media object)."""
    t = type(v)
    if t is float:
        return v if -_INF < v < _INF else encode_float(v)
    if t is int:
        return v
    if t is bool:
        return int(v)
    if t is str:
        return {"_type": "text", "value": v}
    if isinstance(v, Image):
        return v.to_json()
    if isinstance(v, Table):
        return v.to_json(_cell)
    if isinstance(v, Histogram):
        return v.to_json()
    if isinstance(v, CustomChart):
        return v.to_json(_cell)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return encode_float(float(v))
    ok, scalar = _scalar_of(v)
    if ok:
        if isinstance(scalar, (bool, int, float)):
            return normalize(scalar)
        return {"_type": "json", "value": json_safe(scalar)}
    png = render_png(v)
    if png is not None:
        return Image(png).to_json()
    return {"_type": "json", "value": json_safe(v)}


_PLAIN = frozenset({float, int, bool, str, type(None), Image, Table, Histogram, CustomChart})


def snapshot_figures(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with matplotlib figures, ``pyplot`` and PIL images replaced by ``Image`` (rendered now).

    Optional, for the caller's thread at ``log`` time: a figure logged directly is otherwise rendered
    when the sender encodes the row, by which time a training script may have cleared or redrawn it.
    Returns ``data`` itself (no copy) when it holds none, at the cost of one type check per value.
    """
    out = data
    for k, v in data.items():
        if type(v) in _PLAIN:
            continue
        png = render_png(v)
        if png is not None:
            if out is data:
                out = dict(data)
            out[k] = Image(png)
    return out


def _cell(v: Any) -> Any:
    """A table cell: plain JSON where possible (strings stay strings inside tables), media otherwise."""
    if isinstance(v, str):
        return v
    if isinstance(v, (Image, Table, Histogram)):
        return normalize(v)
    return json_safe(v)


def json_safe(v: Any, _depth: int = 0) -> Any:
    """Any value -> JSON-encodable (non-finite floats as strings, arrays as lists, else ``str()``)."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return encode_float(v)
    if _depth > 20:
        return str(v)
    if isinstance(v, (Image, Table, Histogram, CustomChart)):
        return normalize(v)
    if isinstance(v, Mapping):
        return {str(k): json_safe(x, _depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [json_safe(x, _depth + 1) for x in v]
    ok, scalar = _scalar_of(v)
    if ok:
        return json_safe(scalar, _depth + 1)
    if hasattr(v, "tolist") and hasattr(v, "shape"):
        size = getattr(v, "size", None)
        if isinstance(size, int) and size > _MAX_ARRAY_ELEMENTS:
            return {"shape": list(v.shape), "dtype": str(getattr(v, "dtype", "")), "truncated": True}
        if hasattr(v, "detach"):
            v = v.detach().cpu()
        return json_safe(v.tolist(), _depth + 1)
    if hasattr(v, "__dict__") and type(v).__module__ == "argparse":
        return json_safe(vars(v), _depth + 1)
    return str(v)


def normalize_row(data: Mapping[str, Any]) -> dict[str, Any]:
    """A committed row -> wire ``data`` (flattened, every value normalised)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if type(v) is float:
            out[k] = v if -_INF < v < _INF else encode_float(v)
        elif type(v) is int:
            out[k] = v
        elif isinstance(v, Mapping) and not isinstance(v, (Table, Image)):
            for fk, fv in flatten(v, f"{k}.").items():
                out[fk] = normalize(fv)
        else:
            out[k] = normalize(v)
    return out


def _no_default(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


# json.dumps() with options builds a new encoder on every call, which costs more than encoding a small
# record; build the C encoder once (no circular check: our records are trees we built ourselves).
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_encoder is not None:
    _C_ENCODE = _c_encoder(None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, False)

    def _encode(obj: Any) -> str:
        return "".join(_C_ENCODE(obj, 0))

else:  # pragma: no cover - pure-Python json build
    _encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False,  # type: ignore[assignment]
                               ensure_ascii=False).encode


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes; non-finite floats raise ValueError here (they must already be strings)."""
    return _encode(obj).encode("utf-8")


_batch_dumps: Callable[[Any], bytes]
try:  # optional speed-up (~20x faster than the stdlib encoder on a batch of records); never required
    from orjson import dumps as _batch_dumps
except ImportError:  # pragma: no cover - depends on the environment
    _batch_dumps = dumps

_PLAIN_NUMBERS = frozenset((float, int))
# Between two records of an encoded list; no other place in a batch of plain records can hold it: a '"'
# inside a JSON string is always escaped, and plain rows have no nested objects.
_BETWEEN = b'},{"seq":'
_BETWEEN_LINES = b'}\n{"seq":'


def plain_rows(rows: Sequence[Mapping[str, Any]]) -> bool:
    """True when every value of every row is a finite ``float`` or an ``int`` (not ``bool``, no subclass):
    such rows are already their wire form and need no ``normalize_row``. C-level loops only."""
    try:
        values: list[Any] = list(chain.from_iterable(map(dict.values, rows)))  # type: ignore[arg-type]
        # sum() of finite numbers is finite unless it overflows, which only sends the rows the slow way.
        return _PLAIN_NUMBERS.issuperset(map(type, values)) and math.isfinite(sum(values))
    except (TypeError, ValueError, OverflowError):
        return False


def encode_records(records: Sequence[dict[str, Any]]) -> list[bytes]:
    """Compact JSON of each record (each a dict whose first key is ``"seq"``), with one encoder call.

    The records are encoded as one list and split at the record boundaries; when the split does not give
    exactly one part per record (a nested value holding the boundary text), each record is encoded on its
    own. Non-finite floats must already be strings. Raises TypeError/ValueError like ``dumps``.
    """
    if not records:
        return []
    blob = _batch_dumps(records)
    if blob.count(_BETWEEN) == len(records) - 1:
        # No raw newline in compact JSON (strings escape it), so the lines are exactly the records.
        return blob[1:-1].replace(_BETWEEN, _BETWEEN_LINES).split(b"\n")
    return [_batch_dumps(r) for r in records]


# A history record around its columns, in ``Sender``'s key order.
_HISTORY_LINE = b'{"seq":%b,"type":"history","step":%b,"timestamp":%b,"runtime":%b,"data":{%b}}'


def encode_history(seqs: Sequence[int], steps: Sequence[int], stamps: Sequence[float],
                   runtimes: Sequence[float], rows: Sequence[Mapping[str, Any]]) -> list[bytes] | None:
    """History records of ``plain_rows``, byte for byte what ``encode_records`` makes of
    ``{"seq", "type": "history", "step", "timestamp", "runtime", "data"}`` dicts, with one encoder call
    per column and no Python code per record; None when a column does not split cleanly (the caller
    then takes ``encode_records``)."""
    n = len(rows)
    if not n:
        return []
    try:
        if not (math.isfinite(sum(stamps)) and math.isfinite(sum(runtimes))):
            return None
        columns = [_numbers(seqs), _numbers(steps), _numbers(stamps), _numbers(runtimes)]
        # Rows are flat, so "},{" separates them, unless a key holds that text: then the count is off.
        data = _batch_dumps(list(rows))[2:-2].split(b"},{")
    except (TypeError, ValueError, OverflowError):
        return None
    if len(data) != n or any(len(column) != n for column in columns):
        return None
    return list(map(_HISTORY_LINE.__mod__, zip(*columns, data, strict=True)))


def _numbers(values: Sequence[float]) -> list[bytes]:
    return _batch_dumps(list(values))[1:-1].split(b",")
