"""Rich values for ``log``: ``Table`` and ``Image`` (PNG encoded with zlib + struct, no Pillow).

Both turn into the protocol's media objects (``{"_type": "table"|"image", ...}``) on the sender
thread, never on the caller's. ``Image`` also takes a matplotlib figure (or ``matplotlib.pyplot``, or
an Axes) and a PIL image, found by duck typing so neither library is imported here.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["Image", "Table", "encode_png", "render_png"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types by channel count: grey, grey+alpha, RGB, RGBA.
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def encode_png(pixels: bytes, width: int, height: int, channels: int) -> bytes:
    """Encode 8-bit row-major ``pixels`` (``height*width*channels`` bytes) as a PNG file."""
    if channels not in _COLOR_TYPES:
        raise ValueError(f"PNG needs 1, 2, 3 or 4 channels, got {channels}")
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError(f"expected {stride * height} pixel bytes, got {len(pixels)}")
    # Filter type 0 (None) on every scanline: simple, and zlib still compresses well.
    raw = b"".join(b"\x00" + pixels[y * stride : (y + 1) * stride] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def _array_to_pixels(array: Any) -> tuple[bytes, int, int, int]:
    """Duck-typed numpy (or nested lists) -> (uint8 bytes, width, height, channels)."""
    if hasattr(array, "detach"):  # torch tensor: move to host without importing torch
        array = array.detach().cpu().numpy()
    shape = tuple(getattr(array, "shape", ()))
    if not shape:
        raise ValueError("Image needs an HxW or HxWxC array or a path to a PNG file")
    if len(shape) == 2:
        height, width, channels = shape[0], shape[1], 1
    elif len(shape) == 3 and shape[2] in (1, 3, 4):
        height, width, channels = shape
    else:
        raise ValueError(f"Image array must be HxW or HxWxC with C in (1, 3, 4), got shape {shape}")
    kind = getattr(getattr(array, "dtype", None), "kind", "f")
    flat = array.reshape(-1).tolist()
    if kind == "f":
        # Floats in [0, 1] are scaled to 255 (SPEC); floats already on the 0..255 scale, as the W&B
        # quickstart passes them (`img * 255`), are taken as they are. Clip so noise cannot wrap around.
        scale = 255.0 if max((v for v in flat if v == v), default=0.0) <= 1.0 else 1.0
        data = bytes(min(255, max(0, int(round(v * scale)))) if v == v else 0 for v in flat)
    elif kind == "b":
        data = bytes(255 if v else 0 for v in flat)
    else:
        data = bytes(min(255, max(0, int(v))) for v in flat)
    return data, int(width), int(height), int(channels)


def _png_size(png: bytes) -> tuple[int, int]:
    if png[:8] != _PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("not a PNG file (Image accepts arrays or paths to PNG files)")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


_PIL_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}


def render_png(value: Any) -> bytes | None:
    """PNG bytes of a matplotlib figure / Axes / ``pyplot`` module or a PIL image; None for anything else.

    W&B scripts pass ``wandb.Image(fig)`` or log ``fig`` (or ``plt``) directly. Duck typed: the object's
    own ``savefig``/``save`` does the work, so matplotlib and Pillow are never imported by the SDK.
    """
    if isinstance(value, (str, bytes, bytearray, os.PathLike)):
        return None
    if isinstance(value, ModuleType):  # ``matplotlib.pyplot`` itself: its current figure
        gcf = getattr(value, "gcf", None)
        if not callable(gcf):
            return None
        value = gcf()
    elif not hasattr(value, "savefig") and hasattr(value, "get_figure") and hasattr(value, "plot"):
        value = value.get_figure()  # an Axes
    if hasattr(value, "savefig") and hasattr(value, "canvas"):
        buffer = io.BytesIO()
        value.savefig(buffer, format="png")
        return buffer.getvalue()
    if type(value).__module__.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "mode"):
        if value.mode not in _PIL_PNG_MODES:
            value = value.convert("RGBA" if "A" in value.mode else "RGB")
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    return None


class Image:
    """An image for ``log``: an HxW / HxWxC array (C = 1, 3, 4), a path to a PNG file, PNG bytes, a
    matplotlib figure (or Axes, or ``matplotlib.pyplot`` for its current figure) or a PIL image.

    Float arrays are taken to be in [0, 1] and scaled to 0..255; integer arrays are used as 0..255.
    The PNG is encoded at construction, so later changes to the array or figure do not affect the
    logged image.
    """

    def __init__(self, data_or_path: Any, caption: str | None = None) -> None:
        self.caption = caption
        if isinstance(data_or_path, (str, os.PathLike)):
            with open(data_or_path, "rb") as f:
                self.png = f.read()
            self.width, self.height = _png_size(self.png)
        elif isinstance(data_or_path, (bytes, bytearray)):
            self.png = bytes(data_or_path)
            self.width, self.height = _png_size(self.png)
        else:
            rendered = render_png(data_or_path)
            if rendered is not None:
                self.png = rendered
                self.width, self.height = _png_size(self.png)
                return
            pixels, self.width, self.height, channels = _array_to_pixels(data_or_path)
            self.png = encode_png(pixels, self.width, self.height, channels)

    def to_json(self) -> dict[str, Any]:
        """The protocol's image media object."""
        return {
            "_type": "image",
            "format": "png",
            "width": self.width,
            "height": self.height,
            "caption": self.caption,
            "data": base64.b64encode(self.png).decode("ascii"),
        }

    def __repr__(self) -> str:
        return f"Image({self.width}x{self.height}, caption={self.caption!r})"


class Table:
    """A table for ``log``: named columns and rows; cells may be numbers, strings or ``Image``.

    ``Table(columns, data)``, ``Table(dataframe=df)`` or ``add_data(*row)`` row by row. Every row must
    have one cell per column (``ValueError`` otherwise).
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        data: Iterable[Sequence[Any]] | None = None,
        dataframe: Any = None,
    ) -> None:
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.itertuples(index=False, name=None)
        rows = [list(r) for r in data] if data is not None else []
        if columns is None:
            width = len(rows[0]) if rows else 0
            columns = [f"c{i}" for i in range(width)]
        self.columns: list[str] = [str(c) for c in columns]
        self.data: list[list[Any]] = []
        for row in rows:
            self.add_data(*row)

    def add_data(self, *row: Any) -> None:
        """Append one row; it must have exactly one value per column."""
        if len(row) != len(self.columns):
            raise ValueError(
                f"Table row has {len(row)} values but the table has {len(self.columns)} columns "
                f"{self.columns}"
            )
        self.data.append(list(row))

    def to_json(self, encode_cell: Any) -> dict[str, Any]:
        """The protocol's table media object; ``encode_cell`` turns each cell into JSON."""
        return {
            "_type": "table",
            "columns": list(self.columns),
            "data": [[encode_cell(c) for c in row] for row in self.data],
        }

    def __repr__(self) -> str:
        return f"Table(columns={self.columns!r}, rows={len(self.data)})"
