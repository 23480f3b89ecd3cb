"""Turning logged Python values into protocol JSON (runs on the sender thread, never the caller's).

- int/float -> number; bool -> 0/1 (rules compare numbers); non-finite floats -> ``"NaN"``,
  ``"Infinity"``, ``"-Infinity"`` (JSON has no NaN; a bare string in ``data`` always means one of these).
- numpy scalars, size-1 arrays and torch tensors with one element -> their Python number, found by duck
  typing (``.item()``, ``.size``/``.numel()``, ``.detach()``) so numpy and torch are never imported.
- ``Table``/``Image`` -> their media objects; ``Histogram`` -> histogram media; ``plot.*`` charts ->
  table media with a ``chart`` spec; a matplotlib figure (or ``pyplot``) or PIL image logged directly ->
  image media; ``str`` -> text media; lists, None, other -> json media.
- Nested dicts flatten with dots: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .histogram import Histogram
from .media import Image, Table, render_png
from .plot import CustomChart

__all__ = [
    "check_keys",
    "dumps",
    "encode_float",
    "flatten",
    "json_safe",
    "normalize",
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
