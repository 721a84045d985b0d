"""The public API's writes, for the embed on the blog's pages: readers' comments and follows."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.store.idempotency import Answer
from service.web.context import (
    ApiError,
    client_of,
    context_of,
    json_object,
    post_slug,
    within_limit,
)
from service.web.idempotent import idempotency_key, json_text, retry_identity
from service.web.origins import check_origin
from service.web.public_writes import (
    PUBLIC_BODY_BYTES,
    filled_honeypot,
    pending_answer,
    reader_comment,
    reader_follow,
    submit_comment,
    submit_follow,
)


def _json_answer(answer: Answer, replayed: bool = False) -> Response:
    return Response(
        answer.body,
        status_code=answer.status,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )


async def _reader_request(request: Request) -> tuple[str, dict[str, object]]:
    """The checks every reader's write goes through, in this order: the limit per client
    address, the page it came from, JSON, the size cap. Returns the post id and the body."""
    web = context_of(request)
    within_limit(
        web, "public", client_of(request), "from your address", "comments and follow requests"
    )
    check_origin(request, embed=True)
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        # A page elsewhere can send text/plain without asking first (no CORS preflight).
        raise ApiError(415, "send the request as JSON, with Content-Type: application/json")
    slug = post_slug(request.path_params["post_id"])
    return slug, await json_object(request, PUBLIC_BODY_BYTES)


async def post_reader_comment(request: Request) -> Response:
    """POST /api/posts/{id}/comments without the token: a reader's comment. 202 and a
    confirmation mail; 201 and published when `author_token` shows the browser confirmed
    this address before."""
    key = idempotency_key(request)
    slug, data = await _reader_request(request)
    if filled_honeypot(data):
        # Answered like a real comment, so the robot learns nothing; nothing is kept or sent.
        email = data.get("author_email")
        fake = pending_answer(email if isinstance(email, str) else "", "comment")
        return _json_answer(Answer(202, json_text(fake)))
    new = reader_comment(slug, data)
    retries = retry_identity(key, slug, data)
    web = context_of(request)
    try:
        answer, replayed = await run_in_threadpool(submit_comment, web, new, retries)
    except IntegrityError:
        if retries is None:
            raise
        # The same key twice at once (PostgreSQL): answer as the one that was kept.
        answer, replayed = await run_in_threadpool(submit_comment, web, new, retries)
    if not replayed:
        web.wake_outbound()
    return _json_answer(answer, replayed)


async def post_follow(request: Request) -> Response:
    """POST /api/posts/{id}/follow: mail a reader the link that makes them follow the post."""
    slug, data = await _reader_request(request)
    if filled_honeypot(data):
        email = data.get("email")
        fake = pending_answer(email if isinstance(email, str) else "", "follow")
        return _json_answer(Answer(202, json_text(fake)))
    new = reader_follow(slug, data)
    web = context_of(request)
    answer = await run_in_threadpool(submit_follow, web, new)
    web.wake_outbound()
    return _json_answer(answer)
