"""The pages a confirmation link opens: GET shows what it confirms (mail scanners follow links),
the page's button (POST) publishes the comment or starts the follow, once."""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from service.identity.addresses import CONFIRM_COMMENT, Confirmation, verify_confirmation
from service.identity.web_tokens import make_author_token
from service.outbound.audience import Audience
from service.outbound.confirmations import CONFIRM_DAYS, carry_out, epoch, look_up
from service.outbound.confirmations import Request as Confirmed
from service.store.models import utcnow
from service.store.posts import is_http_url
from service.web.context import WebContext, context_of, mask_email
from service.web.origins import origin_of, returning_to_blogs
from service.web.render import error_page, render

_NOT_VALID = "This confirmation link is not valid (or no longer is)."
_STATUS = {"expired": 410, "closed": 409}


def _confirmation(web: WebContext, request: Request) -> Confirmation | None:
    return verify_confirmation(request.path_params["token"], web.parts.keyring)


def _page(web: WebContext, found: Confirmed) -> Response:
    """The confirmation page for a request in its state."""
    thread_url = f"/posts/{quote(found.post_slug, safe='')}"
    page = render(
        web,
        "confirm.html",
        _STATUS.get(found.state, 200),
        found=found,
        comment=found.kind == CONFIRM_COMMENT,
        email=mask_email(found.email),
        thread_url=thread_url,
        # A post saved before URLs were checked may hold javascript: or the like: no link then.
        post_url=found.post_url if is_http_url(found.post_url) else thread_url,
        days=CONFIRM_DAYS,
    )
    policy = returning_to_blogs(web.parts.settings.embed_origins)
    page.headers["content-security-policy"] = policy
    return page


async def confirm_page(request: Request) -> Response:
    """GET /confirm/{token}: what the link confirms, and the button that does it."""
    web = context_of(request)
    confirmation = _confirmation(web, request)
    if confirmation is None:
        return error_page(web, 404, _NOT_VALID)

    def load() -> Confirmed | None:
        with web.read_sessions() as session:
            return look_up(session, confirmation, utcnow())

    found = await run_in_threadpool(load)
    if found is None:
        return error_page(web, 404, _NOT_VALID)
    return _page(web, found)


def back_to_blog(web: WebContext, done: Confirmed, author_token: str) -> str | None:
    """Where a confirmed reader goes: the post on the blog, when it is on one of the blogs in
    REPLYD_EMBED_ORIGINS, with what happened and their author token in the fragment (which
    browsers never send to a server) for the embed there to keep; None for any other blog."""
    if origin_of(done.post_url) not in web.parts.settings.embed_origins:
        return None
    what = f"comment-{done.comment_id}" if done.kind == CONFIRM_COMMENT else "follow"
    fragment = urlencode({"replyd-confirmed": what, "replyd-author": author_token})
    return urlunsplit(urlsplit(done.post_url)._replace(fragment=fragment))


async def confirm_now(request: Request) -> Response:
    """POST /confirm/{token}: publish the comment, or start the follow; a second time, or with
    an expired link, nothing happens and the page says so."""
    web = context_of(request)
    confirmation = _confirmation(web, request)
    if confirmation is None:
        return error_page(web, 404, _NOT_VALID)
    now = utcnow()

    def confirm() -> Confirmed | None:
        with web.parts.session_factory.begin() as session:
            return carry_out(session, confirmation, web.intake, Audience(session), now)

    done = await run_in_threadpool(confirm)
    if done is None:
        return error_page(web, 404, _NOT_VALID)
    if done.state != "done":
        return _page(web, done)
    web.wake_outbound()
    assert done.person_id is not None
    token = make_author_token(done.person_id, epoch(now), web.parts.keyring)
    target = back_to_blog(web, done, token)
    if target is None:
        return _page(web, done)
    return RedirectResponse(target, status_code=303)
