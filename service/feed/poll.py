"""One poll of the blog's feed: new entries become posts, changed titles are updated."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.feed.entries import FeedEntry, SkippedEntry, read_entries
from service.feed.fetch import MAX_FEED_BYTES, FeedError, FetchedFeed, fetch_feed
from service.runtime.settings import Settings
from service.store.models import FeedState, Person, Post, utcnow
from service.store.posts import PostInvalid, check_post
from service.store.subscriptions import InvalidAddress, person_for, save_post

log = logging.getLogger(__name__)

# Two nodes that poll at once may both insert the same new post: the one that commits second
# hits the unique post id, and its next try finds the post there.
SAVE_ATTEMPTS = 3

# What tells the blog's followers of a new post, in the poll's transaction (announce_post).
Announce = Callable[[Session, Post], object]


@dataclass(frozen=True)
class FeedPost:
    """A post the feed added: its row id, the blog's id, title and address."""

    id: int
    slug: str
    title: str
    url: str


@dataclass(frozen=True)
class TitleChange:
    """A post whose title the feed changed."""

    slug: str
    old: str
    new: str


@dataclass
class PollResult:
    """What one poll did. `first_poll`: the feed had never been read here before, so `added`
    holds its whole backlog (everything it lists), not only what was just published."""

    url: str
    not_modified: bool = False
    first_poll: bool = False
    added: list[FeedPost] = field(default_factory=list)
    updated: list[TitleChange] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)


def poll_feed(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    announce: Announce | None = None,
    max_bytes: int = MAX_FEED_BYTES,
) -> PollResult:
    """Fetch REPLYD_FEED_URL (conditional GET) and save its entries as posts in one
    transaction with the feed's new validators; a 304 changes nothing. FeedError when the
    feed is unset, unreachable, too large or malformed, and then nothing changes either.

    `announce` is called for each post added, in the same transaction, except on the feed's
    first poll: what a feed lists when it is first connected is the blog's backlog, not news.
    """
    url = settings.feed_url
    if not url:
        raise FeedError("no feed is configured; set REPLYD_FEED_URL=https://your.blog/feed/")
    key = hashlib.sha256(url.encode()).hexdigest()
    with session_factory() as session:
        state = session.get(FeedState, key)
        etag, modified = (state.etag, state.last_modified) if state else (None, None)
    fetched = fetch_feed(url, etag=etag, last_modified=modified, max_bytes=max_bytes)
    if fetched is None:
        return PollResult(url, not_modified=True)
    entries = read_entries(fetched.body, url, fetched.content_type)
    for attempt in range(1, SAVE_ATTEMPTS + 1):
        try:
            with session_factory.begin() as session:
                result = _save(session, key, url, fetched, entries, settings.feed_author_email)
                if announce is not None and not result.first_poll:
                    for added in result.added:
                        post = session.get(Post, added.id)
                        assert post is not None  # added in this transaction
                        announce(session, post)
                return result
        except IntegrityError:
            if attempt == SAVE_ATTEMPTS:
                raise
            log.info("another node saved the feed's posts at the same time; reading them again")
    raise AssertionError("unreachable")


def _save(
    session: Session,
    key: str,
    url: str,
    fetched: FetchedFeed,
    entries: list[FeedEntry | SkippedEntry],
    fallback_author: str | None,
) -> PollResult:
    """Save the entries and the validators in the caller's transaction."""
    state = session.get(FeedState, key)
    result = PollResult(url, first_poll=state is None)
    if state is None:
        state = FeedState(url_hash=key, url=url)
        session.add(state)
    state.etag, state.last_modified, state.fetched_at = (
        fetched.etag, fetched.last_modified, utcnow(),
    )  # fmt: skip
    seen: set[str] = set()
    for entry in entries:
        if isinstance(entry, SkippedEntry):
            result.skipped.append(entry)
            continue
        if entry.post_id in seen:
            result.skipped.append(
                SkippedEntry(entry.guid, f"another entry of the feed has the id {entry.post_id}")
            )
            continue
        seen.add(entry.post_id)
        _save_entry(session, entry, fallback_author, result)
    if result.skipped:
        # A skipped entry is tried again at the next poll (the operator may have set the
        # author address meanwhile): that poll must get the whole feed, not a 304.
        state.etag = state.last_modified = None
    return result


def _save_entry(
    session: Session, entry: FeedEntry, fallback_author: str | None, result: PollResult
) -> None:
    """Add the entry's post, or update the title and link of the post it already is: the one
    with its id, else one added by hand with its link (no second post for the same page)."""
    try:
        checked = check_post(entry.post_id, entry.title, entry.url)
    except PostInvalid as exc:
        result.skipped.append(SkippedEntry(entry.guid, str(exc)))
        return
    post = session.scalar(select(Post).where(Post.slug == checked.slug))
    if post is None:
        post = session.scalar(select(Post).where(Post.url == checked.url).order_by(Post.id))
    if post is not None:
        if (post.title, post.url) != (checked.title, checked.url):
            old = post.title
            save_post(session, post.slug, title=checked.title, url=checked.url,
                      author=post.author, closed=post.closed)  # fmt: skip
            if old != checked.title:
                result.updated.append(TitleChange(post.slug, old, checked.title))
        return
    author = _author(session, entry, fallback_author)
    if isinstance(author, str):
        result.skipped.append(SkippedEntry(entry.guid, author))
        return
    post, _ = save_post(session, checked.slug, title=checked.title, url=checked.url,
                        author=author, closed=False)  # fmt: skip
    result.added.append(FeedPost(post.id, post.slug, post.title, post.url))


def _author(session: Session, entry: FeedEntry, fallback: str | None) -> Person | str:
    """Who a new post belongs to (and who is told of its comments): the entry's author by
    the address the feed gives, else REPLYD_FEED_AUTHOR_EMAIL; else the reason there is none."""
    problem = ""
    if entry.author_email:
        try:
            return person_for(session, entry.author_email, entry.author_name)
        except InvalidAddress as exc:
            problem = f"its author's address cannot be mailed ({exc}) "
    if fallback:
        try:
            return person_for(session, fallback)
        except InvalidAddress as exc:
            return f"REPLYD_FEED_AUTHOR_EMAIL cannot be mailed: {exc}"
    names = "names no author address" if not problem else problem.strip()
    return (
        f"the entry {names} and REPLYD_FEED_AUTHOR_EMAIL is unset; set it to the address "
        "that should be told of comments on the feed's posts"
    )
