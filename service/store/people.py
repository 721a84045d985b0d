"""What replyd holds about one person, found by their address, and the export of it as JSON."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from service.identity.addresses import AddressBook, Keyring
from service.store.models import (
    Block,
    BlogSubscription,
    Comment,
    FollowRequest,
    IdempotencyKey,
    InboundEmail,
    ModerationEvent,
    OutboundEmail,
    PendingComment,
    Person,
    Post,
    RejectionNotice,
    Subscription,
)
from service.store.suppression import is_suppressed

RAW_SCAN_ROWS = 200  # raw messages read at once when looking for an address in them
# Why an inbound message is the person's: they sent it, or it came to an address of theirs.
SENT_BY_THEM = "sent by them"
ADDRESS_KINDS = {
    "reply": "a reply to their reply address",
    "unsubscribe": "an unsubscribe request from their link",
    "bounce": "a bounce of mail sent to them",
    "digest": "a reply to their digest",
}
COMMENT_SOURCE = "the source of their comment"


def distinctive_name(name: str) -> str | None:
    """A display name specific enough to look for in other people's text: two words or more,
    each at least two letters ("Ann" alone would match every other Ann)."""
    words = name.split()
    if len(words) < 2 or any(len(word) < 2 for word in words):
        return None
    return " ".join(words)


def name_pattern(name: str) -> re.Pattern[str]:
    """A name as a whole-word, case-insensitive pattern (spaces match any run of spaces)."""
    parts = [re.escape(word) for word in name.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(parts) + r"(?!\w)", re.IGNORECASE)


@dataclass
class Holdings:
    """Everything stored about one address: the person row, and what names them."""

    email: str
    person: Person | None
    suppressed: bool
    name: str | None = None  # their display name, when distinctive enough to look for
    inbound: dict[int, str] = field(default_factory=dict)  # their messages: id -> why
    mentioning: set[int] = field(default_factory=set)  # others' messages naming them
    scanned_to: int = 0  # the raw of inbound rows up to this id was looked through
    comments: list[Comment] = field(default_factory=list)
    mentioned_in: list[Comment] = field(default_factory=list)  # others' comments naming them
    outbound: list[OutboundEmail] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    blog_subscription: BlogSubscription | None = None  # following the blog's new posts
    notices: list[RejectionNotice] = field(default_factory=list)
    requests: list[IdempotencyKey] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    # Web comments and follows waiting for (or past) the confirmation mailed to the address.
    pending: list[PendingComment] = field(default_factory=list)
    follow_requests: list[FollowRequest] = field(default_factory=list)
    # The moderation log's lines they made (as a moderator) or that name them, and blocks
    # of their address or made by them.
    moderation_events: list[ModerationEvent] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether nothing at all is stored about the address."""
        held = (self.inbound, self.mentioning, self.mentioned_in, self.outbound, self.notices)
        asked = (self.requests, self.pending, self.follow_requests)
        logged = (self.moderation_events, self.blocks)
        return self.person is None and not any(held) and not any(asked) and not any(logged)

    def needles(self) -> list[bytes]:
        """What to look for in raw mail: the address, and the name when distinctive."""
        found = [self.email.encode("utf-8")]
        if self.name:
            found.append(self.name.lower().encode("utf-8"))
        return found


def _mentions(column: Any, holdings: Holdings) -> ColumnElement[bool]:
    """SQL: the text column holds the address (or the distinctive name), in any case."""
    lowered = func.lower(column)
    terms = [lowered.contains(holdings.email, autoescape=True)]
    if holdings.name:
        terms.append(lowered.contains(holdings.name.lower(), autoescape=True))
    return or_(*terms)


def scan_raw(session: Session, holdings: Holdings) -> None:
    """Look through the raw source of inbound rows after `holdings.scanned_to` for the address
    (or name), a batch at a time; add those naming them to `mentioning`.

    Case-insensitive for ASCII, as addresses are; a name encoded in the message (base64,
    quoted-printable, RFC 2047) is not found, which retention makes good within its days.
    """
    needles = holdings.needles()
    while True:
        rows = session.execute(
            select(InboundEmail.id, InboundEmail.raw)
            .where(InboundEmail.id > holdings.scanned_to, InboundEmail.raw_purged_at.is_(None))
            .order_by(InboundEmail.id)
            .limit(RAW_SCAN_ROWS)
        ).all()
        for row_id, raw in rows:
            lowered = bytes(raw).lower()
            if any(needle in lowered for needle in needles) and row_id not in holdings.inbound:
                holdings.mentioning.add(row_id)
        if rows:
            holdings.scanned_to = rows[-1][0]
        if len(rows) < RAW_SCAN_ROWS:
            return


