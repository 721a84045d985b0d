"""The operator's comments page: held comments first, then recent ones, with moderation buttons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from service.moderation.actions import Change, ModerationError
from service.moderation.log import Actor
from service.store.models import Comment, CommentStatus
from service.web.admin_auth import admin_login_page, csrf_ok, form_fields, operator_of
from service.web.api_moderation import comments_page
from service.web.context import MAX_ROW_ID, WebContext, context_of
from service.web.inbound_log import int_param, row_id_param
from service.web.render import error_page, render

HELD_SHOWN = 100  # the waiting comments shown at once, oldest first
RECENT_PAGE = 25
# Which buttons a comment gets, by its status.
BUTTONS = {
    CommentStatus.HELD: ("approve", "hide", "delete"),
    CommentStatus.PUBLISHED: ("hide", "delete"),
    CommentStatus.HIDDEN: ("restore", "delete"),
}
_LABELS = {"approve": "Approve", "hide": "Hide", "restore": "Restore", "delete": "Delete"}


@dataclass(frozen=True)
class ModeratedView:
    """One comment as the operator's page shows it."""

    id: int
    post_slug: str
    post_title: str
    post_url: str
    author_name: str
    author_email: str
    body: str
    status: str
    created_at: datetime
    buttons: tuple[tuple[str, str], ...]  # (action, label)


def _view(comment: Comment) -> ModeratedView:
    return ModeratedView(
        id=comment.id,
        post_slug=comment.post.slug,
        post_title=comment.post.title,
        post_url=comment.post.url,
        author_name=comment.author.display_name,
        author_email=comment.author.email,
        body=comment.body,
        status=comment.status,
        created_at=comment.created_at,
        buttons=tuple((a, _LABELS[a]) for a in BUTTONS.get(CommentStatus(comment.status), ())),
    )


def load_comments(
    web: WebContext, before: int | None
) -> tuple[list[ModeratedView], list[ModeratedView], int | None]:
    """The held comments (oldest first), a page of recent ones, and the next page's cursor."""
    with web.read_sessions() as session:
        held = session.scalars(
            select(Comment)
            .where(Comment.status == CommentStatus.HELD)
            .order_by(Comment.id)
            .limit(HELD_SHOWN)
        ).all()
        recent, next_before = comments_page(session, "all", before, RECENT_PAGE)
        return [_view(c) for c in held], [_view(c) for c in recent], next_before


async def admin_comments(request: Request) -> Response:
    """GET /admin/comments: what waits for approval, and recent comments, with buttons."""
    web = context_of(request)
    operator = await operator_of(request)
    if operator is None:
        return admin_login_page(web, 401)
    before = int_param(request, "before", None, 1, MAX_ROW_ID)
    held, recent, next_before = await run_in_threadpool(load_comments, web, before)
    settings = web.parts.settings
    return render(
        web,
        "comments.html",
        held=held,
        recent=recent,
        next_url=f"/admin/comments?{urlencode({'before': next_before})}" if next_before else None,
        mode=settings.moderation,
        moderators=settings.moderators,
        csrf=operator.csrf or "",
    )


async def admin_moderate(request: Request) -> Response:
    """POST /admin/comments/{id}/{action}: approve, hide, restore or delete one comment."""
    web = context_of(request)
    operator = await operator_of(request)
    if operator is None:
        return admin_login_page(web, 401)
    fields = await form_fields(request)
    if not csrf_ok(operator, fields):
        return error_page(web, 403, "This form is stale or came from another site; reload it.")
    comment_id = row_id_param(request, "comment_id")
    if comment_id is None:
        return error_page(web, 404, "No such comment: ids are the whole numbers this page lists.")
    action: str = request.path_params["action"]
    if action not in _LABELS:
        return error_page(web, 404, "There is no such moderation action.")
    actor = Actor("admin page", "admin")

    def act() -> Change:
        with web.parts.session_factory.begin() as session:
            do = getattr(web.moderation, action)
            change: Change = do(session, comment_id, actor)
            return change

    try:
        change = await run_in_threadpool(act)
    except ModerationError as exc:
        return error_page(web, 404 if exc.missing else 409, f"{str(exc).capitalize()}.")
    if change.notified:
        web.wake_outbound()
    return RedirectResponse(f"/admin/comments#comment-{comment_id}", status_code=303)
