"""Public HTML pages and feeds (comment thread, Atom, unsubscribe) and the operator's inbox page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from markupsafe import Markup, escape
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from service.identity.addresses import ALL_POSTS, verify_token
from service.inbound.queue import REPLAYABLE, requeue
from service.store.models import Comment, InboundEmail, InboundStatus, Person, Post
from service.store.subscriptions import unsubscribe
from service.web.api import inbound_page, int_param, status_param
from service.web.context import (
    ADMIN_COOKIE,
    MAX_FORM_BYTES,
    MAX_SHOWN_DEPTH,
    WebContext,
    admin_session_value,
    context_of,
    csrf_value,
    is_authorized,
    post_slug,
    read_limited,
    thread_order,
    token_matches,
)

ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("", ATOM)  # feeds use Atom as the default namespace, not "ns0:"
FEED_ENTRIES = 100
ADMIN_PAGE_SIZE = 25
# Extraction of a huge message can take seconds; the page previews only ordinary ones.
PREVIEW_MAX_BYTES = 512 * 1024
_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.I)
_URL_TRAILING = ".,;:!?)]}'\""


def linkify(text: str) -> Markup:
    """Plain text as HTML: everything escaped, http(s) URLs turned into nofollow links."""
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0)
        trimmed = url.rstrip(_URL_TRAILING)
        # Keep a closing parenthesis that belongs to the URL (Wikipedia links).
        while (
            trimmed != url and url[len(trimmed)] == ")" and trimmed.count("(") > trimmed.count(")")
        ):
            trimmed = url[: len(trimmed) + 1]
        out.append(str(escape(text[last : match.start()])))
        out.append(
            f'<a href="{escape(trimmed)}" rel="nofollow ugc noopener noreferrer">'
            f"{escape(trimmed)}</a>"
        )
        last = match.start() + len(trimmed)
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def mask_email(address: str) -> str:
    """An address shown on a public page: enough to recognise, not enough to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}" if domain else "…"


