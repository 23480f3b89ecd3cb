"""The run page's Stop button and what the page says once a run was asked to stop (issue 14).

A real service; runs created and fed over the API (no SDK process: the records' answers say what the SDK
would read). Who may stop, CSRF and form errors are read through the JSON twin and the HTML; one test
clicks through the form in headless Chromium.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually
from tests.web.browser import chromium, log_in, new_page, screenshot
from tests.web.session import form_token, logged_in

PROJECT = "stops"
RULES = """
rules:
  - {name: loss-diverged, metric: loss, when: not finite, severity: critical, actions: [stop_run]}
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("run-stop")
    (workdir / "rules.yaml").write_text(RULES)
    with running_service(workdir, {"rule_files": [str(workdir / "rules.yaml")]}) as started:
        yield started


@pytest.fixture(scope="module")
def key(service: ServiceProcess) -> str:
    return service.create_key(PROJECT)


@pytest.fixture(scope="module")
def admin(service: ServiceProcess) -> Iterator[httpx.Client]:
    found = logged_in(service, service.admin_key)
    yield found
    found.close()


@pytest.fixture(scope="module")
def project_session(service: ServiceProcess, key: str) -> Iterator[httpx.Client]:
    found = logged_in(service, key)
    yield found
    found.close()


def new_run(service: ServiceProcess, key: str) -> str:
    run_id = f"r{uuid.uuid4().hex[:8]}"
    response = service.api("POST", "/api/v1/runs", key=key, json={"project": PROJECT, "id": run_id,
                                                                  "name": f"exp-{run_id}"})
    assert response.status_code == 200, response.text
    return run_id


def send(service: ServiceProcess, key: str, run_id: str, records: list[dict[str, Any]], *,
         first_seq: int = 1) -> dict[str, Any]:
    response = service.api("POST", f"/api/v1/runs/{PROJECT}/{run_id}/records", key=key,
                           json={"records": [{"seq": first_seq + i, **r} for i, r in enumerate(records)]})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def step(n: int, loss: float) -> dict[str, Any]:
    return {"type": "history", "step": n, "timestamp": 1_800_000_000.0 + n, "runtime": float(n),
            "data": {"loss": "NaN" if math.isnan(loss) else loss}}


def exit_record(state: str, reason: str | None = None) -> dict[str, Any]:
    return {"type": "exit", "state": state, "exit_code": 1 if state == "failed" else 0, "reason": reason,
            "timestamp": 1_800_000_100.0}


def page(client: httpx.Client, run_id: str) -> dict[str, Any]:
    response = client.get(f"/runs/{PROJECT}/{run_id}.json")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def post_stop(client: httpx.Client, run_id: str, reason: str, *, token: bool = True) -> httpx.Response:
    data = {"reason": reason}
    if token:
        data["csrf_token"] = form_token(client.get(f"/runs/{PROJECT}/{run_id}").text)
    return client.post(f"/runs/{PROJECT}/{run_id}/stop", data=data)


def key_id(service: ServiceProcess, key: str) -> str:
    found: str = service.api("GET", "/api/v1/auth", key=key).json()["key_id"]
    return found


