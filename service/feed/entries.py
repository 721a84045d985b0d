"""A feed's bytes to its entries as posts-to-be: a stable post id, a plain title, a link."""

from __future__ import annotations

import hashlib
import html
import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urlsplit

import feedparser  # type: ignore[import-untyped, unused-ignore]

from service.controls import strip_controls_line
from service.feed.fetch import FeedError
from service.store.posts import MAX_POST_ID, MAX_TITLE, PostInvalid, check_post_id

# Characters a post id may not hold (check_post_id allows letters, digits and -_.~).
_NOT_IN_ID = re.compile(r"[^\w.~-]+")
_DASHES = re.compile(r"-{2,}")
# A character reference left in a plain-text title by a feed that escaped it twice.
_REFERENCE = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});")
# Direction overrides and isolates: check_title refuses them, so they are dropped here.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
# What feedparser reports for a feed it read in full all the same: a charset that differs
# from the HTTP header's, or an XML feed served as text/html or text/plain.
_HARMLESS = ("CharacterEncodingOverride", "NonXMLContentType")
# Local parts of addresses that read nobody's mail (Blogger puts noreply@blogger.com in
# every entry): a post's author must be someone who can be told of comments.
_NOBODY = re.compile(r"^(no-?reply|do-?not-?reply|nobody|mailer-daemon)([+.-]|$)", re.I)


@dataclass(frozen=True)
class FeedEntry:
    """One entry of the feed, as the post it becomes; an author address only if it gave one."""

    guid: str
    post_id: str
    title: str
    url: str
    author_email: str | None
    author_name: str


@dataclass(frozen=True)
class SkippedEntry:
    """An entry that cannot become a post, and why (for the log and `replyd feed poll`)."""

    guid: str
    reason: str


def read_entries(
    body: bytes, url: str, content_type: str | None = None
) -> list[FeedEntry | SkippedEntry]:
    """Parse an RSS 2.0 or Atom feed (feedparser); FeedError when it is not a well-formed
    feed, so that nothing is taken from half a document."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # A stream, never a string: feedparser fetches a string that looks like an address.
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and type(problem).__name__ not in _HARMLESS:
        raise FeedError(f"the feed {url} is not well-formed ({problem}); nothing was taken from it")
    if not parsed.get("version"):
        raise FeedError(f"{url} is not an RSS or Atom feed; set REPLYD_FEED_URL to the blog's feed")
    feed_author = _address(parsed.feed.get("author_detail"))
    return [_entry(item, feed_author) for item in parsed.entries]


def _entry(item: Any, feed_author: str | None) -> FeedEntry | SkippedEntry:
    link = (item.get("link") or "").strip()
    guid = (item.get("id") or "").strip() or link
    if not guid:
        return SkippedEntry("(no id)", "the entry has neither an id/guid nor a link")
    if not link:
        return SkippedEntry(guid, "the entry has no link to the post")
    detail = item.get("title_detail") or {}
    title = plain_title(item.get("title") or "", detail.get("type") or "text/plain")
    if not title:
        return SkippedEntry(guid, "the entry has no title")
    author = item.get("author_detail") or {}
    return FeedEntry(
        guid=guid,
        post_id=entry_post_id(guid),
        title=title,
        url=link,
        author_email=_address(author) or feed_author,
        author_name=strip_controls_line(author.get("name") or item.get("author") or ""),
    )


def _address(detail: Any) -> str | None:
    """The email address of a feed's or entry's author, unless it reads nobody's mail."""
    email = ((detail or {}).get("email") or "").strip().lower()
    if "@" not in email or _NOBODY.match(email.rpartition("@")[0]):
        return None
    return email


def entry_post_id(guid: str) -> str:
    """The post id of an entry, from its guid alone, so the same entry always gets the same
    one: a permalink's path (https://blog.example.org/2026/12/hello/ → 2026-12-hello), or
    `entry-` and a hash of the guid when it is no such address (urn:uuid:…, tag:…, ?p=123)."""
    parts = urlsplit(guid)
    if parts.scheme.lower() in ("http", "https") and not parts.query and not parts.fragment:
        words = [_NOT_IN_ID.sub("-", unquote(part)) for part in parts.path.split("/") if part]
        slug = _DASHES.sub("-", "-".join(words)).strip("-_.~")
        try:
            if len(slug) <= MAX_POST_ID:
                return check_post_id(slug)
        except PostInvalid:
            pass
    return "entry-" + hashlib.sha256(guid.encode()).hexdigest()[:16]


class _Text(HTMLParser):
    """The text of an HTML fragment: tags dropped, character references resolved."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_title(title: str, kind: str) -> str:
    """A title as one plain line: markup of an HTML title dropped, references resolved,
    control characters and direction overrides removed, cut to what a post title holds."""
    if "html" in kind:
        reader = _Text()
        reader.feed(title)
        reader.close()
        title = "".join(reader.parts)
    elif _REFERENCE.search(title):
        title = html.unescape(title)
    line = strip_controls_line(_BIDI.sub("", title))
    return line if len(line) <= MAX_TITLE else line[: MAX_TITLE - 1].rstrip() + "…"
