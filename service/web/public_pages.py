"""The public HTML pages: a post's comment thread, and the unsubscribe confirmation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.identity.addresses import ALL_POSTS, verify_token
from service.store.models import Comment, Person, Post
from service.store.posts import is_http_url
from service.store.subscriptions import unsubscribe
from service.web.context import (
    MAX_SHOWN_DEPTH,
    WebContext,
    context_of,
    post_slug,
    thread_order,
)
from service.web.render import error_page, render


def mask_email(address: str) -> str:
    """An address shown on a public page: enough to recognise, not enough to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}" if domain else "…"


@dataclass(frozen=True)
class ShownComment:
    """A comment as the thread page and feed show it: what the author meant to publish, never
    the text extraction cut (that is for the operator only)."""

    id: int
    parent_id: int | None
    parent_name: str
    depth: int
    author_name: str
    body: str
    created_at: datetime


def load_thread(web: WebContext, slug: str) -> tuple[Post, list[ShownComment]] | None:
    """A post and its comments in thread order, or None when there is no such post."""
    with web.read_sessions() as session:
        post = session.scalar(select(Post).where(Post.slug == slug))
        if post is None:
            return None
        comments = session.scalars(select(Comment).where(Comment.post_id == post.id)).all()
        names = {c.id: c.author.display_name or "A reader" for c in comments}
        shown = [
            ShownComment(
                id=t.comment.id,
                parent_id=t.comment.parent_id,
                parent_name=names.get(t.comment.parent_id or 0, ""),
                depth=t.depth,
                author_name=names[t.comment.id],
                body=t.comment.body,
                created_at=t.comment.created_at,
            )
            for t in thread_order(comments)
        ]
        session.expunge(post)
        return post, shown


async def post_page(request: Request) -> Response:
    """GET /posts/{id}: a post's comment thread as an HTML page."""
    web = context_of(request)
    slug = post_slug(request.path_params["post_id"])
    loaded = await run_in_threadpool(load_thread, web, slug)
    if loaded is None:
        return error_page(web, 404, "There is no post with this id.")
    post, comments = loaded
    return render(
        web,
        "post.html",
        post=post,
        # A post saved before URLs were checked may hold javascript: or the like: no link then.
        post_url=post.url if is_http_url(post.url) else None,
        comments=comments,
        feed_url=f"/posts/{quote(post.slug, safe='')}/comments.atom",
        max_depth=MAX_SHOWN_DEPTH,
    )


@dataclass(frozen=True)
class Unsubscription:
    """Whom an unsubscribe link is for, as the confirmation page names them."""

    post_title: str
    post_url: str
    email: str


def _unsubscription(web: WebContext, token: str, *, apply: bool) -> Unsubscription | None:
    """Check an unsubscribe token; with `apply`, record the opt-out."""
    target = verify_token(token, web.parts.keyring, purpose="unsubscribe")
    if target is None:
        return None
    sessions = web.parts.session_factory if apply else web.read_sessions
    with sessions.begin() as session:
        person = session.get(Person, target.person_id)
        if person is None or person.erased_at is not None:
            return None  # a forgotten person's links name nobody any more
        if target.post_id == ALL_POSTS:  # a digest's link: every digest the person takes
            title, url = f"your {web.parts.settings.site_name} digests", web.parts.settings.base_url
        else:
            post = session.get(Post, target.post_id)
            if post is None:
                return None
            title, url = post.title, post.url
        if apply:
            # Inactive, not deleted: commenting again must not make them follow it again.
            unsubscribe(session, target)
        return Unsubscription(title, url, mask_email(person.email))


async def unsubscribe_page(request: Request) -> Response:
    """GET /unsubscribe/{token}: ask for confirmation (mail scanners follow GET links)."""
    web = context_of(request)
    token = request.path_params["token"]
    found = await run_in_threadpool(lambda: _unsubscription(web, token, apply=False))
    if found is None:
        return error_page(web, 404, "This unsubscribe link is not valid (or no longer is).")
    return render(web, "unsubscribe.html", who=found, done=False)


async def unsubscribe_now(request: Request) -> Response:
    """POST /unsubscribe/{token}: RFC 8058 one-click unsubscribe, also the page's button."""
    web = context_of(request)
    token = request.path_params["token"]
    found = await run_in_threadpool(lambda: _unsubscription(web, token, apply=True))
    if found is None:
        return error_page(web, 404, "This unsubscribe link is not valid (or no longer is).")
    return render(web, "unsubscribe.html", who=found, done=True)
