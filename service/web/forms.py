"""The comment and follow forms of /posts/{id} and of the embed page, sent without JavaScript:
checked like the public API's requests, plus a form token against cross-site forgery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, quote

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.identity.web_tokens import form_token_valid
from service.outbound.confirmations import epoch
from service.store.models import Post, utcnow
from service.web.context import (
    ApiError,
    WebContext,
    client_of,
    context_of,
    post_slug,
    read_limited,
    within_limit,
)
from service.web.idempotent import checked_key, retry_identity
from service.web.origins import check_origin
from service.web.public_pages import FormState, embed_headers, thread_page
from service.web.public_writes import (
    PUBLIC_BODY_BYTES,
    FieldError,
    filled_honeypot,
    pending_answer,
    reader_comment,
    reader_follow,
    submit_comment,
    submit_follow,
)
from service.web.render import render

_RENEWED = (
    "This form had expired, or was sent from another network than it was shown to. It is "
    "renewed now: please send it again."
)
_LABELS = {
    "author_name": "Name",
    "author_email": "Email",
    "email": "Email",
    "body": "Comment",
    "follow": "Email me new comments",
    "digest": "How often",
    "scope": "Follow",
    "parent_id": "Reply to",
}


async def _fields(request: Request) -> dict[str, str]:
    """The form's fields (the last of each name), from a body of at most PUBLIC_BODY_BYTES."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ApiError(415, "send the form as application/x-www-form-urlencoded")
    body = await read_limited(request, PUBLIC_BODY_BYTES)
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _post_id(web: WebContext, slug: str) -> int | None:
    with web.read_sessions() as session:
        return session.scalar(select(Post.id).where(Post.slug == slug))


async def _check_form_token(request: Request, slug: str, values: dict[str, str]) -> None:
    """Refuse (400) a form whose token is missing, forged, expired or another client's."""
    web = context_of(request)
    post_id = await run_in_threadpool(_post_id, web, slug)
    if post_id is None:
        raise ApiError(404, "There is no post with this id.")
    token = values.get("form_token", "")
    now = epoch(utcnow())
    if not form_token_valid(token, post_id, client_of(request), now, web.parts.keyring):
        raise ApiError(400, _RENEWED)  # the page shown again carries a fresh token


def _sent(web: WebContext, slug: str, message: str, *, embedded: bool) -> Response:
    """The page after a form was taken: where the confirmation link went."""
    back = f"/posts/{quote(slug, safe='')}" + ("/embed" if embedded else "")
    response = render(web, "sent.html", message=message, back_url=back)
    if embedded:
        response.headers.update(embed_headers(web))
    return response


async def _answer_form(
    request: Request,
    kind: str,
    embedded: bool,
    take: Callable[[WebContext, str, dict[str, str]], Awaitable[str]],
) -> Response:
    """Run one form through its checks and `take`, and answer with the page that follows: the
    confirmation notice, or the thread again with the reader's input and what was wrong."""
    web = context_of(request)
    slug = post_slug(request.path_params["post_id"])
    values: dict[str, str] = {}
    try:
        # Every form's checks, in this order: the limit per client address, the page it was
        # sent from, the body, its form token.
        within_limit(
            web, "public", client_of(request), "from your address", "comments and follow requests"
        )
        check_origin(request, embed=False)
        values = await _fields(request)
        await _check_form_token(request, slug, values)
        message = await take(web, slug, values)
    except FieldError as exc:
        label = _LABELS.get(exc.field, exc.field)
        state = FormState(kind, values, {exc.field: exc.sentence}, f"{label}: {exc.sentence}.")
        return await thread_page(request, slug, embedded=embedded, form=state, status=400)
    except ApiError as exc:
        state = FormState(kind, values, {}, exc.message)
        return await thread_page(
            request, slug, embedded=embedded, form=state, status=exc.status, headers=exc.headers
        )
    return _sent(web, slug, message, embedded=embedded)


async def _take_comment(web: WebContext, slug: str, values: dict[str, str]) -> str:
    if filled_honeypot(values):
        return pending_answer(values.get("author_email", ""), "comment")["message"]
    values.pop("author_token", None)  # forms never publish without a confirmation mail
    new = reader_comment(slug, values)
    retries = retry_identity(checked_key(values.get("request_key") or None), slug, values)
    await run_in_threadpool(submit_comment, web, new, retries)
    web.wake_outbound()
    return pending_answer(new.email, "comment")["message"]


async def _take_follow(web: WebContext, slug: str, values: dict[str, str]) -> str:
    if filled_honeypot(values):
        return pending_answer(values.get("email", ""), "follow")["message"]
    new = reader_follow(slug, values)
    await run_in_threadpool(submit_follow, web, new)
    web.wake_outbound()
    return pending_answer(new.email, "all posts" if new.all_posts else "follow")["message"]


async def comment_form(request: Request) -> Response:
    """POST /posts/{id}/comments: the page's comment form."""
    return await _answer_form(request, "comment", False, _take_comment)


async def follow_form(request: Request) -> Response:
    """POST /posts/{id}/follow: the page's follow form."""
    return await _answer_form(request, "follow", False, _take_follow)


async def embedded_comment_form(request: Request) -> Response:
    """POST /posts/{id}/embed/comments: the comment form in the blog's iframe."""
    return await _answer_form(request, "comment", True, _take_comment)


async def embedded_follow_form(request: Request) -> Response:
    """POST /posts/{id}/embed/follow: the follow form in the blog's iframe."""
    return await _answer_form(request, "follow", True, _take_follow)
