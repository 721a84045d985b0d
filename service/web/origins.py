"""Which blogs may use replyd from their pages (REPLYD_EMBED_ORIGINS): CORS on the public API,
frame-ancestors of the embed page, and the Origin check of readers' writes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.web.context import ApiError, context_of

# What a browser on an allowed blog may call: a post, its comments, and following it.
_PUBLIC_API = re.compile(r"^/api/posts/[^/]+(?:/comments|/follow)?$")
_ALLOWED_METHODS = "GET, POST"
# No Authorization: the operator's token is never sent from a blog's page.
_ALLOWED_HEADERS = "Content-Type, Idempotency-Key"
_EXPOSED_HEADERS = "Retry-After, Idempotent-Replayed"
_PREFLIGHT_MAX_AGE = "600"


def frame_ancestors(origins: Iterable[str]) -> str:
    """The CSP of a page only the blogs in REPLYD_EMBED_ORIGINS may frame."""
    allowed = " ".join(origins) or "'none'"
    return (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
        f"frame-ancestors {allowed}; base-uri 'none'"
    )


def returning_to_blogs(origins: Iterable[str]) -> str:
    """The CSP of a page whose form sends the reader on to a blog in REPLYD_EMBED_ORIGINS
    (browsers check a form's redirects against form-action too); framed by nobody."""
    targets = " ".join(["'self'", *origins])
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; form-action {targets}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def origin_of(url: str) -> str:
    """The origin of a URL as a browser writes it in an Origin header ("" if it has none)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def same_site_request(request: Request) -> bool:
    """Whether a browser sent this request from one of our own pages: its Origin names the
    host it was sent to, or REPLYD_BASE_URL."""
    origin = request.headers.get("origin", "")
    if not origin or origin == "null":
        return False
    host = request.headers.get("host", "")
    base = context_of(request).parts.settings.base_url
    return urlsplit(origin).netloc == host or origin == origin_of(base)


def check_origin(request: Request, *, embed: bool) -> None:
    """Refuse (403) a write a browser sent from a page that may not make it: another site
    than ours, or (for the public API) than the blogs in REPLYD_EMBED_ORIGINS. Requests
    without an Origin come from programs, not from someone's browser, and pass."""
    origin = request.headers.get("origin")
    if origin is None or same_site_request(request):
        return
    if embed and origin in context_of(request).parts.settings.embed_origins:
        return
    raise ApiError(
        403,
        f"requests from pages on {origin} are not accepted; the operator lists the blogs "
        "that may use replyd in REPLYD_EMBED_ORIGINS",
    )


class CorsMiddleware:
    """CORS for the public API, for the origins in REPLYD_EMBED_ORIGINS only: their preflights
    are answered, their answers readable; any other origin gets no CORS headers (and a 403
    to its preflight), so its pages can neither read nor send there."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a preflight, or add CORS headers to the public API's answers."""
        if scope["type"] != "http" or not _PUBLIC_API.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and origin in self.origins
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send, origin if allowed else None)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                answer.add_vary_header("Origin")  # caches keep one answer per origin
                if allowed:
                    assert origin is not None
                    answer["access-control-allow-origin"] = origin
                    answer["access-control-expose-headers"] = _EXPOSED_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _preflight(send: Send, origin: str | None) -> None:
        """204 with what an allowed origin may send; 403 with a sentence for any other."""
        if origin is None:
            body = json.dumps(
                {
                    "error": "this origin may not use the API from a browser; the operator "
                    "lists the blogs that may in REPLYD_EMBED_ORIGINS"
                }
            ).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"vary", b"Origin"),
            ]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", _ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", _ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", _PREFLIGHT_MAX_AGE.encode()),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
