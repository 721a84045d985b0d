"""The JSON API's comments: a post's thread, and comments made on the blog."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.outbound.audience import Audience
from service.store.models import MAX_COMMENT_CHARS, Comment
from service.store.subscriptions import person_for
from service.web.context import (
    ApiError,
    WebContext,
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
)


def comment_json(comment: Comment, depth: int, *, private: bool) -> dict[str, Any]:
    """A comment as the API shows it; the author's address only to callers holding the token."""
    data: dict[str, Any] = {
        "id": comment.id,
        "parent_id": comment.parent_id,
        "depth": depth,
        "author_name": comment.author.display_name,
        "body": comment.body,
        "elided": comment.elided,
        "source": comment.source,
        "created_at": iso(comment.created_at),
    }
    if private:
        data["author_email"] = comment.author.email
    return data


async def list_comments(request: Request) -> Response:
    """GET /api/posts/{id}/comments: a post's comments in thread order (public)."""
    slug = post_slug(request.path_params["post_id"])
    web = context_of(request)
    private = is_authorized(request)

    def load() -> list[dict[str, Any]]:
        with web.read_sessions() as session:
            post = find_post(session, slug)
            comments = session.scalars(select(Comment).where(Comment.post_id == post.id)).all()
            return [
                comment_json(t.comment, t.depth, private=private) for t in thread_order(comments)
            ]

    return JSONResponse({"post_id": slug, "comments": await run_in_threadpool(load)})


def create_web_comment(
    web: WebContext,
    slug: str,
    author_email: str,
    author_name: str,
    body: str,
    parent_id: int | None,
) -> dict[str, Any]:
    """Store a comment made on the web, follow the thread and queue its notifications at once."""
    with web.parts.session_factory.begin() as session:
        post = find_post(session, slug)
        if post.closed:
            raise ApiError(409, f"post {slug!r} is closed to comments")
        if parent_id is not None:
            parent = session.get(Comment, parent_id)
            if parent is None or parent.post_id != post.id:
                raise ApiError(404, f"post {slug!r} has no comment {parent_id}")
        person = person_for(session, author_email, author_name)
        comment = Comment(
            post_id=post.id, parent_id=parent_id, author_id=person.id, body=body, source="web"
        )
        web.notifier.publish(session, comment, post, person, Audience(session, [post]))
        stored = session.get(Comment, comment.id)  # as the database has it
        assert stored is not None
        return comment_json(stored, 0, private=True)


async def post_comment(request: Request) -> Response:
    """POST /api/posts/{id}/comments: publish a comment made on the blog and mail followers."""
    require_token(request)
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
    web = context_of(request)
    created = await run_in_threadpool(
        create_web_comment, web, slug, author_email, author_name, body, parent_id
    )
    web.wake_outbound()
    return JSONResponse(created, status_code=201)
