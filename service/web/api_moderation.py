"""The JSON API of moderation: list comments by status, publish or hide one, delete one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.moderation.actions import Change, Moderation, ModerationError
from service.moderation.log import Actor
from service.store.models import Comment, CommentStatus
from service.web.api_comments import comment_json
from service.web.context import ApiError, WebContext, context_of, json_object, require_token
from service.web.inbound_log import int_param

COMMENTS_PAGE_DEFAULT = 50
COMMENTS_PAGE_MAX = 200
# What a moderator can list: each status but "deleted" (its text is gone), or all of those.
LISTED = ("held", "published", "hidden", "all")
_SETTABLE = (CommentStatus.PUBLISHED.value, CommentStatus.HIDDEN.value)


def comments_page(
    session: Session, status: str, before: int | None, limit: int
) -> tuple[list[Comment], int | None]:
    """Newest comments first with `status` ("all": any but deleted), below id `before`."""
    query = select(Comment).order_by(Comment.id.desc()).limit(limit + 1)
    if status == "all":
        query = query.where(Comment.status != CommentStatus.DELETED)
    else:
        query = query.where(Comment.status == status)
    if before is not None:
        query = query.where(Comment.id < before)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1].id if more and rows else None


def moderated_json(comment: Comment) -> dict[str, Any]:
    """A comment as a moderator sees it: the post it is on, its status, its author's address."""
    data = comment_json(comment, 0, private=True)
    del data["depth"]  # a moderator's list is by time, not a thread
    data["post_id"] = comment.post.slug
    return data


def change_json(change: Change) -> dict[str, Any]:
    """What a moderation action did."""
    return {
        "id": change.comment_id,
        "status": change.after,
        "previous_status": change.before,
        "notifications_queued": change.notified,
        "mail_cancelled": change.cancelled,
    }


def _status_param(request: Request) -> str:
    status = request.query_params.get("status") or "all"
    if status not in LISTED:
        raise ApiError(400, f"query parameter 'status' must be one of {', '.join(LISTED)}")
    return status


def _comment_id(request: Request) -> int:
    raw = request.path_params["comment_id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise ApiError(400, "a comment id is a positive whole number")
    return int(raw)


def api_actor() -> Actor:
    """Who acts through the API, as the moderation log names them: the bearer of the token."""
    return Actor("holder of the API token", "api")


async def list_moderated(request: Request) -> Response:
    """GET /api/comments: comments of every post by status, newest first, a page at a time."""
    require_token(request)
    status = _status_param(request)
    limit = int_param(request, "limit", COMMENTS_PAGE_DEFAULT, 1, COMMENTS_PAGE_MAX)
    before = int_param(request, "before", None, 1, 2**63 - 1)
    assert limit is not None
    web = context_of(request)

    def load() -> dict[str, Any]:
        with web.read_sessions() as session:
            rows, next_before = comments_page(session, status, before, limit)
            return {"items": [moderated_json(c) for c in rows], "next_before": next_before}

    return JSONResponse(await run_in_threadpool(load))


def _act(web: WebContext, comment_id: int, act: Any) -> dict[str, Any]:
    """Run one moderation action in a transaction of its own; errors as API answers."""
    moderation: Moderation = web.moderation
    try:
        with web.parts.session_factory.begin() as session:
            change: Change = act(moderation, session, comment_id)
            stored = session.get(Comment, comment_id)
            assert stored is not None
            body = change_json(change)
            if stored.status != CommentStatus.DELETED:
                body["comment"] = moderated_json(stored)
            return body
    except ModerationError as exc:
        raise ApiError(404 if exc.missing else 409, str(exc)) from None


async def patch_comment(request: Request) -> Response:
    """PATCH /api/comments/{id}: {"status": "published"} approves (or restores) a comment,
    {"status": "hidden"} removes it restorably."""
    require_token(request)
    comment_id = _comment_id(request)
    data = await json_object(request)
    status = data.get("status")
    if status not in _SETTABLE:
        raise ApiError(400, 'field \'status\' must be "published" or "hidden"')
    web = context_of(request)
    actor = api_actor()
    body = await run_in_threadpool(
        _act, web, comment_id, lambda m, s, i: m.set_status(s, i, status, actor)
    )
    if body["notifications_queued"]:
        web.wake_outbound()
    return JSONResponse(body)


async def delete_comment(request: Request) -> Response:
    """DELETE /api/comments/{id}: delete a comment for good (answers under it stay)."""
    require_token(request)
    comment_id = _comment_id(request)
    web = context_of(request)
    actor = api_actor()
    body = await run_in_threadpool(_act, web, comment_id, lambda m, s, i: m.delete(s, i, actor))
    return JSONResponse(body)
