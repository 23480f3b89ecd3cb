"""Log in to the dashboard through its real form with httpx (for tests that read pages and JSON twins)."""

from __future__ import annotations

import re

import httpx

from tests.support.service import ServiceProcess

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "the page has no CSRF token field"
    return found.group(1)


def logged_in(service: ServiceProcess, key: str) -> httpx.Client:
    """A client holding a dashboard session for ``key`` (cookies, as a browser would)."""
    client = httpx.Client(base_url=service.base_url, timeout=30)
    login = client.get("/login")
    response = client.post("/login", data={"api_key": key, "csrf_token": form_token(login.text), "next": "/"})
    assert response.status_code == 303, response.text
    return client
