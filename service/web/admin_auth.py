"""Who may use the operator pages: the bearer token, or a server-side session from the login."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from service.store.admin_sessions import (
    LIFETIME,
    end_session,
    find_session,
    open_session,
    touch,
)
from service.store.models import utcnow
from service.web.context import (
    ADMIN_COOKIE,
    MAX_FORM_BYTES,
    WebContext,
    bearer_token,
    client_of,
    context_of,
    read_limited,
    token_matches,
)
from service.web.render import render


@dataclass(frozen=True)
class Operator:
    """A request the operator made; `csrf` is what its forms must carry (None with the bearer
    token, which no other site can make a browser send)."""

    csrf: str | None


async def operator_of(request: Request) -> Operator | None:
    """The operator behind a request (bearer token or live session cookie), else None."""
    web = context_of(request)
    token = web.api_token
    if token is None:
        return None
    if token_matches(bearer_token(request), token):
        return Operator(csrf=None)
    cookie = request.cookies.get(ADMIN_COOKIE)
    if not cookie:
        return None

    def check() -> Operator | None:
        now = utcnow()
        with web.read_sessions() as session:
            live = find_session(session, cookie, token, now)
        if live is None:
            return None
        if live.stale:
            with web.parts.session_factory.begin() as session:
                touch(session, live.id, now)
        return Operator(csrf=live.csrf)

    return await run_in_threadpool(check)


def csrf_ok(operator: Operator, fields: dict[str, str]) -> bool:
    """Whether a form POST carries its session's CSRF value (bearer requests need none)."""
    return operator.csrf is None or token_matches(fields.get("csrf"), operator.csrf)


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (small), first value of each field."""
    body = await read_limited(request, MAX_FORM_BYTES)
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def admin_login_page(web: WebContext, status: int, message: str = "") -> HTMLResponse:
    """The token form the operator pages show to a browser without a live session."""
    if web.api_token is None:
        message = "The operator pages are disabled: set REPLYD_API_TOKEN and restart replyd."
        status = 503
    return render(web, "login.html", status, message=message)


def _too_many(web: WebContext, wait: int) -> Response:
    minutes = max(1, round(wait / 60))
    response = admin_login_page(
        web,
        429,
        f"Too many wrong tokens from your address (at most {web.throttle.describe('login')}); "
        f"try again in {minutes} minute{'s' if minutes != 1 else ''}.",
    )
    response.headers["Retry-After"] = str(wait)
    return response


async def admin_login(request: Request) -> Response:
    """GET shows the token form; POST checks the token and opens a session (throttled per
    client address after wrong tokens)."""
    web = context_of(request)
    if request.method == "GET":
        return admin_login_page(web, 200)
    token = web.api_token
    if token is None:
        return admin_login_page(web, 503)
    client = client_of(request)
    # Checked before the token: while a client waits, even the right token gets no answer,
    # or the throttle would not slow guessing at all.
    wait = web.throttle.wait("login", client)
    if wait:
        return _too_many(web, wait)
    fields = await form_fields(request)
    if not token_matches(fields.get("token", "").strip(), token):
        web.throttle.take("login", client)
        return admin_login_page(web, 401, "That is not the API token.")

    def start() -> str:
        with web.parts.session_factory.begin() as session:
            return open_session(session, token, utcnow()).cookie

    cookie = await run_in_threadpool(start)
    response = RedirectResponse("/admin/inbound", status_code=303)
    response.set_cookie(
        ADMIN_COOKIE,
        cookie,
        max_age=int(LIFETIME.total_seconds()),
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=web.parts.settings.base_url.startswith("https:") or request.url.scheme == "https",
    )
    return response


async def admin_logout(request: Request) -> Response:
    """POST /admin/logout: end the session on the server (its cookie opens nothing any more)."""
    web = context_of(request)
    cookie = request.cookies.get(ADMIN_COOKIE)

    def end() -> None:
        with web.parts.session_factory.begin() as session:
            end_session(session, cookie)

    if cookie:
        await run_in_threadpool(end)
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(ADMIN_COOKIE, path="/admin", httponly=True, samesite="strict")
    return response
