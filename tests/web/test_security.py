"""Who may see what on the dashboard and the API: logins, project scope, CSRF, escaping, cookies."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount

from alerts.api.app import create_app
from alerts.config.settings import AlertsSettings
from alerts.service import Service
from tests.support.service import ServiceProcess, running_service
from tests.web.browser import chromium, log_in, new_page
from tests.web.session import form_token, logged_in

OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"), ("GET", "/login"), ("POST", "/login"), ("GET", "/charts/{alert_id}.png")}
"""What anyone may reach: health and readiness, Prometheus' scrape target (counts only, as Alertmanager's),
the API's schema and docs, the login form itself, and alert charts behind signed URLs (the URL is the
credential: 403 without a valid one, tests/charts/test_delivery_channels.py)."""

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("web-security")) as shared:
        yield shared


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if hasattr(route, "original_router"):  # an included router (FastAPI keeps them nested)
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)
        elif not isinstance(route, Mount):
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    yield method, prefix + route.path


def routes() -> list[tuple[str, str]]:
    """Every route of the real app (built in this process only to list its routes)."""
    return sorted(set(_walk(create_app(Service(AlertsSettings())).routes)))


def explicit_alert(title: str, text: str = "t") -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "title": title, "text": text, "wait_duration": 0, "timestamp": time.time()}


def test_every_page_and_api_route_refuses_anonymous_requests(service: ServiceProcess) -> None:
    checked = []
    for method, path in routes():
        if (method, path) in OPEN:
            continue
        url = re.sub(r"\{[^}]+\}", "x", path)
        response = httpx.request(method, service.base_url + url, timeout=30)
        checked.append(path)
        if path.startswith("/api/") or path.endswith(".json"):
            assert response.status_code == 401, (method, path, response.status_code, response.text[:200])
        else:  # a page: to the login form, and back here afterwards
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login"), (method, path)
    assert {"/runs/{project}/{run_id}", "/alerts", "/silences", "/notifications", "/rules", "/projects",
            "/api/v1/runs/{project}/{run_id}/history", "/api/v1/alerts"} <= set(checked)
    assert httpx.get(f"{service.base_url}/static/app.css").status_code == 200  # static is public


def test_login_cookie_logout_and_bad_keys(service: ServiceProcess) -> None:
    key = service.create_key("vision")
    client = httpx.Client(base_url=service.base_url)
    token = form_token(client.get("/login").text)
    refused = client.post("/login", data={"api_key": key})  # no CSRF token
    assert refused.status_code == 403 and "runwatch_session" not in refused.headers.get("set-cookie", "")
    wrong = client.post("/login", data={"api_key": "rwk_not-a-key-" + HOSTILE, "csrf_token": token})
    assert wrong.status_code == 401 and "not-a-key" not in wrong.text  # never echoes what was pasted
    ok = client.post("/login", data={"api_key": key, "csrf_token": token, "next": "https://evil.example/x"})
    assert ok.status_code == 303 and ok.headers["location"] == "/"  # only local redirects
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert key not in cookie
    assert client.get("/projects.json").status_code == 200
    page = client.get("/projects")
    assert client.post("/logout").status_code == 403  # logging out is a form like any other
    assert client.post("/logout", data={"csrf_token": form_token(page.text)}).status_code == 303
    assert client.get("/projects.json").status_code == 401


def test_a_project_key_sees_only_its_project(service: ServiceProcess) -> None:
    mine, theirs = f"own-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    my_key, their_key = service.create_key(mine), service.create_key(theirs)
    for project, key in ((mine, my_key), (theirs, their_key)):
        assert service.api("POST", "/api/v1/runs", key=key, json={"project": project, "id": "r1"}).status_code == 200
        service.api("POST", f"/api/v1/runs/{project}/r1/alerts", key=key,
                    json={"alerts": [explicit_alert(f"alert of {project}")]})
    client = logged_in(service, my_key)
    projects = [p["name"] for p in client.get("/projects.json").json()["projects"]]
    assert mine in projects and theirs not in projects
    for path in (f"/projects/{theirs}", f"/projects/{theirs}.json", f"/runs/{theirs}/r1", f"/runs/{theirs}/r1.json",
                 f"/compare?project={theirs}&run=r1", f"/compare.json?project={theirs}&run=r1",
                 f"/runs/{theirs}/r1/series.json?key=loss", f"/alerts?project={theirs}"):
        assert client.get(path).status_code == 403, path
    alerts = client.get("/alerts.json").json()["alerts"]
    assert alerts and {a["project"] for a in alerts} == {mine}
    assert client.get(f"/alerts.json?project={theirs}").status_code == 403
    # The exports answer the same.
    for path in (f"/api/v1/runs/{theirs}/r1", f"/api/v1/runs/{theirs}/r1/history?format=csv",
                 f"/api/v1/alerts?project={theirs}"):
        assert service.api("GET", path, key=my_key).status_code == 403, path
    assert {r["project"] for r in service.api("GET", "/api/v1/runs", key=my_key).json()["runs"]} == {mine}


def test_user_strings_are_text_not_markup(service: ServiceProcess) -> None:
    key = service.create_key("escape")
    init = {"project": "escape", "id": "x1", "name": HOSTILE, "tags": ["<b>tag</b>"], "notes": "<i>n</i>",
            "config": {"model": "<img src=x onerror=alert(2)>"}}
    assert service.api("POST", "/api/v1/runs", key=key, json=init).status_code == 200
    assert service.api("POST", "/api/v1/runs/escape/x1/alerts", key=key,
                       json={"alerts": [explicit_alert(HOSTILE, "<b>x</b>")]}).status_code == 200
    client = logged_in(service, key)
    for path in ("/projects/escape", "/runs/escape/x1", "/alerts"):
        page = client.get(path)
        assert "script-src 'self';" in page.headers["content-security-policy"]  # never an inline script
        html = page.text
        assert HOSTILE not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
    with chromium() as browser:
        page = new_page(browser)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        log_in(page, service.base_url, key)
        page.goto(f"{service.base_url}/runs/escape/x1")
        assert HOSTILE in page.locator("h1").inner_text()  # shown as the text it is
        page.goto(f"{service.base_url}/alerts")
        page.wait_for_load_state("networkidle")
        assert dialogs == []


def test_the_session_cookie_is_secure_when_the_dashboard_is_served_over_https(tmp_path: Path) -> None:
    """Behind a TLS-terminating proxy the service sees http, but its public URL says https."""
    with running_service(tmp_path, {"server": {"public_url": "https://runwatch.example"}}) as service:
        key = service.create_key("vision")
        client = httpx.Client(base_url=service.base_url)
        login = client.get("/login")
        assert "Secure" in login.headers["set-cookie"]  # the login form's CSRF cookie too
        # httpx keeps Secure cookies for https only; the browser behind the proxy would send it back.
        nonce = login.headers["set-cookie"].split("runwatch_csrf=", 1)[1].split(";", 1)[0]
        response = client.post("/login", data={"api_key": key, "csrf_token": form_token(login.text)},
                               headers={"Cookie": f"runwatch_csrf={nonce}"})
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "runwatch_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