def render(web: WebContext, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page from templates/web/, autoescaped."""
    template = web.templates.get_template(name)
    html = template.render(site_name=web.parts.settings.site_name, **context)
    return HTMLResponse(html, status_code=status)


def error_page(web: WebContext, status: int, message: str) -> HTMLResponse:
    """An HTML error page saying what went wrong."""
    return render(web, "error.html", status, title="Not available", message=message)


@dataclass(frozen=True)
class ShownComment:
    """A comment as the thread page and feed show it."""

    id: int
    parent_id: int | None
    parent_name: str
    depth: int
    author_name: str
    body: str
    elided: str
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
                elided=t.comment.elided,
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
        comments=comments,
        feed_url=f"/posts/{quote(post.slug, safe='')}/comments.atom",
        max_depth=MAX_SHOWN_DEPTH,
    )


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    element.text = text
    return element


def atom_feed(base_url: str, post: Post, comments: list[ShownComment]) -> bytes:
    """The Atom (RFC 4287) feed of a post's comments, newest first."""
    page = f"{base_url}/posts/{quote(post.slug, safe='')}"
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", f"{page}/comments.atom")
    _text(feed, "title", f"Comments on {post.title}")
    newest = sorted(comments, key=lambda c: c.id, reverse=True)[:FEED_ENTRIES]
    updated = newest[0].created_at if newest else post.created_at
    _text(feed, "updated", updated.isoformat())
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "self", "href": f"{page}/comments.atom"})
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "alternate", "href": page})
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "related", "href": post.url})
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", post.title)
    for comment in newest:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "id", f"{page}#comment-{comment.id}")
        _text(entry, "title", f"Comment by {comment.author_name}")
        _text(entry, "updated", comment.created_at.isoformat())
        _text(entry, "published", comment.created_at.isoformat())
        entry_author = ET.SubElement(entry, f"{{{ATOM}}}author")
        _text(entry_author, "name", comment.author_name)
        ET.SubElement(
            entry, f"{{{ATOM}}}link", {"rel": "alternate", "href": f"{page}#comment-{comment.id}"}
        )
        _text(entry, "content", comment.body, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


async def comments_feed(request: Request) -> Response:
    """GET /posts/{id}/comments.atom: the comment feed readers subscribe to."""
    web = context_of(request)
    slug = post_slug(request.path_params["post_id"])
    loaded = await run_in_threadpool(load_thread, web, slug)
    if loaded is None:
        return error_page(web, 404, "There is no post with this id.")
    post, comments = loaded
    body = atom_feed(web.parts.settings.base_url, post, comments)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


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
        if person is None:
            return None
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


# --- operator pages -----------------------------------------------------------------------


@dataclass(frozen=True)
class InboundView:
    """One inbound message as the operator page shows it."""

    id: int
    received_at: datetime
    sender: str
    recipient: str
    status: str
    reason: str | None
    retryable: bool
    subject: str
    preview: str
    elided: str


def extraction_preview(raw: bytes, quotes_only: bool) -> tuple[str, str, str]:
    """Subject, reply and cut text as the pipeline would extract them from `raw`."""
    if len(raw) > PREVIEW_MAX_BYTES:
        return "", f"(not previewed: the message is {len(raw)} bytes)", ""
    # Imported here: talon costs about a second at import, and only this page needs it.
    from service.extraction.extract import extract_reply
    from service.inbound.parse import parse_message

    try:
        message = parse_message(raw)
        extraction = extract_reply(message.text, message.html, quotes_only=quotes_only)
    except Exception as exc:  # a preview must not take the page down with it
        return "", f"(extraction failed: {type(exc).__name__})", ""
    return message.subject, extraction.reply.strip(), extraction.elided


def load_inbound(
    web: WebContext, status: str | None, before: int | None
) -> tuple[list[InboundView], int | None]:
    """A page of inbound messages with their extraction previews."""
    quotes_only = web.parts.settings.quotes_only
    with web.read_sessions() as session:
        rows, next_before = inbound_page(session, status, before, ADMIN_PAGE_SIZE)
        views = []
        for row in rows:
            subject, preview, elided = extraction_preview(row.raw, quotes_only)
            views.append(
                InboundView(
                    id=row.id,
                    received_at=row.received_at,
                    sender=row.sender,
                    recipient=row.recipient,
                    status=row.status,
                    reason=row.reason,
                    retryable=row.status in REPLAYABLE,
                    subject=subject,
                    preview=preview,
                    elided=elided,
                )
            )
    return views, next_before


def admin_login_page(web: WebContext, status: int, message: str = "") -> HTMLResponse:
    """The token form the operator page shows to a browser without the admin cookie."""
    if web.api_token is None:
        message = "The operator pages are disabled: set REPLYD_API_TOKEN and restart replyd."
        status = 503
    return render(web, "login.html", status, message=message)


async def admin_inbound(request: Request) -> Response:
    """GET /admin/inbound: recent inbound mail, what became of it, and retry buttons."""
    web = context_of(request)
    if not is_authorized(request, allow_cookie=True):
        return admin_login_page(web, 401)
    status = status_param(request)
    before = int_param(request, "before", None, 1, 2**63 - 1)
    views, next_before = await run_in_threadpool(load_inbound, web, status, before)
    next_url = None
    if next_before is not None:
        query = {"before": str(next_before), **({"status": status} if status else {})}
        next_url = f"/admin/inbound?{urlencode(query)}"
    assert web.api_token is not None
    return render(
        web,
        "inbound.html",
        rows=views,
        chosen=status,
        statuses=list(InboundStatus),
        next_url=next_url,
        csrf=csrf_value(web.api_token),
    )


async def admin_raw(request: Request) -> Response:
    """GET /admin/inbound/{id}/raw: a message's source exactly as received, as text."""
    web = context_of(request)
    if not is_authorized(request, allow_cookie=True):
        return admin_login_page(web, 401)
    row_id: int = request.path_params["inbound_id"]

    def load() -> bytes | None:
        with web.read_sessions() as session:
            return session.scalar(select(InboundEmail.raw).where(InboundEmail.id == row_id))

    raw = await run_in_threadpool(load)
    if raw is None:
        return error_page(web, 404, "No such message.")
    # Shown, never interpreted: text/plain with nosniff, whatever the message contains.
    return PlainTextResponse(
        raw.decode("utf-8", "replace"), headers={"Content-Disposition": "inline"}
    )


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (small), first value of each field."""
    body = await read_limited(request, MAX_FORM_BYTES)
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


async def admin_retry(request: Request) -> Response:
    """POST /admin/inbound/{id}/retry: put a failed (or rejected/ignored) message back in line."""
    web = context_of(request)
    if not is_authorized(request, allow_cookie=True):
        return admin_login_page(web, 401)
    assert web.api_token is not None
    fields = await form_fields(request)
    if not token_matches(fields.get("csrf"), csrf_value(web.api_token)):
        return error_page(web, 403, "This form is stale or came from another site; reload it.")
    row_id: int = request.path_params["inbound_id"]

    def retry() -> int:
        with web.parts.session_factory.begin() as session:
            return requeue(session, [row_id])

    if await run_in_threadpool(retry) == 0:
        return error_page(web, 409, f"Message #{row_id} is not failed, rejected or ignored.")
    web.wake_inbound()
    return RedirectResponse(f"/admin/inbound#inbound-{row_id}", status_code=303)


async def admin_login(request: Request) -> Response:
    """GET shows the token form; POST checks the token and sets the admin cookie."""
    web = context_of(request)
    if request.method == "GET":
        return admin_login_page(web, 200)
    if web.api_token is None:
        return admin_login_page(web, 503)
    fields = await form_fields(request)
    if not token_matches(fields.get("token", "").strip(), web.api_token):
        return admin_login_page(web, 401, "That is not the API token.")
    response = RedirectResponse("/admin/inbound", status_code=303)
    response.set_cookie(
        ADMIN_COOKIE,
        admin_session_value(web.api_token),
        max_age=12 * 3600,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def admin_logout(request: Request) -> Response:
    """POST /admin/logout: forget the admin cookie."""
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(ADMIN_COOKIE, path="/admin")
    return response


ROUTES = [
    Route("/posts/{post_id}", post_page, methods=["GET"]),
    Route("/posts/{post_id}/comments.atom", comments_feed, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_now, methods=["POST"]),
    Route("/admin/inbound", admin_inbound, methods=["GET"]),
    Route("/admin/inbound/{inbound_id:int}/raw", admin_raw, methods=["GET"]),
    Route("/admin/inbound/{inbound_id:int}/retry", admin_retry, methods=["POST"]),
    Route("/admin/login", admin_login, methods=["GET", "POST"]),
    Route("/admin/logout", admin_logout, methods=["POST"]),
]
