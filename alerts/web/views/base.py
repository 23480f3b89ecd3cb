"""The shape every dashboard page shares (Datasette's ``views/base.py``).

A page is one async *data function* ``(PageContext) -> dict``. :meth:`Pages.page` registers it twice:
``PATH`` renders the dict through a Jinja template, ``PATH.json`` returns the same dict as JSON, so
the page and its JSON can never disagree and tests read the JSON. Both need a login: the HTML page
redirects an anonymous browser to ``/login?next=...``; the JSON twin answers 401, and also accepts
the API's ``Authorization: Bearer`` key.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from alerts.api.auth import current_key
from alerts.model import ApiKey
from alerts.presentation import human_duration, json_bytes
from alerts.service import Service
from alerts.web import csrf
from alerts.web.session import Sessions
from alerts.web.vendor import FILES, vendored_name

WEB = Path(__file__).resolve().parent.parent
STATIC = WEB / "static"


@dataclass
class Viewer:
    """Who is looking: the logged-in key, and the CSRF token for this page's forms."""

    key: ApiKey
    csrf_token: str

    def may_see(self, project: str) -> bool:
        return self.key.may_access(project)

    def require(self, project: str) -> None:
        if not self.may_see(project):
            raise HTTPException(403, f"this login may not see project {project!r}")


@dataclass
class PageContext:
    request: Request
    service: Service
    viewer: Viewer

    @property
    def params(self) -> Mapping[str, str]:
        return self.request.path_params

    def query(self, name: str, default: str | None = None) -> str | None:
        value = self.request.query_params.get(name)
        return value if value not in (None, "") else default

    def query_list(self, name: str) -> list[str]:
        """Repeated (``?run=a&run=b``) or comma-separated (``?runs=a,b``) values."""
        values: list[str] = []
        for raw in self.request.query_params.getlist(name):
            values += [part for part in raw.split(",") if part]
        return values

    def query_int(self, name: str, default: int, *, ge: int = 0, le: int = 10**9) -> int:
        raw = self.query(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not ge <= value <= le:
            raise HTTPException(422, [{"loc": ["query", name], "msg": f"expected an integer from {ge} to {le}",
                                       "type": "value_error"}])
        return value

    def query_float(self, name: str) -> float | None:
        raw = self.query(name)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise HTTPException(422, [{"loc": ["query", name], "msg": "expected a finite number",
                                       "type": "value_error"}])
        return value

    def query_choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self.query(name)
        if value is not None and value not in choices:
            raise HTTPException(422, [{"loc": ["query", name], "msg": f"expected one of {', '.join(choices)}",
                                       "type": "value_error"}])
        return value


DataFunction = Callable[[PageContext], Awaitable[dict[str, Any]]]


def is_secure(request: Request, service: Service) -> bool:
    """Cookies get ``Secure`` when the browser reaches us over https (directly or through a proxy)."""
    return request.url.scheme == "https" or service.public_url.startswith("https://")


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.sessions
    return found


async def find_viewer(request: Request) -> Viewer | None:
    session = await sessions(request).read(request)
    if session is None:
        return None
    return Viewer(session.key, csrf.token(await sessions(request).secret(), session.nonce))


async def bearer_viewer(request: Request, service: Service) -> Viewer | None:
    if not request.headers.get("Authorization"):
        return None
    key = await current_key(request, service)  # raises 401 for a bad key
    return Viewer(key, "")


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def safe_next(target: str | None) -> str:
    """Only a path on this site (``/runs/...``), never ``//evil`` or ``https://evil``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# Rendering -------------------------------------------------------------------------------------------
def _static_version(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


_HAND_WRITTEN = {name: _static_version(name) for name in ("app.css", "app.js")}


def static_url(name: str) -> str:
    """Hand-written files carry a content hash, vendored ones their version: both cache for a year."""
    if name in FILES:
        return f"/static/vendor/{vendored_name(name)}"
    return f"/static/{name}?v={_HAND_WRITTEN[name]}"


def format_time(value: Any) -> str:
    """ISO text or UNIX seconds as ``2026-12-02 13:04:05 UTC``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, tz=UTC)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: Any) -> str:
    return "—" if seconds is None else human_duration(float(seconds))


def format_number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.6g}"
    return str(value)


