"""The public HTML pages: a post's comment thread (with its forms), and the unsubscribe page."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.identity.addresses import ALL_POSTS, NEW_POSTS, verify_token
from service.identity.web_tokens import make_form_token
from service.outbound.confirmations import epoch
from service.store.models import MAX_COMMENT_CHARS, Comment, Person, Post, utcnow
from service.store.posts import is_http_url
from service.store.subscriptions import unsubscribe, unsubscribed
from service.store.visibility import shown_comments
from service.web.context import (
    MAX_SHOWN_DEPTH,
    WebContext,
    client_of,
    context_of,
    mask_email,
    post_slug,
    thread_order,
)
from service.web.origins import frame_ancestors
from service.web.render import error_page, render


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
    removed: bool = False  # a "comment removed" placeholder, kept for the answers under it


def load_thread(web: WebContext, slug: str) -> tuple[Post, list[ShownComment]] | None:
    """A post and its published comments in thread order (with a placeholder where a removed
    comment has answers), or None when there is no such post."""
    with web.read_sessions() as session:
        post = session.scalar(select(Post).where(Post.slug == slug))
        if post is None:
            return None
        comments = session.scalars(select(Comment).where(Comment.post_id == post.id)).all()
        visible, removed = shown_comments(comments)
        names = {
            c.id: "" if c.id in removed else c.author.display_name or "A reader" for c in visible
        }
        shown = [
            ShownComment(
                id=t.comment.id,
                parent_id=t.comment.parent_id,
                parent_name=names.get(t.comment.parent_id or 0, ""),
                depth=t.depth,
                author_name=names[t.comment.id],
                body="" if t.comment.id in removed else t.comment.body,
                created_at=t.comment.created_at,
                removed=t.comment.id in removed,
            )
            for t in thread_order(visible)
        ]
        session.expunge(post)
        return post, shown


@dataclass(frozen=True)
class FormState:
    """A form sent back to its page: what the reader typed, and what was wrong with it."""

    kind: str  # "comment" or "follow"
    values: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)  # field name -> sentence
    summary: str = ""


def embed_headers(web: WebContext) -> dict[str, str]:
    """The policy of pages shown in the blog's iframe: only REPLYD_EMBED_ORIGINS may frame them."""
    return {"content-security-policy": frame_ancestors(web.parts.settings.embed_origins)}


async def thread_page(
    request: Request,
    slug: str,
    *,
    embedded: bool = False,
    form: FormState | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A post's thread with its comment and follow forms, as a page or (`embedded`) as the
    page the blog's iframe shows."""
    web = context_of(request)
    loaded = await run_in_threadpool(load_thread, web, slug)
    extra = {**(embed_headers(web) if embedded else {}), **(headers or {})}
    if loaded is None:
        missing = error_page(web, 404, "There is no post with this id.")
        missing.headers.update(extra)
        return missing
    post, comments = loaded
    wanted = (form.values.get("parent_id") if form else None) or request.query_params.get(
        "reply_to", ""
    )
    reply_to = next((c for c in comments if str(c.id) == wanted.strip()), None)
    base = f"/posts/{quote(post.slug, safe='')}"
    form_base = f"{base}/embed" if embedded else base
    response = render(
        web,
        "embed.html" if embedded else "post.html",
        status,
        post=post,
        # A post saved before URLs were checked may hold javascript: or the like: no link then.
        post_url=post.url if is_http_url(post.url) else None,
        comments=comments,
        feed_url=f"{base}/comments.atom",
        max_depth=MAX_SHOWN_DEPTH,
        form=form or FormState(""),
        form_token=make_form_token(post.id, client_of(request), epoch(utcnow()), web.parts.keyring),
        request_key=secrets.token_urlsafe(18),  # one per form shown: a double click sends it twice
        reply_to=reply_to,
        page_url=form_base,
        comment_action=f"{form_base}/comments",
        follow_action=f"{form_base}/follow",
        max_comment_chars=MAX_COMMENT_CHARS,
    )
    response.headers.update(extra)
    return response


async def post_page(request: Request) -> Response:
    """GET /posts/{id}: a post's comment thread as an HTML page, with forms to comment and
    follow that work without JavaScript."""
    return await thread_page(request, post_slug(request.path_params["post_id"]))


@dataclass(frozen=True)
class Unsubscription:
    """Whom an unsubscribe link is for, as the confirmation page names them."""

    post_title: str
    post_url: str
    email: str
    already: bool  # the link was used before (or the mail stopped some other way)
    new_posts: bool = False  # the link stops the blog's new posts (post_title names the blog)


def _unsubscription(web: WebContext, token: str, *, apply: bool) -> Unsubscription | None:
    """Check an unsubscribe token; with `apply`, record the opt-out. Says whether it was
    recorded before (a used link opened again)."""
    target = verify_token(token, web.parts.keyring, purpose="unsubscribe")
    if target is None:
        return None
    sessions = web.parts.session_factory if apply else web.read_sessions
    with sessions.begin() as session:
        person = session.get(Person, target.person_id)
        if person is None or person.erased_at is not None:
            return None  # a forgotten person's links name nobody any more
        new_posts = target.post_id == ALL_POSTS and target.comment_id == NEW_POSTS
        if new_posts:  # a new post's link: the blog's new posts
            title, url = web.parts.settings.site_name, web.parts.settings.base_url
        elif target.post_id == ALL_POSTS:  # a digest's link: every digest the person takes
            title, url = f"your {web.parts.settings.site_name} digests", web.parts.settings.base_url
        else:
            post = session.get(Post, target.post_id)
            if post is None:
                return None
            title, url = post.title, post.url
        already = unsubscribed(session, target)
        if apply and not already:
            # Inactive, not deleted: commenting again must not make them follow it again.
            unsubscribe(session, target)
        return Unsubscription(title, url, mask_email(person.email), already, new_posts)


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
