"""``Table`` and ``Image`` (pure-python PNG)."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import pytest
import runwatch
from _sdkutil import history, offline
from runwatch.media import encode_png


def decode_png(png: bytes) -> tuple[int, int, int, int, bytes]:
    """(width, height, bit depth, colour type, raw scanlines) of a PNG we wrote."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert png[12:16] == b"IHDR"
    w, h, depth, ctype, _, _, _ = struct.unpack(">IIBBBBB", ihdr)
    return w, h, depth, ctype, zlib.decompress(idat)


def test_rgb_uint8_image_round_trips_pixels() -> None:
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    img = runwatch.Image(arr, caption="c")
    w, h, depth, ctype, raw = decode_png(img.png)
    assert (w, h, depth, ctype) == (3, 2, 8, 2)
    assert raw == b"\x00" + bytes(range(0, 9)) + b"\x00" + bytes(range(9, 18))


def test_float_grey_image_is_scaled_to_255() -> None:
    arr = np.array([[0.0, 1.0], [0.5, -0.5]])
    w, h, _, ctype, raw = decode_png(runwatch.Image(arr).png)
    assert (w, h, ctype) == (2, 2, 0)
    assert raw == b"\x00\x00\xff\x00\x80\x00"


def test_floats_already_on_the_255_scale_are_kept() -> None:
    # The W&B quickstart passes `img * 255` as floats.
    arr = np.array([[0.0, 127.5], [255.0, 300.0]])
    raw = decode_png(runwatch.Image(arr).png)[4]
    assert raw == b"\x00\x00\x80\x00\xff\xff"


def test_rgba_and_single_channel_shapes() -> None:
    assert decode_png(runwatch.Image(np.zeros((1, 1, 4), dtype=np.uint8)).png)[3] == 6
    assert decode_png(runwatch.Image(np.zeros((2, 2, 1), dtype=np.uint8)).png)[3] == 0
    with pytest.raises(ValueError):
        runwatch.Image(np.zeros((2, 2, 5)))
    with pytest.raises(ValueError):
        runwatch.Image(np.zeros(4))


def test_image_from_png_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.png"
    path.write_bytes(encode_png(b"\x01\x02\x03\x04\x05\x06", 2, 1, 3))
    img = runwatch.Image(str(path))
    assert (img.width, img.height) == (2, 1)
    assert img.png == path.read_bytes()


def test_table_rows_checked_and_logged_with_image_cells() -> None:
    t = runwatch.Table(columns=["a", "b"], data=[[1, "x"]])
    with pytest.raises(ValueError, match="2 columns"):
        t.add_data(1, 2, 3)
    img = runwatch.Image(np.ones((1, 1)), caption="one")
    t.add_data(2.5, img)
    run = offline()
    run.log({"preds": t, "pic": img})
    run.finish()
    data = history(run)[0]["data"]
    assert data["preds"]["_type"] == "table" and data["preds"]["columns"] == ["a", "b"]
    assert data["preds"]["data"][0] == [1, "x"]
    cell = data["preds"]["data"][1][1]
    assert cell["_type"] == "image" and cell["caption"] == "one"
    assert data["pic"]["width"] == 1 and base64.b64decode(data["pic"]["data"])[:4] == b"\x89PNG"


def test_table_from_dataframe_like() -> None:
    class DF:
        columns = ["x", "y"]

        def itertuples(self, index: bool, name: None) -> list[tuple[int, int]]:
            return [(1, 2), (3, 4)]

    t = runwatch.Table(dataframe=DF())
    assert t.columns == ["x", "y"] and t.data == [[1, 2], [3, 4]]
