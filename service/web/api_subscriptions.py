"""The JSON API's subscriptions: make someone follow a post, or stop their mail about it."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.store.subscriptions import (
    AskedToBeForgotten,
    InvalidAddress,
    check_subscribable,
    person_for,
    set_following,
)
from service.web.context import (
    ApiError,
    bool_field,
    context_of,
    email_field,
    find_post,
    json_object,
    post_slug,
    require_token,
    single_line,
)

DIGESTS = (None, "daily", "weekly")


async def subscription_request(request: Request) -> tuple[str, str, dict[str, Any]]:
    """The post id and address of a subscription call (JSON body, or query for DELETE); an
    address to follow must be one replyd can mail, one to stop any address."""
    require_token(request)
    if request.method == "DELETE" and request.query_params:
        data: dict[str, Any] = dict(request.query_params)
    else:
        data = await json_object(request)
    email = email_field(data, "email", follower=request.method != "DELETE")
    return post_slug(single_line(data, "post_id", max_length=200)), email, data


async def subscribe(request: Request) -> Response:
    """POST /api/subscriptions: make someone follow a post, per comment or by digest."""
    slug, email, data = await subscription_request(request)
    digest = data.get("digest")
    if digest not in DIGESTS:
        raise ApiError(400, 'field \'digest\' must be null, "daily" or "weekly"')
    asked = bool_field(data, "asked_by_person", False)
    web = context_of(request)

    def store() -> None:
        with web.parts.session_factory.begin() as session:
            post = find_post(session, slug)
            try:
                check_subscribable(session, email, asked_by_person=asked)
            except AskedToBeForgotten as exc:
                raise ApiError(
                    409,
                    f"{exc}; if they did (e.g. through the blog's subscribe form), send "
                    '"asked_by_person": true',
                ) from None
            set_following(
                session, post.id, person_for(session, email).id, active=True, digest=digest
            )

    await run_in_threadpool(store)
    return JSONResponse({"post_id": slug, "email": email, "active": True, "digest": digest})


async def unsubscribe(request: Request) -> Response:
    """DELETE /api/subscriptions: stop someone's mail about a post, even if they comment again."""
    slug, email, _ = await subscription_request(request)
    web = context_of(request)

    def store() -> None:
        with web.parts.session_factory.begin() as session:
            post = find_post(session, slug)
            try:
                person = person_for(session, email, following=False)
            except InvalidAddress as exc:  # unknown, and not an address to record
                raise ApiError(400, f"field 'email': {exc}") from None
            set_following(session, post.id, person.id, active=False)

    await run_in_threadpool(store)
    return JSONResponse({"post_id": slug, "email": email, "active": False})
