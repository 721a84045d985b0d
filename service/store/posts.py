"""What a post must be, whichever door it comes in by (CLI, API, anything later): one check."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_POST_ID = 200  # posts.slug
MAX_TITLE = 500  # posts.title
MAX_URL = 2000  # posts.url
# Besides letters and digits: what blogs put in slugs, all unreserved in URLs (RFC 3986).
_ID_PUNCTUATION = "-_.~"
# Bidirectional overrides and isolates: they make a title read differently from what it is
# (in a Subject line, a page, a feed) without being control characters.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class PostInvalid(ValueError):
    """A post's id, title or URL breaks a rule; the message is a sentence saying which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PostFields:
    """A post's id, title and URL once checked (surrounding spaces removed)."""

    slug: str
    title: str
    url: str


def _shown(value: str) -> str:
    """A rejected value as a message quotes it: escaped (no control characters), not too long."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS for ch in value)


def check_post_id(value: str) -> str:
    """The blog's id for a post: 1 to 200 letters, digits, '-', '_', '.' or '~', starting with
    a letter or digit (so never '/', '..', a space or anything a URL would have to escape)."""
    slug = value.strip()
    if not slug:
        raise PostInvalid("id", "the post id is empty; give the blog's id, e.g. its slug")
    if len(slug) > MAX_POST_ID:
        raise PostInvalid("id", f"the post id is longer than {MAX_POST_ID} characters")
    if not slug[0].isalnum() or any(not (ch.isalnum() or ch in _ID_PUNCTUATION) for ch in slug):
        raise PostInvalid(
            "id",
            f"the post id {_shown(slug)} may hold only letters, digits, '-', '_', '.' and '~' "
            "and must start with a letter or digit",
        )
    return slug


def check_title(value: str) -> str:
    """A post's title: one line of 1 to 500 characters without control characters."""
    title = value.strip()
    if not title:
        raise PostInvalid("title", "the post title is empty")
    if len(title) > MAX_TITLE:
        raise PostInvalid("title", f"the post title is longer than {MAX_TITLE} characters")
    if _has_control(title):
        raise PostInvalid(
            "title",
            f"the post title {_shown(title)} holds control characters (line breaks, tabs, "
            "escapes or direction overrides); give one plain line",
        )
    return title


def check_post_url(value: str) -> str:
    """A post's address: an absolute http(s) URL with a host, no spaces, no user name."""
    url = value.strip()
    example = "e.g. https://blog.example.org/my-post"
    if not url:
        raise PostInvalid("url", f"the post url is empty; give its address, {example}")
    if len(url) > MAX_URL:
        raise PostInvalid("url", f"the post url is longer than {MAX_URL} characters")
    if _has_control(url) or any(ch.isspace() for ch in url):
        raise PostInvalid("url", f"the post url {_shown(url)} holds spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise PostInvalid("url", f"the post url {_shown(url)} is malformed; {example}") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise PostInvalid(
            "url", f"the post url {_shown(url)} must be an absolute http(s) address, {example}"
        )
    if parts.username is not None or parts.password is not None:
        # https://blog.example.org@evil.example/ reads as the blog and goes elsewhere.
        raise PostInvalid("url", f"the post url {_shown(url)} must not hold a user name")
    return url


def check_post(slug: str, title: str, url: str) -> PostFields:
    """Check a post's id, title and URL together; raise PostInvalid on the first bad one."""
    return PostFields(check_post_id(slug), check_title(title), check_post_url(url))


def is_http_url(url: str) -> bool:
    """Whether a stored URL is safe to stand in a link (http or https), for rows older than
    the checks above."""
    try:
        return urlsplit(url).scheme.lower() in ("http", "https")
    except ValueError:
        return False
