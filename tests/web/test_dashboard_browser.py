"""The dashboard in a real browser: from a delivered notification to the chart, a silence and back.

A real service, a real webhook receiver, a real SDK process and headless Chromium. Charts are checked
by their pixels: the threshold's row and the alert marker's column must be painted in their colours.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.sdk_process import Script, sdk_env
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually
from tests.web.browser import drawn_fraction, new_page, screenshot, wait_charts_drawn

RULES = """
rules:
  - name: loss-high
    metric: train/loss
    when: "> 5"
    title: "Loss high in {{ run.name }}"
    text: "{{ metric }} = {{ value }} at step {{ step }}"
"""

SCRIPT = """
    import sys, runwatch
    run = runwatch.init(id="dash1", name="dash-run", config={"lr": 0.1}, tags=["browser"])
    for step in range(12):
        runwatch.log({"train/loss": 1.0 + step / 10, "val/acc": step / 12})
    runwatch.log({"train/loss": 10.0, "val/acc": 0.9})            # step 12: fires
    print("FIRED", flush=True)
    sys.stdin.readline()                                          # the test silences it meanwhile
    runwatch.log({"train/loss": 1.0, "val/acc": 0.9})             # step 13: resolves
    runwatch.log({"train/loss": 11.0, "val/acc": 0.9})            # step 14: fires again, silenced
    runwatch.alert("marker after the silenced firing", "a later notification", wait_duration=0)
    print("SILENCED-PHASE", flush=True)
    sys.stdin.readline()                                          # the test expires the silence
    runwatch.log({"train/loss": 1.0, "val/acc": 0.9})             # step 15: resolves
    runwatch.log({"train/loss": 12.0, "val/acc": 0.9})            # step 16: fires, delivered
    print("FIRED-AGAIN", flush=True)
    sys.stdin.readline()
    runwatch.finish()
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    found = WebhookReceiver().start()
    yield found
    found.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("dashboard")
    (workdir / "rules.yaml").write_text(RULES)
    config = {"rule_files": [str(workdir / "rules.yaml")],
              "channels": {"hook": {"type": "webhook", "url": receiver.url}},
              "defaults": {"channels": ["hook"], "group_interval": "500ms"}}
    with running_service(workdir, config) as started:
        yield started


def delivered(receiver: WebhookReceiver, *, rule: str | None = None, title: str | None = None,
              status: str = "firing") -> list[dict[str, Any]]:
    return [alert for payload in receiver.payloads() for alert in payload["alerts"]
            if alert["status"] == status and (rule is None or alert["rule"] == rule)
            and (title is None or alert["title"] == title)]


def test_notification_link_chart_silence_and_expire(service: ServiceProcess, receiver: WebhookReceiver,
                                                    browser: Browser, tmp_path: Path) -> None:
    key = service.create_key("vision")
    shots = "dashboard"
    with Script(SCRIPT, sdk_env(service, key, tmp_path)) as script:
        script.expect("FIRED")
        [fired] = eventually(lambda: delivered(receiver, rule="loss-high"), bool, timeout=60,
                             what="the firing notification")
        assert fired["step"] == 12 and fired["url"].endswith("/runs/vision/dash1")

        page: Page = new_page(browser)
        console_errors: list[str] = []  # e.g. a script the Content-Security-Policy refused
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        page.goto(fired["url"])  # not logged in yet: the login form, then back to the link
        expect(page.locator('input[name="api_key"]')).to_be_visible()
        screenshot(page, shots, "login")
        page.fill('input[name="api_key"]', key)
        page.click('button[type="submit"]')
        page.wait_for_url(fired["url"])
        wait_charts_drawn(page)
        expect(page.locator("h1")).to_contain_text("dash-run")
        chart = page.locator('section.chart[data-key="train/loss"]')
        expect(chart).to_have_attribute("data-drawn", re.compile(r"[1-9]"))
        assert chart.get_attribute("data-error") is None
        # The threshold (5) is a row painted in the threshold colour; the alert a column at step 12.
        assert drawn_fraction(page, "train/loss", 5.0, "y", "--threshold") > 0.3
        assert drawn_fraction(page, "train/loss", 12, "x", "--marker-fired") > 0.5
        assert drawn_fraction(page, "train/loss", 6, "x", "--marker-fired") < 0.1  # nowhere else
        marker = chart.locator("a.marker").first
        expect(marker).to_contain_text("fired at step 12")
        assert marker.get_attribute("href") == f"/alerts/{fired['id']}"
        screenshot(page, shots, "run")

        page.goto(f"{service.base_url}/alerts?project=vision")
        row = page.locator("tr", has_text="Loss high in dash-run").first
        expect(row).to_be_visible()
        screenshot(page, shots, "alerts")
        row.get_by_role("link", name="silence like this").click()
        page.wait_for_url("**/silences/new**")
        page.fill('[name="comment"]', "looking into it")
        expect(page.locator("#silence-preview")).to_contain_text("Loss high in dash-run")
        # The live preview (htmx, with the CSRF header) follows the matchers as they are typed.
        matchers = page.locator('textarea[name="matchers"]')
        prefilled = matchers.input_value()
        matchers.fill(prefilled.replace('alertname="loss-high"', 'alertname="no-such-rule"'))
        expect(page.locator("#silence-preview")).to_contain_text("Would mute 0 firing alerts")
        matchers.fill(prefilled)
        expect(page.locator("#silence-preview")).to_contain_text("Would mute 1 firing alert ")
        screenshot(page, shots, "silence-new")
        page.get_by_role("button", name="Create silence").click()
        page.wait_for_url("**/silences**")
        expect(page.locator("body")).to_contain_text("looking into it")
        screenshot(page, shots, "silences")

        script.send()
        script.expect("SILENCED-PHASE")
        eventually(lambda: delivered(receiver, title="marker after the silenced firing"), bool, timeout=60,
                   what="the marker alert sent after the silenced firing")
        assert [a["step"] for a in delivered(receiver, rule="loss-high")] == [12]  # step 14 was silenced

        page.goto(f"{service.base_url}/silences")
        page.get_by_role("button", name="Expire").first.click()
        expect(page.locator(".badge.silence-expired")).to_have_count(1)
        assert [s["state"] for s in service.api("GET", "/api/v1/silences").json()["silences"]] == ["expired"]
        script.send()
        script.expect("FIRED-AGAIN")
        # A new firing of the series that resolved unheard (its resolution was silenced): news, not a repeat.
        eventually(lambda: [a["step"] for a in delivered(receiver, rule="loss-high")], lambda s: 16 in s,
                   timeout=60, what="the firing at step 16, after the silence expired")
        script.send()
        assert script.wait() == 0, script.stderr

    for path in ("/projects", "/projects/vision", "/compare?project=vision&run=dash1", "/rules",
                 "/notifications", f"/alerts/{fired['id']}"):
        page.goto(service.base_url + path)
        wait_charts_drawn(page)
        assert page.locator("h1").count() >= 1
        screenshot(page, shots, path.strip("/").split("?")[0].replace("/", "-") or "home")
    assert console_errors == []
