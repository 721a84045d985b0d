"""Shared pieces of the HTTP surface: its context, token checks, input checks and JSON errors."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from service.moderation.actions import Moderation
from service.moderation.intake import Intake
from service.outbound.confirmations import Confirmations
from service.outbound.notify import Notifier
from service.runtime.components import Components
from service.runtime.throttle import Throttle, client_key
from service.store.models import Comment, Post
from service.store.subscriptions import InvalidAddress, follower_address

MAX_JSON_BYTES = 1024 * 1024  # a comment is text; a megabyte of JSON is someone misbehaving
MAX_FORM_BYTES = 16 * 1024
MAX_ROW_ID = 2**63 - 1  # the largest id a BIGINT (and SQLite's INTEGER) holds
ADMIN_COOKIE = "replyd_admin"  # holds a random session id (service.store.admin_sessions)
# Any stored address, for stopping mail (one stored by an older version may not be mailable).
_ANY_EMAIL = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+$")
EMAIL_PATTERN = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")


class ApiError(Exception):
    """A request the API refuses: answered as `{"error": message}` with `status` (and any
    `headers`, such as Retry-After)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass
class WebContext:
    """What the HTTP handlers share: components, sessions, templates and wake-up hooks."""

    parts: Components
    notifier: Notifier
    intake: Intake  # publishes or holds comments made on the blog
    moderation: Moderation  # moderators' actions from the API, admin page and mailed links
    # Reads go through their own sessions: on SQLite they never take the write lock.
    read_sessions: sessionmaker[Session]
    templates: Environment
    wake_inbound: Callable[[], None]
    wake_outbound: Callable[[], None]
    smtp_bound: Callable[[], bool]
    # Failed logins and web comments per client and token, counted in this process.
    throttle: Throttle

    @property
    def api_token(self) -> str | None:
        """The bearer token protected endpoints want, None while it is unset."""
        return self.parts.settings.api_token

    @property
    def confirmations(self) -> Confirmations:
        """Readers' requests from the blog, and the mail that confirms them."""
        return self.parts.confirmations()


def context_of(request: Request) -> WebContext:
    """The WebContext the app was created with."""
    web: WebContext = request.app.state.web
    return web


def client_of(request: Request) -> str:
    """The key a request's client address counts under (see service.runtime.throttle.client_key)."""
    return client_key(request.client.host if request.client else None)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header, if the request has one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret with the expected one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def is_authorized(request: Request) -> bool:
    """Whether the request carries the API token (operator pages also take a session cookie:
    see service.web.admin_auth)."""
    token = context_of(request).api_token
    return token is not None and token_matches(bearer_token(request), token)


def require_token(request: Request) -> None:
    """Raise ApiError unless the request carries the bearer token (503 while none is set)."""
    if context_of(request).api_token is None:
        raise ApiError(
            503,
            "this endpoint is disabled: set REPLYD_API_TOKEN (16 characters or more) and "
            "send it as 'Authorization: Bearer <token>'",
        )
    if not is_authorized(request):
        raise ApiError(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")


def within_limit(
    web: WebContext, kind: str, key: str, whose: str, what: str = "comment requests"
) -> None:
    """Count one request under the limit `kind` for `key`; a 429 ApiError with Retry-After
    and a sentence when over it."""
    wait = web.throttle.take(kind, key)
    if wait:
        raise ApiError(
            429,
            f"too many {what} {whose} (at most {web.throttle.describe(kind)}); "
            f"try again in {wait} seconds",
            {"Retry-After": str(wait)},
        )


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it grows past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_object(request: Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 ApiError saying what is wrong."""
    body = await read_limited(request, limit)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    except ValueError:  # an integer of thousands of digits: Python refuses to convert it
        raise ApiError(400, "request body holds a number too long to be any id or value") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def text_field(
    data: Mapping[str, Any],
    name: str,
    *,
    max_length: int,
    required: bool = True,
    default: str = "",
) -> str:
    """A string field, stripped; 400 when missing (if required), not a string, or too long."""
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"field {name!r} is required")
        return default
    if not isinstance(value, str):
        raise ApiError(400, f"field {name!r} must be a string")
    # Browsers send textarea content with CRLF line ends; stored text uses LF.
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if required and not value:
        raise ApiError(400, f"field {name!r} must not be empty")
    if len(value) > max_length:
        raise ApiError(400, f"field {name!r} is longer than {max_length} characters")
    if any(not ch.isprintable() and ch not in "\n\t" for ch in value):
        raise ApiError(400, f"field {name!r} contains control characters")
    return value


def single_line(data: Mapping[str, Any], name: str, **options: Any) -> str:
    """A text field that must fit on one line (ids, titles, names, addresses)."""
    value = text_field(data, name, **options)
    if "\n" in value or "\t" in value:
        raise ApiError(400, f"field {name!r} must be a single line")
    return value


def email_field(data: Mapping[str, Any], name: str, *, follower: bool = True) -> str:
    """An email address field, lower-cased like every address replyd stores; with `follower`
    (someone about to follow a post), one replyd can mail (the error says why not)."""
    value = single_line(data, name, max_length=320).lower()
    if not follower:
        if not _ANY_EMAIL.match(value):
            raise ApiError(400, f"field {name!r} is not an email address like ann@example.org")
        return value
    try:
        return follower_address(value)
    except InvalidAddress as exc:
        raise ApiError(400, f"field {name!r}: {exc}") from None


def bool_field(data: Mapping[str, Any], name: str, default: bool) -> bool:
    """A JSON boolean field."""
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"field {name!r} must be true or false")
    return value


def mask_email(address: str) -> str:
    """An address shown on a page or in an answer: enough to recognise, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}" if domain else "…"


def post_slug(value: str) -> str:
    """Check a post id to look up (a URL path, a subscription): one line, no slash, at most 200
    characters. Ids of new posts are checked more strictly, by service.store.posts."""
    if not value or len(value) > 200 or "/" in value or any(not ch.isprintable() for ch in value):
        raise ApiError(400, "a post id is 1 to 200 printable characters without '/'")
    return value


def find_post(session: Session, slug: str) -> Post:
    """The post with the blog's id `slug`, or a 404 ApiError."""
    post = session.scalar(select(Post).where(Post.slug == slug))
    if post is None:
        raise ApiError(404, f"no post with id {slug!r}")
    return post


MAX_SHOWN_DEPTH = 8  # deeper answers are indented no further; they still name their parent


@dataclass(frozen=True)
class Threaded:
    """One comment in reading order, with how deep it sits in its thread."""

    comment: Comment
    depth: int


def thread_order(comments: Iterable[Comment]) -> list[Threaded]:
    """Comments in reading order: each followed by its answers, oldest first at each level."""
    ordered = sorted(comments, key=lambda c: c.id)
    known = {c.id for c in ordered}
    children: dict[int | None, list[Comment]] = {}
    for comment in ordered:
        # An answer whose parent is not on this post is shown at the top level.
        parent = comment.parent_id if comment.parent_id in known else None
        children.setdefault(parent, []).append(comment)
    out: list[Threaded] = []
    # An explicit stack, not recursion: a chain of answers may be thousands deep.
    stack = [(c, 0) for c in reversed(children.get(None, []))]
    while stack:
        comment, depth = stack.pop()
        out.append(Threaded(comment, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(comment.id, [])))
    return out


def iso(value: datetime | None) -> str | None:
    """A timestamp as ISO 8601 text for JSON."""
    return value.isoformat() if value is not None else None
