"""The JSON API's posts: create or update one, read one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.outbound.new_posts import announce_post
from service.store.models import Comment, Post
from service.store.posts import check_post
from service.store.subscriptions import person_for, save_post
from service.store.visibility import PUBLISHED
from service.web.context import (
    ApiError,
    bool_field,
    context_of,
    email_field,
    find_post,
    is_authorized,
    iso,
    json_object,
    post_slug,
    require_token,
    single_line,
)


def post_json(session: Session, post: Post, *, private: bool) -> dict[str, Any]:
    """A post as the API shows it; addresses only to callers holding the token."""
    count = session.scalar(
        select(func.count(Comment.id)).where(Comment.post_id == post.id, PUBLISHED)
    )
    data: dict[str, Any] = {
        "id": post.slug,
        "title": post.title,
        "url": post.url,
        "author_name": post.author.display_name,
        "closed": post.closed,
        "created_at": iso(post.created_at),
        "comment_count": count or 0,
    }
    if private:
        data["author_email"] = post.author.email
    return data


def string_field(data: dict[str, Any], name: str) -> str:
    """A field that must be present and a string (400 otherwise); its content is checked later."""
    value = data.get(name)
    if value is None:
        raise ApiError(400, f"field {name!r} is required")
    if not isinstance(value, str):
        raise ApiError(400, f"field {name!r} must be a string")
    return value


async def put_post(request: Request) -> Response:
    """POST /api/posts: create a post, or update the one with this id."""
    require_token(request)
    data = await json_object(request)
    # The same checks as every other door (PostInvalid, answered 422 by the app).
    checked = check_post(
        string_field(data, "id"), string_field(data, "title"), string_field(data, "url")
    )
    author_email = email_field(data, "author_email")
    author_name = single_line(data, "author_name", max_length=200, required=False)
    closed = bool_field(data, "closed", False)
    web = context_of(request)

    def store() -> tuple[bool, dict[str, Any]]:
        with web.parts.session_factory.begin() as session:
            author = person_for(session, author_email, author_name)
            post, created = save_post(
                session,
                checked.slug,
                title=checked.title,
                url=checked.url,
                author=author,
                closed=closed,
            )
            if created:  # the blog's followers are mailed about a new post, not an update
                announce_post(session, post, web.parts.book, web.parts.keyring)
            session.refresh(post)
            return created, post_json(session, post, private=True)

    created, body = await run_in_threadpool(store)
    if created:
        web.wake_outbound()
    return JSONResponse(body, status_code=201 if created else 200)


async def get_post(request: Request) -> Response:
    """GET /api/posts/{id}: one post (public)."""
    slug = post_slug(request.path_params["post_id"])
    web = context_of(request)
    private = is_authorized(request)

    def load() -> dict[str, Any]:
        with web.read_sessions() as session:
            return post_json(session, find_post(session, slug), private=private)

    return JSONResponse(await run_in_threadpool(load))
