"""The JSON API's comments: a post's thread as the public sees it, and comments made on the blog."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.moderation.blocks import Blocklist
from service.outbound.audience import Audience
from service.store.idempotency import Answer, remember
from service.store.models import MAX_COMMENT_CHARS, Comment, utcnow
from service.store.subscriptions import person_for
from service.store.visibility import is_published, shown_comments
from service.web.api_public import post_reader_comment
from service.web.context import (
    MAX_ROW_ID,
    ApiError,
    WebContext,
    bearer_token,
    client_of,
    context_of,
    email_field,
    find_post,
    is_authorized,
    iso,
    json_object,
    post_slug,
    require_token,
    single_line,
    text_field,
    thread_order,
    within_limit,
)
from service.web.idempotent import (
    Idempotency,
    answered_before,
    idempotency_key,
    json_text,
    retry_identity,
)


def comment_json(comment: Comment, depth: int, *, private: bool) -> dict[str, Any]:
    """A comment as the API shows it; the author's address and the text extraction cut (other
    people's addresses, quoted mail, our own reply addresses) only to callers holding the token."""
    data: dict[str, Any] = {
        "id": comment.id,
        "parent_id": comment.parent_id,
        "depth": depth,
        "author_name": comment.author.display_name,
        "body": comment.body,
        "source": comment.source,
        "created_at": iso(comment.created_at),
        "status": comment.status,
    }
    if private:
        data["author_email"] = comment.author.email
        data["elided"] = comment.elided
    return data


def removed_json(comment: Comment, depth: int) -> dict[str, Any]:
    """The placeholder of a removed comment that answers hang under: its place, nothing of it."""
    return {
        "id": comment.id,
        "parent_id": comment.parent_id,
        "depth": depth,
        "author_name": "",
        "body": "",
        "elided": "",
        "source": comment.source,
        "created_at": None,
        "status": "removed",
    }


async def list_comments(request: Request) -> Response:
    """GET /api/posts/{id}/comments: a post's comments in thread order (public)."""
    slug = post_slug(request.path_params["post_id"])
    web = context_of(request)
    private = is_authorized(request)

    def load() -> list[dict[str, Any]]:
        with web.read_sessions() as session:
            post = find_post(session, slug)
            comments = session.scalars(select(Comment).where(Comment.post_id == post.id)).all()
            shown, removed = shown_comments(comments)
            return [
                removed_json(t.comment, t.depth)
                if t.comment.id in removed
                else comment_json(t.comment, t.depth, private=private)
                for t in thread_order(shown)
            ]

    return JSONResponse({"post_id": slug, "comments": await run_in_threadpool(load)})


@dataclass(frozen=True)
class WebComment:
    """A comment made on the blog, as the request gave it (checked)."""

    slug: str
    author_email: str
    author_name: str
    body: str
    parent_id: int | None


def create_web_comment(
    web: WebContext, new: WebComment, idempotency: Idempotency | None
) -> tuple[Answer, bool]:
    """Store a comment made on the web: published with its notifications queued at once, or
    held for a moderator (REPLYD_MODERATION); with an Idempotency-Key already answered, that
    answer instead. Returns the answer and whether it is a replay."""
    now = utcnow()
    with web.parts.session_factory.begin() as session:
        earlier = answered_before(session, idempotency, now)
        if earlier is not None:
            return earlier, True
        post = find_post(session, new.slug)
        if post.closed:
            raise ApiError(409, f"post {new.slug!r} is closed to comments")
        if new.parent_id is not None:
            parent = session.get(Comment, new.parent_id)
            if parent is None or parent.post_id != post.id or not is_published(parent):
                raise ApiError(404, f"post {new.slug!r} has no comment {new.parent_id}")
        rule = Blocklist.read(session, [new.author_email]).rule_for(new.author_email)
        if rule is not None:
            raise ApiError(403, f"comments from {new.author_email} are blocked ({rule})")
        # As for mail: no control characters, none of our addresses (the notifier cleans the
        # body of every comment it publishes).
        author_name = web.notifier.public_text.clean_line(new.author_name)
        person = person_for(session, new.author_email, author_name)
        comment = Comment(
            post_id=post.id,
            parent_id=new.parent_id,
            author_id=person.id,
            body=new.body,
            source="web",
        )
        web.intake.submit(session, comment, post, person, Audience(session, [post]))
        stored = session.get(Comment, comment.id)  # as the database has it
        assert stored is not None
        answer = Answer(201, json_text(comment_json(stored, 0, private=True)))
        if idempotency is not None:
            # In the comment's own transaction: either both are kept or neither is.
            remember(session, idempotency.key, idempotency.fingerprint, answer, now)
        return answer, False


async def post_comment(request: Request) -> Response:
    """POST /api/posts/{id}/comments: publish a comment made on the blog and mail followers
    (or hold it for a moderator: its status says which).

    Limited per client address (counted before the token is checked, so guessing it is slow
    too) and per token; a retry with the same Idempotency-Key gets the first answer. Without
    the token, it is a reader's comment (service.web.api_public), published once confirmed.
    """
    if "authorization" not in request.headers:
        return await post_reader_comment(request)
    web = context_of(request)
    within_limit(web, "client", client_of(request), "from your address")
    require_token(request)
    token = bearer_token(request) or ""
    within_limit(web, "token", hashlib.sha256(token.encode()).hexdigest(), "with this token")
    key = idempotency_key(request)
    slug = post_slug(request.path_params["post_id"])
    data = await json_object(request)
    author_email = email_field(data, "author_email")
    author_name = single_line(data, "author_name", max_length=200, required=False)
    body = text_field(data, "body", max_length=MAX_COMMENT_CHARS)
    parent_id = data.get("parent_id")
    if parent_id is not None and (
        not isinstance(parent_id, int) or isinstance(parent_id, bool) or parent_id < 1
    ):
        raise ApiError(400, "field 'parent_id' must be a comment id (a positive integer) or null")
    if parent_id is not None and parent_id > MAX_ROW_ID:
        # No comment has such an id, and the database driver would overflow looking for it.
        raise ApiError(404, f"post {slug!r} has no comment {parent_id}")
    new = WebComment(slug, author_email, author_name, body, parent_id)
    retries = retry_identity(key, slug, data)
    try:
        answer, replayed = await run_in_threadpool(create_web_comment, web, new, retries)
    except IntegrityError:
        if retries is None:
            raise
        # Two requests with this key at once (PostgreSQL): the other one's comment was kept
        # and this one's undone; answer as the other was answered.
        answer, replayed = await run_in_threadpool(create_web_comment, web, new, retries)
    if not replayed:
        web.wake_outbound()
    return Response(
        answer.body,
        status_code=answer.status,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )
