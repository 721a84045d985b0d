"""Daily and weekly digests from a watermark per subscription: every comment exactly once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from jinja2 import Environment
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.identity.addresses import ALL_POSTS, AddressBook, Keyring, ReplyTarget
from service.outbound.compose import (
    deliverable_address,
    make_templates,
    new_message,
    public_name,
    render_bodies,
    render_line,
)
from service.outbound.digest_backlog import take_backlog
from service.outbound.new_posts import take_new_posts
from service.outbound.notify import Notifier
from service.store.models import (
    BlogSubscription,
    Comment,
    OutboundEmail,
    Person,
    Post,
    Subscription,
    utcnow,
)
from service.store.visibility import PUBLISHED, is_published

log = logging.getLogger(__name__)

PERIODS = ("daily", "weekly")
# Comments in one digest message at most; a longer backlog (after days of downtime) goes out
# in several, all at once.
MAX_COMMENTS_PER_DIGEST = 200


def latest_slot(kind: str, now: datetime, hour: int) -> datetime:
    """When `kind` digests were last due by the clock: the latest `hour` o'clock (UTC) for
    daily ones, the latest Monday at `hour` for weekly ones."""
    slot = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if kind == "daily":
        return slot if slot <= now else slot - timedelta(days=1)
    if kind == "weekly":
        slot -= timedelta(days=slot.weekday())
        return slot if slot <= now else slot - timedelta(days=7)
    raise ValueError(f"unknown digest period {kind!r}; use daily or weekly")


def digest_id(kind: str, through: int, person_id: int, domain: str, of: str = "") -> str:
    """The Message-ID of the digest to one person whose newest comment is `through` (each
    comment goes into one digest per person, so this is unique: the exactly-once key); with
    `of="posts-"`, of one holding new posts only, the newest of them `through`."""
    return f"<digest-{kind}-{of}through-{through}.to-{person_id}@{domain}>"


def comment_horizon(session_factory: sessionmaker[Session]) -> int:
    """The newest comment id below which every comment is committed: later comments get
    larger ids, so a watermark moved up to it skips none.

    A comment whose id is below the newest committed one may still be uncommitted (PostgreSQL
    hands out ids at INSERT, transactions commit in any order): waiting for every transaction
    that writes comments closes that gap. On PostgreSQL a SHARE lock on the table does it (held
    for a moment); on SQLite the write lock, which every transaction here takes at BEGIN.
    """
    with session_factory.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("LOCK TABLE comments IN SHARE MODE"))
        return int(session.scalar(select(func.max(Comment.id))) or 0)


class _Superseded(Exception):
    """Another run moved this person's watermark meanwhile: it sent what this one would have."""


class Digests:
    """Queues digests of what is new since each subscription's watermark; running it twice, or
    on two nodes at once, queues each comment once per person."""

    def __init__(
        self,
        book: AddressBook,
        keyring: Keyring,
        notifier: Notifier,
        *,
        from_address: str,
        site_name: str,
        templates: Environment | None = None,
    ) -> None:
        self.book = book
        self.keyring = keyring
        self.notifier = notifier
        self.from_address = from_address
        self.site_name = site_name
        self.templates = templates or make_templates()

    def send(
        self,
        session_factory: sessionmaker[Session],
        kind: str,
        *,
        due_before: datetime | None = None,
    ) -> int:
        """Queue a digest of what is new for everyone taking `kind` digests (with `due_before`,
        only those whose last one went out before it); returns how many messages were queued."""
        if kind not in PERIODS:
            raise ValueError(f"unknown digest period {kind!r}; use daily or weekly")
        wanted = (
            select(Subscription.person_id)
            .where(Subscription.active.is_(True), Subscription.digest == kind)
            .distinct()
        )
        # Those who take the blog's new posts as a digest too (new_posts.take_new_posts).
        blog_wanted = select(BlogSubscription.person_id).where(
            BlogSubscription.active.is_(True), BlogSubscription.digest == kind
        )
        if due_before is not None:
            wanted = wanted.where(
                Subscription.digest_sent_at.is_(None) | (Subscription.digest_sent_at < due_before)
            )
            blog_wanted = blog_wanted.where(
                BlogSubscription.digest_sent_at.is_(None)
                | (BlogSubscription.digest_sent_at < due_before)
            )
        with session_factory() as session:
            people = sorted({*session.scalars(wanted), *session.scalars(blog_wanted)})
        if not people:
            return 0
        horizon = comment_horizon(session_factory)
        queued = 0
        for person_id in people:
            try:
                # One transaction per person: a crash mid-run keeps what was queued.
                with session_factory.begin() as session:
                    queued += self._queue_for(session, kind, person_id, horizon)
            except (IntegrityError, _Superseded):
                log.info("the %s digest of person #%s was queued by another run", kind, person_id)
            except Exception:
                # One person's digest failing (a template mistake) must not hold up the
                # others'; theirs is tried again on the next run, watermark unmoved.
                log.exception("the %s digest of person #%s failed", kind, person_id)
        return queued

    def _queue_for(self, session: Session, kind: str, person_id: int, horizon: int) -> int:
        """Queue one person's digest(s) of the comments after their watermarks up to
        `horizon`, and move the watermarks there; returns how many messages."""
        subscriptions = session.execute(
            select(Subscription.id, Subscription.post_id, Subscription.digest_through).where(
                Subscription.person_id == person_id,
                Subscription.active.is_(True),
                Subscription.digest == kind,
            )
        ).all()
        person = session.get(Person, person_id)
        blog = session.scalar(
            select(BlogSubscription).where(
                BlogSubscription.person_id == person_id,
                BlogSubscription.active.is_(True),
                BlogSubscription.digest == kind,
            )
        )
        if (not subscriptions and blog is None) or person is None:
            return 0
        posts = take_new_posts(session, person_id) if blog is not None else []
        if posts is None:
            raise _Superseded  # another run took this person's new posts: it sends them
        comments: Sequence[Comment] = []
        if person.suspended_at is not None:
            pass  # mail to them stopped; what they missed meanwhile is not kept for later
        elif not deliverable_address(person.email):
            log.warning(
                "person #%s gets no digest: their address cannot stand in a To header", person_id
            )
        else:
            comments = session.scalars(
                select(Comment)
                .join(Subscription, Subscription.post_id == Comment.post_id)
                .where(
                    Subscription.id.in_([s.id for s in subscriptions]),
                    Comment.id > func.coalesce(Subscription.digest_through, 0),
                    Comment.id <= horizon,
                    Comment.author_id != person_id,
                    PUBLISHED,
                    Comment.import_key.is_(None),  # imported old comments are no news
                )
                .order_by(Comment.id)
            ).all()
        through = {s.id: max(horizon, s.digest_through or 0) for s in subscriptions}
        # The backlog AFTER the range, each read seeing what was committed when it began (READ
        # COMMITTED; on SQLite nothing commits meanwhile). An approval publishes its comment
        # and writes its backlog rows in one transaction, so it committed either before the
        # range read (the range and the backlog both see it: sent once, deduped by id), or
        # between the reads (the range missed it, the backlog has it), or after the backlog
        # read (both missed it; its rows stay, only rows read here are deleted, for the next
        # run). Read the other way round, an approval committed between the reads would be
        # sent by the range while its backlog rows stayed behind, to be sent again next time.
        owed = take_backlog(session, through, person_id)
        if person.suspended_at is None and deliverable_address(person.email):
            seen = {c.id for c in comments}
            extra = [c for c in owed if c.id not in seen]
            comments = sorted([*comments, *extra], key=lambda c: c.id) if extra else comments
        # (A suspended person's or an undeliverable address's backlog goes like their range,
        # and so do their new posts.) A post closed since its announcement takes no replies.
        if person.suspended_at is not None or not deliverable_address(person.email):
            posts = []
        posts = [post for post in posts if not post.closed]
        now = utcnow()
        if blog is not None:
            blog.digest_sent_at = now
        for subscription in subscriptions:
            # Compare and set: should another run have moved the watermark since we read it,
            # it has sent these comments, and this transaction is undone.
            moved = session.execute(
                update(Subscription)
                .where(
                    Subscription.id == subscription.id,
                    Subscription.digest_through.is_(None)
                    if subscription.digest_through is None
                    else Subscription.digest_through == subscription.digest_through,
                )
                .values(
                    digest_through=through[subscription.id],
                    digest_sent_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                raise _Superseded
        parts = [
            comments[start : start + MAX_COMMENTS_PER_DIGEST]
            for start in range(0, len(comments), MAX_COMMENTS_PER_DIGEST)
        ]
        if posts and not parts:
            parts = [[]]
        for number, part in enumerate(parts):
            # The new posts open the first message.
            self._queue_one(session, kind, person, part, posts if number == 0 else [])
        return len(parts)

    def _queue_one(
        self,
        session: Session,
        kind: str,
        person: Person,
        comments: Sequence[Comment],
        posts: Sequence[Post] = (),
    ) -> None:
        """Queue one digest message holding `comments` (in id order) after new `posts`."""
        if comments:
            message_id = digest_id(kind, comments[-1].id, person.id, self.book.domain)
        else:  # each new post, too, goes into one digest per person
            message_id = digest_id(kind, posts[-1].id, person.id, self.book.domain, "posts-")
        # The row first: its id goes into the digest's own Reply-To and bounce addresses.
        row = OutboundEmail(
            kind="digest",
            message_id=message_id,
            recipient_id=person.id,
            recipient=person.email,
            raw=b"",
        )
        session.add(row)
        session.flush()
        row.raw = self._render(session, kind, person, comments, row, posts)

    def _render(
        self,
        session: Session,
        kind: str,
        person: Person,
        comments: Sequence[Comment],
        row: OutboundEmail,
        posts: Sequence[Post] = (),
    ) -> bytes:
        sections: list[dict[str, object]] = []
        for comment in sorted(comments, key=lambda c: (c.post_id, c.id)):
            post = session.get(Post, comment.post_id)
            assert post is not None
            if not sections or sections[-1]["post_id"] != post.id:
                sections.append(
                    {"post_id": post.id, "title": post.title, "url": post.url, "comments": []}
                )
            parent = session.get(Comment, comment.parent_id) if comment.parent_id else None
            if parent is not None and not is_published(parent):
                parent = None  # a removed comment is not named
            items = sections[-1]["comments"]
            assert isinstance(items, list)
            items.append(
                {
                    "author": public_name(comment.author),
                    "parent_author": public_name(parent.author) if parent else "",
                    "body": comment.body,
                    "reply_address": self.book.reply_address(
                        ReplyTarget(post.id, comment.id, person.id), self.keyring
                    ),
                }
            )
        new_posts = [
            {
                "title": post.title,
                "url": post.url,
                "author": public_name(post.author),
                "reply_address": self.book.reply_address(
                    ReplyTarget(post.id, None, person.id), self.keyring
                ),
            }
            for post in posts
        ]
        everything = ReplyTarget(ALL_POSTS, None, person.id)
        # The templates word the dates the digest covers in their own language.
        times = [c.created_at for c in comments] + [p.created_at for p in posts]
        when = {"period": kind, "first": min(times).date(), "last": max(times).date()}
        message = new_message(
            sender_name=self.site_name,
            sender_address=self.from_address,
            to=person,
            subject=render_line(
                self.templates,
                "digest.subject",
                {
                    "site_name": self.site_name,
                    "count": len(comments),
                    "posts": len(posts),
                    **when,
                },
            ),
            message_id=row.message_id,
            date=utcnow(),
        )
        message["Reply-To"] = self.book.digest_address(row.id, person.id, self.keyring)
        self.notifier.list_headers(message, everything, f"{self.site_name} digest", "digest")
        bodies = render_bodies(
            self.templates,
            "digest",
            {
                "site_name": self.site_name,
                "sections": sections,
                "new_posts": new_posts,
                "unsubscribe_url": self.notifier.unsubscribe_url(everything),
                "forget_url": self.notifier.erasure_mail.request_url(person.id),
                **when,
            },
        )
        return message.as_bytes(bodies)