def test_an_admin_session_stops_a_running_run(service: ServiceProcess, key: str, admin: httpx.Client) -> None:
    run_id = new_run(service, key)
    send(service, key, run_id, [step(0, 1.0)])
    before = page(admin, run_id)
    assert before["stop"]["can_stop"] and before["run"]["stop_request"] is None
    assert 'id="stop-run"' in admin.get(f"/runs/{PROJECT}/{run_id}").text

    response = post_stop(admin, run_id, "  GPU 3 is needed elsewhere  ")
    assert response.status_code == 303 and response.headers["location"] == f"/runs/{PROJECT}/{run_id}"
    who = f"dashboard (admin key {key_id(service, service.admin_key)})"
    asked = page(admin, run_id)
    request = asked["run"]["stop_request"]
    assert (request["by"], request["rule"], request["reason"], request["step"]) == (who, None, "GPU 3 is needed "
                                                                                    "elsewhere", None)
    assert asked["run"]["state"] == "running" and not asked["stop"]["can_stop"]
    assert asked["stop"]["text"] == f"by {who}: GPU 3 is needed elsewhere"
    html = admin.get(f"/runs/{PROJECT}/{run_id}").text
    assert f"Stop requested by {who}: GPU 3 is needed elsewhere (" in html and 'id="stop-run"' not in html
    # The SDK hears of it in the answer to its next send (the in-memory run the records route answers from).
    assert send(service, key, run_id, [step(1, 1.0)], first_seq=2)["stop"]["by"] == who
    # Asking again changes nothing: the first request stands.
    assert admin.post(f"/runs/{PROJECT}/{run_id}/stop",
                      data={"reason": "again", "csrf_token": form_token(html)}).status_code == 303
    assert page(admin, run_id)["run"]["stop_request"]["reason"] == "GPU 3 is needed elsewhere"

    send(service, key, run_id, [exit_record("finished")], first_seq=3)
    ended = page(admin, run_id)
    assert ended["run"]["state"] == "stopped" and not ended["stop"]["can_stop"]
    assert ended["run"]["failure_reason"] == f"stopped by {who}: GPU 3 is needed elsewhere"
    assert ended["stop"]["afterwards"] is None and ended["stop"]["rule_url"] is None
    html = admin.get(f"/runs/{PROJECT}/{run_id}").text
    assert f"Stopped by {who}: GPU 3 is needed elsewhere (" in html and "Stopped: stopped" not in html
    assert 'id="stop-run"' not in html and 'class="badge state-stopped"' in html


def test_a_project_key_session_gets_no_button_and_its_post_is_refused(
        service: ServiceProcess, key: str, project_session: httpx.Client) -> None:
    run_id = new_run(service, key)
    shown = page(project_session, run_id)
    assert shown["run"]["state"] == "running" and not shown["stop"]["can_stop"]
    html = project_session.get(f"/runs/{PROJECT}/{run_id}").text
    assert 'id="stop-run"' not in html and f'action="/runs/{PROJECT}/{run_id}/stop"' not in html
    forged = post_stop(project_session, run_id, "forged")  # its own, valid CSRF token: still not an admin
    assert forged.status_code == 403 and "admin key" in forged.text
    assert page(project_session, run_id)["run"]["stop_request"] is None
    assert service.api("POST", f"/api/v1/runs/{PROJECT}/{run_id}/stop", key=key,
                       json={"reason": "api"}).status_code == 403  # the API says the same


def test_a_stop_without_the_csrf_token_is_refused(service: ServiceProcess, key: str, admin: httpx.Client) -> None:
    run_id = new_run(service, key)
    response = post_stop(admin, run_id, "cross-site", token=False)
    assert response.status_code == 403 and "CSRF" in response.text
    assert admin.post(f"/runs/{PROJECT}/{run_id}/stop",
                      data={"reason": "x", "csrf_token": "0" * 64}).status_code == 403
    assert page(admin, run_id)["run"]["stop_request"] is None


def test_a_missing_or_overlong_reason_shows_the_form_again(service: ServiceProcess, key: str,
                                                          admin: httpx.Client) -> None:
    run_id = new_run(service, key)
    empty = post_stop(admin, run_id, "   ")
    assert empty.status_code == 422
    assert "The run was not stopped: give a reason" in empty.text
    assert '<details class="stop-run" id="stop-run" open>' in empty.text  # the form, open, to try again
    long = post_stop(admin, run_id, "x" * 2001)
    assert long.status_code == 422
    assert "the reason is 2001 characters long; at most 2000 fit" in long.text
    assert 'value="' + "x" * 2001 + '"' in long.text  # what was typed, to shorten
    assert page(admin, run_id)["run"]["stop_request"] is None
    assert post_stop(admin, run_id, "x" * 2000).status_code == 303


