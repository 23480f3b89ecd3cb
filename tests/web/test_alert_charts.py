"""Chart thumbnails on the alerts page: which rows have one, the session route that serves them, and a real
browser loading them (a real service drawing real charts; no image is ever broken)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually
from tests.web.browser import DEADLINE_MS, log_in, new_page, screenshot
from tests.web.session import logged_in

PROJECT = "thumbs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RULES = """\
rules:
  - name: acc-low
    metric: val/acc
    when: "< 0.3"
"""
LOADED_WIDTH_JS = "img => img.complete ? img.naturalWidth : -1"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("alert-charts")
    (folder / "rules.yaml").write_text(RULES)
    with running_service(folder, {"rule_files": [str(folder / "rules.yaml")]}) as started:
        yield started


@pytest.fixture(scope="module")
def key(service: ServiceProcess) -> str:
    return service.create_key(PROJECT)


@pytest.fixture(scope="module")
def alerts(service: ServiceProcess, key: str, client: httpx.Client) -> dict[str, dict[str, Any]]:
    """One alert of each kind in one run, by title: a rule's, alert() calls with and without ``chart=``
    (one naming a key the run never logged), and a Prometheus alert."""
    run_id = f"r{uuid.uuid4().hex[:8]}"
    api = {"key": key}
    assert service.api("POST", "/api/v1/runs", **api, json={"project": PROJECT, "id": run_id,
                                                            "name": "thumb-run"}).status_code == 200
    records = [{"seq": i + 1, "type": "history", "step": i, "timestamp": time.time(),
                "data": {"val/acc": 0.9 - 0.03 * i, "train/loss": 1.0 / (i + 1)}} for i in range(40)]
    response = service.api("POST", f"/api/v1/runs/{PROJECT}/{run_id}/records", **api, json={"records": records})
    assert response.status_code == 200, response.text
    calls = [{"id": uuid.uuid4().hex, "title": title, "timestamp": time.time(), "wait_duration": 0, "step": 30,
              **({"chart": chart} if chart else {})}
             for title, chart in (("sdk with chart", "train/loss"), ("sdk without chart", None),
                                  ("sdk chart never logged", "val/never"))]
    response = service.api("POST", f"/api/v1/runs/{PROJECT}/{run_id}/alerts", **api, json={"alerts": calls})
    assert response.status_code == 200, response.text
    response = service.api("POST", "/api/v2/alerts", **api, json=[{
        "labels": {"alertname": "NodeDown", "instance": "gpu-7"}, "annotations": {"summary": "from prometheus"}}])
    assert response.status_code == 200, response.text
    found = eventually(lambda: client.get(f"/alerts.json?project={PROJECT}").json()["alerts"],
                       lambda rows: len(rows) == 5, what="the five alerts")
    by_title = {row["title"]: row for row in found}
    by_title["rule"] = next(row for row in found if row["source"] == "rule")
    by_title["prometheus"] = next(row for row in found if row["source"] == "prometheus")
    return by_title


def chart(client: httpx.Client, row: dict[str, Any]) -> httpx.Response:
    """The chart as the browser fetches it; the first drawing starts the worker process, so it may take a while
    on a busy machine (the route waits for it, up to a bound): retry until it is there."""
    url = f"/alerts/{row['id']}/chart.png"
    return eventually(lambda: client.get(url, timeout=60), lambda r: r.status_code == 200, what=f"{url} drawn")


def test_rows_link_a_chart_only_when_the_alert_can_have_one(alerts: dict[str, dict[str, Any]]) -> None:
    def link(title: str) -> str | None:
        found: str | None = alerts[title]["links"]["chart"]
        return found

    for title in ("rule", "sdk with chart", "sdk chart never logged"):
        assert link(title) == f"/alerts/{alerts[title]['id']}/chart.png"
    assert alerts["sdk with chart"]["metric"] == "train/loss"
    assert link("sdk without chart") is None and alerts["sdk without chart"]["metric"] is None
    assert link("prometheus") is None


def test_the_route_answers_a_png_to_the_session(client: httpx.Client, alerts: dict[str, dict[str, Any]]) -> None:
    for title in ("rule", "sdk with chart"):
        response = chart(client, alerts[title])
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(PNG_MAGIC) and len(response.content) < 100_000
        assert response.headers["cache-control"] == "private, no-cache"
        again = client.get(f"/alerts/{alerts[title]['id']}/chart.png",
                           headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    # No chart to draw: a 404, never a broken PNG.
    for title in ("sdk chart never logged", "sdk without chart", "prometheus"):
        assert client.get(f"/alerts/{alerts[title]['id']}/chart.png").status_code == 404, title
    assert client.get("/alerts/no-such-alert/chart.png").status_code == 404


def test_only_logins_that_may_see_the_project_get_the_chart(service: ServiceProcess, key: str, client: httpx.Client,
                                                            alerts: dict[str, dict[str, Any]]) -> None:
    url = f"/alerts/{alerts['rule']['id']}/chart.png"
    chart(client, alerts["rule"])
    anonymous = httpx.get(service.base_url + url)  # no session, no key: to the login form, as every page
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    other = logged_in(service, service.create_key("someone-else"))
    try:
        refused = other.get(url)
        assert refused.status_code == 403 and not refused.content.startswith(PNG_MAGIC)
    finally:
        other.close()
    other_key = {"Authorization": f"Bearer {service.create_key('someone-else')}"}
    assert httpx.get(service.base_url + url, headers=other_key).status_code == 403
    own_key = httpx.get(service.base_url + url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert own_key.status_code == 200 and own_key.content.startswith(PNG_MAGIC)
    admin = httpx.get(service.base_url + url, headers={"Authorization": f"Bearer {service.admin_key}"}, timeout=60)
    assert admin.status_code == 200


def test_the_alerts_page_shows_thumbnails_that_loaded(service: ServiceProcess, key: str, browser: Browser,
                                                      client: httpx.Client,
                                                      alerts: dict[str, dict[str, Any]]) -> None:
    for title in ("rule", "sdk with chart"):
        chart(client, alerts[title])  # drawn and cached: the page's images need not wait for the worker
    page: Page = new_page(browser)
    log_in(page, service.base_url, key, next_path=f"/alerts?project={PROJECT}")

    def row(title: str) -> Any:
        return page.locator(f"tr#alert-{alerts[title]['id']}")

    for title in ("rule", "sdk with chart"):
        image = row(title).locator("img.alert-chart")
        expect(image).to_have_attribute("loading", "lazy")
        width = eventually(lambda image=image: image.evaluate(LOADED_WIDTH_JS), lambda w: w != -1,
                           what=f"the thumbnail of {title} loaded")
        assert width > 0, f"the thumbnail of {title} did not load"
        shown = image.bounding_box()
        assert shown is not None and 200 <= shown["width"] <= 260, shown  # scaled down from ~800 px
        link = row(title).locator("a.alert-chart")
        expect(link).to_have_attribute("href", alerts[title]["links"]["chart"])
    # Rows that cannot have a chart have no image; one whose chart turns out not to exist says so instead.
    for title in ("sdk without chart", "prometheus"):
        expect(row(title).locator("img")).to_have_count(0)
    expect(row("sdk chart never logged").locator(".no-chart")).to_have_text("no chart", timeout=DEADLINE_MS)
    expect(row("sdk chart never logged").locator("img")).to_have_count(0)
    broken = page.locator("img.alert-chart").evaluate_all(
        "images => images.filter(i => i.complete && i.naturalWidth === 0).length")
    assert broken == 0
    screenshot(page, "alert-charts", "alerts-page")

    # The alert's own page shows the chart full size; a click on a thumbnail opens the image itself.
    page.goto(f"{service.base_url}/alerts/{alerts['rule']['id']}")
    full = page.locator("img.alert-chart.full")
    assert eventually(lambda: full.evaluate(LOADED_WIDTH_JS), lambda w: w != -1, what="the full chart") > 0
    screenshot(page, "alert-charts", "alert-page")
    page.goto(f"{service.base_url}/alerts?project={PROJECT}")
    with page.expect_navigation():
        row("rule").locator("a.alert-chart").click()
    assert page.url.endswith(f"/alerts/{alerts['rule']['id']}/chart.png")
    page.close()


def test_with_charts_off_no_row_offers_one(service_factory: Callable[..., ServiceProcess]) -> None:
    off = service_factory({"rule_files": [], "charts": {"enabled": False}})
    key = off.create_key(PROJECT)
    assert off.api("POST", "/api/v1/runs", key=key, json={"project": PROJECT, "id": "off1"}).status_code == 200
    response = off.api("POST", f"/api/v1/runs/{PROJECT}/off1/alerts", key=key, json={"alerts": [
        {"id": "c1", "title": "with chart", "timestamp": time.time(), "chart": "val/acc"}]})
    assert response.status_code == 200, response.text
    session = logged_in(off, key)
    try:
        [row] = eventually(lambda: session.get("/alerts.json").json()["alerts"], lambda rows: len(rows) == 1,
                           what="the alert")
        assert row["metric"] == "val/acc" and row["links"]["chart"] is None
        assert session.get(f"/alerts/{row['id']}/chart.png").status_code == 404
        assert "img" not in session.get("/alerts").text.split("<tbody>")[1]
    finally:
        session.close()
