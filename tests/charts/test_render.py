"""``render_png``: pixel checks on the rendered PNG (the threshold's row has its colour, the fired marker is in
its step's column, NaN/inf on the edges, a lone spike in 100,000 points visible), the image's size and
background, and renders that do not leak into each other (threads, the reused figures)."""

from __future__ import annotations

import io
import math
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from PIL import Image

from alerts.charts.data import ChartData, Line, Marker, Panel, Trace, chart_data
from alerts.charts.render import BACKGROUND, FIRED, HEIGHT, NONFINITE, THRESHOLD, WIDTH, colour_of, render, render_png
from alerts.model import Alert, AlertSource, AlertStatus, Severity
from alerts.presentation import alert_object
from alerts.storage import Store
from tests.charts.pictures import column_share, decode, found_near, row_share, save, write_long_run

STEPS = tuple(float(step) for step in range(100))
VALUES = tuple(0.9 - 0.007 * step for step in range(100))  # 0.9 down to 0.207: crosses 0.3 near step 86


def chart(*panels: Panel, **fields: object) -> ChartData:
    return ChartData(title="bright-sun-12 · val/acc", subtitle="acc-floor: val/acc < 0.3 · fired at step 87",
                     panels=panels, **fields)  # type: ignore[arg-type]


def accuracy(**fields: object) -> Panel:
    return Panel(title="", traces=(Trace("val/acc", 0, STEPS, VALUES),), **fields)  # type: ignore[arg-type]


def test_the_threshold_line_is_drawn_along_its_row(tmp_path: Path) -> None:
    png, layout = render(chart(accuracy(lines=(Line(0.3, "threshold < 0.3"),))))
    save(png, tmp_path, "pixels-threshold")
    pixels, (panel,) = decode(png), layout.panels
    _, row = panel.pixel(0, 0.3)
    assert row_share(pixels, panel, row, THRESHOLD) > 0.5  # dashed 6 on, 3 off
    for elsewhere in (0.5, 0.7, 0.1):
        if panel.y_range[0] < elsewhere < panel.y_range[1]:
            assert row_share(pixels, panel, panel.pixel(0, elsewhere)[1], THRESHOLD) < 0.02


def test_the_fired_marker_is_in_its_step_column(tmp_path: Path) -> None:
    marker = Marker(87.0, VALUES[87], "fired at step 87", "fired", 0)
    png, layout = render(chart(accuracy(markers=(marker,))))
    save(png, tmp_path, "pixels-fired")
    pixels, (panel,) = decode(png), layout.panels
    column, row = panel.pixel(87, VALUES[87])
    assert column_share(pixels, panel, column, FIRED) > 0.4  # dotted 2 on, 2 off
    for step in (10, 50, 75):
        assert column_share(pixels, panel, panel.pixel(step, 0)[0], FIRED) < 0.02
    assert found_near(pixels, column, row, colour_of(0), radius=2)  # the dot on the line


def test_markers_land_in_the_enlarged_panel_too(tmp_path: Path) -> None:
    marker = Marker(87.0, VALUES[87], "fired at step 87", "fired", 0)
    zoom = Panel(title="steps 80–99, enlarged", traces=(Trace("val/acc", 0, STEPS[80:], VALUES[80:]),),
                 markers=(marker,), lines=(Line(0.3, "t"),), x_range=(80.0, 99.0), weight=2.0)
    png, layout = render(chart(accuracy(markers=(marker,), enlarged=(80.0, 99.0), weight=3.0), zoom))
    save(png, tmp_path, "pixels-enlarged")
    pixels, (whole, enlarged) = decode(png), layout.panels
    assert whole.box[2] < enlarged.box[0]
    assert enlarged.x_range == (80.0, 99.0)
    column, row = enlarged.pixel(87, VALUES[87])
    assert column_share(pixels, enlarged, column, FIRED) > 0.4
    assert row_share(pixels, enlarged, enlarged.pixel(0, 0.3)[1], THRESHOLD) > 0.5
    assert found_near(pixels, column, row, colour_of(0), radius=2)