def find_holdings(
    session: Session,
    email: str,
    book: AddressBook,
    keyring: Keyring,
    *,
    scan: bool = True,
    before: Holdings | None = None,
) -> Holdings:
    """Everything stored about `email` (lower-cased): the person, their messages (sent by
    them, or to an address of theirs), their comments, subscriptions, mail sent to them,
    bounces, refusal notices, and what of other people's mail and comments names them.

    `before`, from an earlier look in a read-only transaction, saves reading again the raw
    mail it looked through (the slow part); the rest is read again.
    """
    email = email.strip().lower()
    person = session.scalar(select(Person).where(Person.email == email, Person.erased_at.is_(None)))
    holdings = Holdings(email, person, is_suppressed(session, email))
    if person is not None:
        holdings.name = distinctive_name(person.display_name)
    _find_inbound(session, holdings, book, keyring)
    if before is not None:
        holdings.scanned_to = before.scanned_to
        holdings.mentioning = {i for i in before.mentioning if i not in holdings.inbound}
    if scan:
        scan_raw(session, holdings)
    # A refusal's reason can quote the address (a From that did not match) after retention
    # deleted the message itself.
    holdings.mentioning |= (
        set(
            session.scalars(
                select(InboundEmail.id).where(
                    InboundEmail.reason.is_not(None), _mentions(InboundEmail.reason, holdings)
                )
            )
        )
        - holdings.inbound.keys()
    )
    pid = person.id if person is not None else None
    holdings.comments = list(
        session.scalars(select(Comment).where(Comment.author_id == pid).order_by(Comment.id))
    )
    for comment in holdings.comments:
        if comment.inbound_email_id is not None:
            holdings.inbound.setdefault(comment.inbound_email_id, COMMENT_SOURCE)
            holdings.mentioning.discard(comment.inbound_email_id)
    others = Comment.author_id != pid if pid is not None else Comment.id.is_not(None)
    holdings.mentioned_in = list(
        session.scalars(
            select(Comment)
            .where(
                others, or_(_mentions(Comment.body, holdings), _mentions(Comment.elided, holdings))
            )
            .order_by(Comment.id)
        )
    )
    to_them = func.lower(OutboundEmail.recipient) == email
    if pid is not None:
        to_them = or_(to_them, OutboundEmail.recipient_id == pid)
    holdings.outbound = list(
        session.scalars(select(OutboundEmail).where(to_them).order_by(OutboundEmail.id))
    )
    holdings.notices = list(
        session.scalars(select(RejectionNotice).where(func.lower(RejectionNotice.sender) == email))
    )
    holdings.requests = list(
        session.scalars(select(IdempotencyKey).where(_mentions(IdempotencyKey.response, holdings)))
    )
    _find_web_and_moderation(session, holdings)
    if pid is not None:
        holdings.subscriptions = list(
            session.scalars(select(Subscription).where(Subscription.person_id == pid))
        )
        holdings.blog_subscription = session.scalar(
            select(BlogSubscription).where(BlogSubscription.person_id == pid)
        )
        holdings.posts = list(session.scalars(select(Post).where(Post.author_id == pid)))
    return holdings


def _find_web_and_moderation(session: Session, holdings: Holdings) -> None:
    """Their web requests waiting for confirmation, and the moderation log and blocks that
    name them (as the one blocked, or as the moderator who acted)."""
    email = holdings.email
    holdings.pending = list(
        session.scalars(select(PendingComment).where(func.lower(PendingComment.email) == email))
    )
    holdings.follow_requests = list(
        session.scalars(select(FollowRequest).where(func.lower(FollowRequest.email) == email))
    )
    holdings.moderation_events = list(
        session.scalars(
            select(ModerationEvent)
            .where(
                or_(
                    func.lower(ModerationEvent.actor) == email,
                    _mentions(ModerationEvent.note, holdings),
                )
            )
            .order_by(ModerationEvent.id)
        )
    )
    of_or_by_them = or_(func.lower(Block.value) == email, func.lower(Block.actor) == email)
    holdings.blocks = list(session.scalars(select(Block).where(of_or_by_them)))


def _find_inbound(
    session: Session, holdings: Holdings, book: AddressBook, keyring: Keyring
) -> None:
    """Their messages: sent by them (envelope sender), or to one of their tokens (replies,
    unsubscribes, bounces of mail to them, replies to their digests)."""
    for row_id in session.scalars(
        select(InboundEmail.id).where(func.lower(InboundEmail.sender) == holdings.email)
    ):
        holdings.inbound[row_id] = SENT_BY_THEM
    if holdings.person is None:
        return
    person_id = holdings.person.id
    # Tokens are signed, not stored: each recipient is verified to see whom it names.
    for row_id, recipient in session.execute(select(InboundEmail.id, InboundEmail.recipient)):
        if row_id in holdings.inbound:
            continue
        address = book.recipient(recipient, keyring)
        if address is not None and address.named_person == person_id:
            holdings.inbound[row_id] = ADDRESS_KINDS.get(address.kind.value, SENT_BY_THEM)
