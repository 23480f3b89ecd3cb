"""Log in by pasting an API key once; log out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from alerts.keys import hash_key
from alerts.service import Service
from alerts.web import csrf
from alerts.web.views.base import Pages, find_viewer, is_secure, render, safe_next, sessions

pages = Pages()


async def _login_form(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    service: Service = request.app.state.service
    nonce = csrf.login_nonce(request)
    token = csrf.token(await sessions(request).secret(), nonce)
    response = render(request, "login.html", {"next": safe_next(request.query_params.get("next")),
                                              "error": error, "login_csrf": token}, None, status_code=status_code)
    csrf.remember_login_nonce(response, nonce, secure=is_secure(request, service))
    return response


async def login_page(request: Request) -> Response:
    if await find_viewer(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return await _login_form(request)


async def login(request: Request) -> Response:
    service: Service = request.app.state.service
    await csrf.verify(request, await sessions(request).secret(), request.cookies.get(csrf.LOGIN_COOKIE))
    form = await request.form()
    pasted = form.get("api_key")
    key = await service.store.find_api_key(hash_key(pasted.strip())) if isinstance(pasted, str) and \
        pasted.strip() else None
    if key is None:  # never echo what was pasted: it may be a real secret with a typo
        return await _login_form(request, error="That API key is unknown or revoked.", status_code=401)
    next_url = form.get("next")
    response = RedirectResponse(safe_next(next_url if isinstance(next_url, str) else None), status_code=303)
    secure = is_secure(request, service)
    await sessions(request).start(response, key, secure=secure)
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/", secure=secure, httponly=True, samesite="strict")
    return response


async def logout(request: Request) -> Response:
    service: Service = request.app.state.service
    session = await sessions(request).read(request)
    if session is not None:
        await csrf.verify(request, await sessions(request).secret(), session.nonce)
    response = RedirectResponse("/login", status_code=303)
    sessions(request).end(response, secure=is_secure(request, service))
    return response


pages.router.add_route("/login", login_page, methods=["GET"])
pages.router.add_route("/login", login, methods=["POST"])
pages.router.add_route("/logout", logout, methods=["POST"])
