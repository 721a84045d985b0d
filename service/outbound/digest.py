"""Daily and weekly digests: one message per subscriber and period, sent exactly once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from jinja2 import Environment
from sqlalchemy import select
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
from service.outbound.notify import Notifier
from service.store.models import Comment, OutboundEmail, Person, Post, Subscription

log = logging.getLogger(__name__)

PERIODS = ("daily", "weekly")


@dataclass(frozen=True)
class Period:
    """One digest period: its kind and the half-open UTC interval it covers."""

    kind: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """Stable name of the period, used in Message-IDs so each is sent once."""
        return f"{self.kind}-{self.start:%Y%m%d}"


def last_complete_period(kind: str, now: datetime) -> Period:
    """The most recent whole day (or Monday-to-Monday week) before `now`, in UTC."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "daily":
        return Period(kind, midnight - timedelta(days=1), midnight)
    if kind == "weekly":
        monday = midnight - timedelta(days=midnight.weekday())
        return Period(kind, monday - timedelta(days=7), monday)
    raise ValueError(f"unknown digest period {kind!r}; use daily or weekly")


def digest_id(period: Period, person_id: int, domain: str) -> str:
    """The Message-ID of one person's digest for one period (unique: the exactly-once key)."""
    return f"<digest-{period.key}.to-{person_id}@{domain}>"


class Digests:
    """Builds and queues digests; running it twice for a period queues nothing new."""

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

    def send(self, session_factory: sessionmaker[Session], period: Period) -> int:
        """Queue this period's digest for every subscriber who has news; returns how many."""
        with session_factory() as session:
            people = session.scalars(
                select(Subscription.person_id)
                .where(Subscription.active.is_(True), Subscription.digest == period.kind)
                .distinct()
            ).all()
        queued = 0
        for person_id in people:
            try:
                # One transaction per person: a crash mid-run keeps what was queued.
                with session_factory.begin() as session:
                    queued += self._queue_one(session, period, person_id)
            except IntegrityError:
                log.info(
                    "digest %s for person %s was queued by another node", period.key, person_id
                )
        return queued

    def _queue_one(self, session: Session, period: Period, person_id: int) -> int:
        message_id = digest_id(period, person_id, self.book.domain)
        done = session.scalar(
            select(OutboundEmail.id).where(OutboundEmail.message_id == message_id)
        )
        person = session.get(Person, person_id)
        if done is not None or person is None or person.suspended_at is not None:
            return 0
        if not deliverable_address(person.email):
            log.warning(
                "person #%s gets no digest: their address cannot stand in a To header", person_id
            )
            return 0
        post_ids = session.scalars(
            select(Subscription.post_id).where(
                Subscription.person_id == person_id,
                Subscription.active.is_(True),
                Subscription.digest == period.kind,
            )
        ).all()
        comments = session.scalars(
            select(Comment)
            .where(
                Comment.post_id.in_(post_ids),
                Comment.author_id != person_id,
                Comment.created_at >= period.start,
                Comment.created_at < period.end,
            )
            .order_by(Comment.post_id, Comment.id)
        ).all()
        if not comments:
            return 0
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
        row.raw = self._render(session, period, person, comments, row.id)
        return 1

    def _render(
        self,
        session: Session,
        period: Period,
        person: Person,
        comments: Sequence[Comment],
        outbound_id: int,
    ) -> bytes:
        sections: list[dict[str, object]] = []
        for comment in comments:
            post = session.get(Post, comment.post_id)
            assert post is not None
            if not sections or sections[-1]["post_id"] != post.id:
                sections.append(
                    {"post_id": post.id, "title": post.title, "url": post.url, "comments": []}
                )
            parent = session.get(Comment, comment.parent_id) if comment.parent_id else None
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
        count = len(comments)
        # The templates word the period ("week of …") in their own language.
        when = {"period": period.kind, "start": period.start.date()}
        message = new_message(
            sender_name=self.site_name,
            sender_address=self.from_address,
            to=person,
            subject=render_line(
                self.templates,
                "digest.subject",
                {"site_name": self.site_name, "count": count, **when},
            ),
            message_id=digest_id(period, person.id, self.book.domain),
            date=period.end,
        )
        message["Reply-To"] = self.book.digest_address(outbound_id, person.id, self.keyring)
        self.notifier.list_headers(
            message, ReplyTarget(ALL_POSTS, None, person.id), f"{self.site_name} digest", "digest"
        )
        bodies = render_bodies(
            self.templates,
            "digest",
            {
                "site_name": self.site_name,
                "sections": sections,
                "forget_url": self.notifier.erasure_mail.request_url(person.id),
                **when,
            },
        )
        return message.as_bytes(bodies)