def test_nan_and_inf_are_marked_on_the_panel_edges(tmp_path: Path) -> None:
    values = tuple(math.nan if step in (20, 40, 70) else value for step, value in zip(STEPS, VALUES, strict=True))
    trace = Trace("val/acc", 0, STEPS, values, nonfinite=((20.0, "nan"), (40.0, "inf"), (70.0, "-inf")))
    png, layout = render(chart(Panel(title="", traces=(trace,))))
    save(png, tmp_path, "pixels-nonfinite")
    pixels, (panel,) = decode(png), layout.panels
    left, top, right, bottom = panel.box
    for step, edge in ((20, top), (40, top), (70, bottom)):
        column = panel.pixel(step, 0)[0]
        assert found_near(pixels, column, edge, NONFINITE, radius=3), step
        assert not found_near(pixels, column, bottom if edge == top else top, NONFINITE, radius=3), step


def test_a_chart_is_a_small_opaque_800_by_300_png(tmp_path: Path) -> None:
    png = render_png(chart(accuracy(lines=(Line(0.3, "threshold < 0.3"),))))
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (WIDTH, HEIGHT) == (800, 300)
        assert image.format == "PNG" and "transparency" not in image.info and image.mode in ("P", "RGB")
    pixels = decode(png)
    for corner in (pixels[0, 0], pixels[-1, -1], pixels[0, -1], pixels[-1, 0]):
        assert tuple(corner) == (int(BACKGROUND[1:3], 16),) * 3
    assert len(png) < 100_000


def test_ten_runs_get_ten_colours_and_the_rest_are_counted(tmp_path: Path) -> None:
    traces = tuple(Trace(f"run-{i}", i, STEPS, tuple(v + 0.05 * i for v in VALUES)) for i in range(10))
    data = chart(Panel(title="", traces=traces), legend=tuple((f"run-{i}", i) for i in range(10)), more=3)
    png = render_png(data)
    save(png, tmp_path, "pixels-ten-runs")
    assert len({colour_of(i) for i in range(10)}) == 10
    pixels = decode(png)
    for i in range(10):
        assert found_near(pixels, 400, 150, colour_of(i), radius=400), i  # each run's colour is drawn


async def test_a_spike_in_100000_points_stays_visible(store: Store, tmp_path: Path) -> None:
    steps = 100_000
    run = await write_long_run(store, steps)
    alert = Alert(id="a", fingerprint="f", source=AlertSource.SDK, project="vision", title="t", text="",
                  severity=Severity.WARNING, labels={}, status=AlertStatus.FIRING, starts_at=1.0, run_pk=run.pk,
                  metric="val/acc", step=steps - 30)
    data = await chart_data(store, [], [alert_object(alert, run, "http://runwatch.test")])
    assert data is not None
    png, layout = render(data)
    save(png, tmp_path, "pixels-100k-spike")
    pixels, whole = decode(png), layout.panels[0]
    # The one point of 25.0 among values below 1: its column reaches the top of the scale.
    assert found_near(pixels, *whole.pixel(steps // 3, 25.0), colour_of(0), radius=3)
    assert not found_near(pixels, *whole.pixel(steps // 4, 25.0), colour_of(0), radius=3)
    assert found_near(pixels, whole.pixel(steps // 2, 0)[0], whole.box[1], NONFINITE, radius=3)  # the NaN
    assert found_near(pixels, whole.pixel(2 * steps // 3, 0)[0], whole.box[1], NONFINITE, radius=3)  # the inf


def test_renders_do_not_leak_into_each_other() -> None:
    """Figures are reused per thread: a render must look the same whatever was drawn before it."""
    plain = chart(accuracy(lines=(Line(0.3, "threshold < 0.3"),)))
    busy = chart(accuracy(markers=(Marker(5.0, 1e6, "fired", "fired", 0),), x_range=(50.0, 60.0)),
                 accuracy(), legend=(("a", 0), ("b", 1)), more=2)
    zoomed = chart(replace(accuracy(), enlarged=(80.0, 99.0), weight=3.0),
                   replace(accuracy(), x_range=(80.0, 99.0), weight=2.0, title="enlarged"))
    first = [render_png(data) for data in (plain, busy, zoomed)]
    assert [render_png(data) for data in (zoomed, busy, plain)] == first[::-1]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(render_png, [plain, busy, zoomed] * 4)) == first * 4


def test_chart_data_travels_to_a_worker_process_intact() -> None:
    data = chart(accuracy(lines=(Line(0.3, "t"),), markers=(Marker(87.0, None, "fired", "fired", 0),)))
    copy = pickle.loads(pickle.dumps(data))
    assert copy == data and render_png(copy) == render_png(data)