def format_json(value: Any) -> str:
    return json_bytes(value, indent=True).decode()


def url_with(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    params += [(k, str(v)) for k, v in changes.items() if v is not None]
    return request.url.path + (f"?{urlencode(params)}" if params else "")


templates = Environment(loader=FileSystemLoader(WEB / "templates"), autoescape=select_autoescape(default=True),
                        trim_blocks=True, lstrip_blocks=True)
templates.globals.update(static=static_url)
templates.filters.update(when=format_time, duration=format_duration, num=format_number, pretty_json=format_json,
                         urlpart=lambda value: quote(str(value), safe=""))


PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # Defence in depth behind autoescaping: scripts only from our own static files, never inline.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'self'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def render(request: Request, template: str, data: Mapping[str, Any], viewer: Viewer | None, *,
           status_code: int = 200) -> Response:
    html = templates.get_template(template).render(
        **data, data=data, request=request, viewer=viewer, url_with=lambda **c: url_with(request, **c),
        now=time.time())
    return Response(html, status_code=status_code, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def _json(data: Mapping[str, Any], status_code: int = 200) -> Response:
    body = json_bytes(data)
    return Response(body, status_code=status_code, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def error_detail(exc: HTTPException) -> str:
    if isinstance(exc.detail, list):
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in exc.detail)
    return str(exc.detail)


class Pages:
    """The dashboard's router; :meth:`page` adds a page and its JSON twin."""

    def __init__(self) -> None:
        self.router = APIRouter(include_in_schema=False)

    def page(self, path: str, template: str) -> Callable[[DataFunction], DataFunction]:
        def register(data: DataFunction) -> DataFunction:
            async def as_html(request: Request) -> Response:
                service: Service = request.app.state.service
                viewer = await find_viewer(request)
                if viewer is None:
                    return login_redirect(request)
                try:
                    return render(request, template, await data(PageContext(request, service, viewer)), viewer)
                except HTTPException as exc:
                    return render(request, "error.html", {"status": exc.status_code, "detail": error_detail(exc)},
                                  viewer, status_code=exc.status_code)

            # The twin first: a path parameter would otherwise swallow the ".json".
            self.data(f"{path}.json")(data)
            self.router.add_route(path, as_html, methods=["GET"], name=f"{data.__name__}-html")
            return data

        return register

    def data(self, path: str) -> Callable[[DataFunction], DataFunction]:
        """JSON only (what the page's scripts fetch, e.g. chart series): session or bearer key."""
        def register(data: DataFunction) -> DataFunction:
            async def as_json(request: Request) -> Response:
                service: Service = request.app.state.service
                viewer = await find_viewer(request) or await bearer_viewer(request, service)
                if viewer is None:
                    return _json({"detail": "log in first: POST /login, or send 'Authorization: Bearer <key>'"},
                                 401)
                try:
                    return _json(await data(PageContext(request, service, viewer)))
                except HTTPException as exc:
                    return _json({"detail": exc.detail}, exc.status_code)

            self.router.add_route(path, as_json, methods=["GET"], name=data.__name__)
            return data

        return register

    def action(self, path: str) -> Callable[[Callable[[PageContext], Awaitable[Response]]],
                                            Callable[[PageContext], Awaitable[Response]]]:
        """A form target (POST): needs a session and the CSRF token; answers with a redirect or a partial."""
        def register(handler: Callable[[PageContext], Awaitable[Response]]) -> Callable[[PageContext],
                                                                                    Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                service: Service = request.app.state.service
                session = await sessions(request).read(request)
                if session is None:
                    return login_redirect(request) if request.headers.get("HX-Request") is None else \
                        Response("log in first", status_code=401)
                secret = await sessions(request).secret()
                try:
                    await csrf.verify(request, secret, session.nonce)
                    viewer = Viewer(session.key, csrf.token(secret, session.nonce))
                    return await handler(PageContext(request, service, viewer))
                except HTTPException as exc:
                    viewer = Viewer(session.key, csrf.token(secret, session.nonce))
                    return render(request, "error.html", {"status": exc.status_code, "detail": error_detail(exc)},
                                  viewer, status_code=exc.status_code)

            self.router.add_route(path, endpoint, methods=["POST"], name=handler.__name__)
            return handler

        return register
