"""Fetch the blog's feed over HTTP(S): conditional, bounded in time and size, no other schemes."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import IO, Any

# A blog's feed holds its last ten or so entries, content included: a few hundred KiB. More
# than this is not a feed replyd should read into memory.
MAX_FEED_BYTES = 5 * 1024 * 1024
# The whole fetch (connecting, headers and body together), not only each read.
FETCH_SECONDS = 30.0
USER_AGENT = "replyd feed poller"
_CHUNK = 64 * 1024


class FeedError(Exception):
    """The feed could not be read; the message is a sentence saying why and what to check."""


@dataclass(frozen=True)
class FetchedFeed:
    """A feed's body as the server sent it (200), with the validators for the next poll."""

    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str | None


class _OnlyHttpRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only: urllib would also follow one to ftp:."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
        headers: HTTPMessage, newurl: str,
    ) -> urllib.request.Request | None:  # fmt: skip
        if not newurl.lower().startswith(("http://", "https://")):
            raise FeedError(f"the feed redirected to {newurl!r}, which is not an http(s) address")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_OnlyHttpRedirects())


def fetch_feed(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = MAX_FEED_BYTES,
    seconds: float = FETCH_SECONDS,
) -> FetchedFeed | None:
    """GET the feed, sending the validators of its last answer; None when it answers 304 Not
    Modified. Raises FeedError for anything else than a 200 of at most `max_bytes`."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)
    deadline = time.monotonic() + seconds
    try:
        with _opener.open(request, timeout=seconds) as response:
            body = _read_capped(response, url, max_bytes, deadline, seconds)
            answer = response.headers
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 304:
            return None
        raise FeedError(f"the feed {url} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FeedError(f"the feed {url} could not be fetched: {reason}") from None
    return FetchedFeed(
        body=body,
        etag=answer.get("ETag"),
        last_modified=answer.get("Last-Modified"),
        content_type=answer.get("Content-Type"),
    )


def _read_capped(
    response: Any, url: str, max_bytes: int, deadline: float, seconds: float
) -> bytes:
    """The response's body, refused once it passes `max_bytes` or the deadline."""
    too_big = (
        f"the feed {url} is larger than {max_bytes} bytes, more than a blog's feed needs; "
        "have the blog list fewer entries (or summaries) in it"
    )
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise FeedError(too_big)
        if time.monotonic() > deadline:
            raise FeedError(f"the feed {url} took longer than {seconds:g} s to arrive")
        chunks.append(chunk)
    return b"".join(chunks)