def test_a_rule_stop_links_the_rule_and_the_runs_list_filters_stopped(service: ServiceProcess, key: str,
                                                                     admin: httpx.Client) -> None:
    run_id = new_run(service, key)
    answer = send(service, key, run_id, [step(n, 1.0 / (n + 1)) for n in range(50)] + [step(50, math.nan)])
    assert answer["stop"]["rule"] == "loss-diverged"  # stopped by the batch that carried the NaN
    asked = page(admin, run_id)
    assert asked["stop"]["text"] == "by rule loss-diverged at step 50: loss = nan"
    assert asked["stop"]["rule_url"] == "/rules#rule-loss-diverged" and not asked["stop"]["can_stop"]
    html = admin.get(f"/runs/{PROJECT}/{run_id}").text
    assert ('Stop requested by rule <a href="/rules#rule-loss-diverged">loss-diverged</a> at step 50: '
            "loss = nan (") in html
    assert 'id="rule-loss-diverged"' in admin.get("/rules").text  # where the link lands

    # Interrupted, the script died of it: the page says both.
    send(service, key, run_id, [exit_record("failed", "KeyboardInterrupt")], first_seq=52)
    ended = eventually(lambda: page(admin, run_id), lambda p: p["run"]["state"] != "running",
                       what="the run to end")
    assert ended["run"]["state"] == "stopped" and not ended["stop"]["can_stop"]
    assert ended["stop"]["afterwards"] == "then failed: KeyboardInterrupt"
    html = admin.get(f"/runs/{PROJECT}/{run_id}").text
    assert ('Stopped by rule <a href="/rules#rule-loss-diverged">loss-diverged</a> at step 50: loss = nan (') in html
    assert "; then failed: KeyboardInterrupt." in html and 'id="stop-run"' not in html
    header = admin.get(f"/runs/{PROJECT}/{run_id}/header").text  # what the live refresh swaps in
    assert 'class="badge state-stopped"' in header and "hx-get" not in header and "Stopped by rule" in header

    runs = admin.get(f"/projects/{PROJECT}.json?state=stopped").json()
    assert "stopped" in runs["states"] and run_id in [r["id"] for r in runs["runs"]]
    assert {r["state"] for r in runs["runs"]} == {"stopped"}
    listing = admin.get(f"/projects/{PROJECT}?state=stopped").text
    assert '<option value="stopped" selected>' in listing and 'class="badge state-stopped"' in listing
    assert admin.post(f"/runs/{PROJECT}/{run_id}/stop",  # an ended run is left as it is
                      data={"reason": "late", "csrf_token": form_token(html)}).status_code == 303
    assert page(admin, run_id)["run"]["state"] == "stopped"


def test_stop_button_in_a_real_browser(service: ServiceProcess, key: str) -> None:
    run_id = new_run(service, key)
    send(service, key, run_id, [step(n, 1.0) for n in range(3)])
    with chromium() as browser:
        tab = new_page(browser)
        console_errors: list[str] = []  # e.g. a script or form the Content-Security-Policy refused
        tab.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        log_in(tab, service.base_url, service.admin_key, next_path=f"/runs/{PROJECT}/{run_id}")
        reason = tab.locator('input[name="reason"]')
        expect(reason).to_be_hidden()  # folded until Stop is clicked
        tab.locator("#stop-run summary", has_text="Stop").click()
        expect(reason).to_be_visible()
        reason.fill("<b>enough</b>: the loss plateaued")
        screenshot(tab, "run-stop", "form")
        tab.get_by_role("button", name="Stop run").click()
        tab.wait_for_url(f"{service.base_url}/runs/{PROJECT}/{run_id}")
        expect(tab.locator("#run-header")).to_contain_text("Stop requested by dashboard (admin key ")
        expect(tab.locator("#run-header")).to_contain_text("<b>enough</b>: the loss plateaued")  # text, not markup
        expect(tab.locator("#stop-run")).to_have_count(0)
        screenshot(tab, "run-stop", "requested")
        assert console_errors == []
    assert page_state(service, run_id)["stop_request"]["reason"] == "<b>enough</b>: the loss plateaued"


def page_state(service: ServiceProcess, run_id: str) -> dict[str, Any]:
    found: dict[str, Any] = service.api("GET", f"/api/v1/runs/{PROJECT}/{run_id}").json()
    return found
