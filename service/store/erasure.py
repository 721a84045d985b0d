"""Forgetting a person (GDPR article 17): everything about their address goes in one transaction."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.identity.addresses import AddressBook, Keyring
from service.store.engine import READ_ONLY
from service.store.models import (
    BlogSubscription,
    Comment,
    DigestNewPost,
    FollowRequest,
    IdempotencyKey,
    InboundEmail,
    InboundSource,
    InboundStatus,
    ModerationEvent,
    OutboundEmail,
    OutboundStatus,
    PendingComment,
    RejectionNotice,
    Subscription,
    UsedModerationLink,
    utcnow,
)
from service.store.people import Holdings, find_holdings, name_pattern
from service.store.suppression import suppress
from service.store.webhook_events import EventType, WebhookQueue

log = logging.getLogger(__name__)

KEEP_ANONYMOUS = "keep-anonymous"
DELETE = "delete"
COMMENT_CHOICES = (KEEP_ANONYMOUS, DELETE)
FORMER_READER = "A former reader"
ADDRESS_REMOVED = "[address removed]"
NAME_REMOVED = "[name removed]"
# What a deleted comment that others answered becomes, so their answers keep their place.
REMOVED_COMMENT = "This comment was removed at its author's request."
ERASED_REASON = "erased at the person's request"
MENTION_REASON = "source deleted: it named a person who asked to be forgotten"
_SIGN_OFF_PUNCTUATION = " \t-–—~,.!"  # noqa: RUF001 - dashes people sign off with


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure did, in counts only: this is what logs and answers may say."""

    found: bool  # whether anything at all was stored about the address
    person_id: int | None
    comments_anonymised: int
    comments_deleted: int
    comments_left_as_placeholder: int
    others_comments_scrubbed: int
    messages_erased: int
    others_messages_emptied: int
    outbound_deleted: int
    subscriptions_deleted: int

    def summary(self) -> str:
        """One sentence of counts, with no address, name or content."""
        if not self.found:
            return "nothing was stored about the address; it is now on the suppression list"
        return (
            f"{self.comments_anonymised} comment(s) kept anonymous, {self.comments_deleted} "
            f"deleted, {self.comments_left_as_placeholder} left as a placeholder under "
            f"answers; {self.others_comments_scrubbed} other comment(s) scrubbed; "
            f"{self.messages_erased} message(s) of theirs erased, "
            f"{self.others_messages_emptied} other message source(s) deleted; "
            f"{self.outbound_deleted} outbound mail(s) and {self.subscriptions_deleted} "
            "subscription(s) deleted; the address is on the suppression list"
        )


def scrub_text(text: str, email: str, name: str | None) -> str:
    """`text` without the address (any case), nor the distinctive name when one is given."""
    text = re.sub(re.escape(email), ADDRESS_REMOVED, text, flags=re.IGNORECASE)
    if name:
        text = name_pattern(name).sub(NAME_REMOVED, text)
    return text


def drop_sign_off(text: str, display_name: str) -> str:
    """`text` without closing lines that only sign it with the writer's name ("-- Ann",
    "Ann Smith"), which extraction keeps when it does not look like a signature block."""
    names = {display_name.strip().lower(), *(w.lower() for w in display_name.split())}
    names.discard("")
    lines = text.rstrip().splitlines()
    while lines and lines[-1].strip(_SIGN_OFF_PUNCTUATION).lower() in names:
        lines.pop()
        while lines and not lines[-1].strip():
            lines.pop()
    return "\n".join(lines)


def erase_raw_mail(session: Session, theirs: Iterable[int], naming: Iterable[int]) -> None:
    """Delete the raw source of inbound mail: `theirs` (their messages) become tombstones that
    say only that an erasure happened; `naming` (others' mail that named them) loses its
    source, its row stays. Mail not finished yet is finished as ignored, so no worker makes a
    comment of it: a worker's claim is only honoured while the row is still processing."""
    now = utcnow()
    own = sorted(set(theirs))
    for start in range(0, len(own), 500):
        chunk = own[start : start + 500]
        _empty_sources(session, chunk)
        values = {
            "raw_purged_at": now,
            "sha256": "",
            "sender": "",
            "recipient": "",
            "message_id": None,
            "reason": ERASED_REASON,
            "updated_at": now,
        }
        session.execute(update(InboundEmail).where(InboundEmail.id.in_(chunk)).values(**values))
        session.execute(
            update(InboundEmail)
            .where(
                InboundEmail.id.in_(chunk),
                InboundEmail.status.in_(
                    (InboundStatus.RECEIVED, InboundStatus.PROCESSING, InboundStatus.FAILED)
                ),
            )
            .values(
                status=InboundStatus.IGNORED, claimed_by=None, lease_until=None, finished_at=now
            )
        )
    others = sorted(set(naming) - set(own))
    for start in range(0, len(others), 500):
        chunk = others[start : start + 500]
        _empty_sources(session, chunk)
        session.execute(
            update(InboundEmail)
            .where(InboundEmail.id.in_(chunk))
            .values(raw_purged_at=now, reason=MENTION_REASON, updated_at=now)
        )


def _empty_sources(session: Session, inbound_ids: list[int]) -> None:
    """Empty the one stored copy of each of these messages (shared with its other recipients'
    rows: the message itself is what must go)."""
    sources = select(InboundEmail.source_id).where(InboundEmail.id.in_(inbound_ids))
    session.execute(update(InboundSource).where(InboundSource.id.in_(sources)).values(raw=b""))


def _comment_fates(session: Session, comments: list[Comment]) -> tuple[set[int], set[int]]:
    """For deleting a person's comments: those that can go, and those others answered, which
    stay as placeholders so the answers keep their place (a chain of their own is undone from
    its end)."""
    theirs = {c.id for c in comments}
    children: dict[int, set[int]] = {}
    if theirs:
        for child, parent in session.execute(
            select(Comment.id, Comment.parent_id).where(Comment.parent_id.in_(theirs))
        ):
            if parent is not None:
                children.setdefault(parent, set()).add(child)
    going: set[int] = set()
    changed = True
    while changed:
        changed = False
        for comment_id in theirs - going:
            if children.get(comment_id, set()) <= going:
                going.add(comment_id)
                changed = True
    return going, theirs - going


def _erase_comments(
    session: Session, holdings: Holdings, choice: str, webhooks: WebhookQueue | None = None
) -> tuple[int, int, int]:
    """Anonymise or delete their comments; returns (anonymised, deleted, placeholders).
    Deleted ones, placeholders too, are announced to the webhooks as comment.deleted."""
    person = holdings.person
    if person is None or not holdings.comments:
        return 0, 0, 0
    if choice == KEEP_ANONYMOUS:
        for comment in holdings.comments:
            body = drop_sign_off(comment.body, person.display_name)
            comment.body = scrub_text(body, holdings.email, holdings.name)
            comment.elided, comment.dedupe_key = "", None  # their quote and signature
        return len(holdings.comments), 0, 0
    going, kept = _comment_fates(session, holdings.comments)
    if webhooks is not None:
        webhooks.queue(session, EventType.DELETED, holdings.comments)
    for comment in holdings.comments:
        if comment.id in kept:
            comment.body, comment.elided, comment.dedupe_key = REMOVED_COMMENT, "", None
    session.flush()
    if going:
        ids = sorted(going)
        # Mail about them not yet sent goes; sent mail keeps its row but no longer points here.
        session.execute(
            delete(OutboundEmail).where(
                OutboundEmail.comment_id.in_(ids),
                OutboundEmail.status.in_((OutboundStatus.QUEUED, OutboundStatus.SENDING)),
            )
        )
        session.execute(
            update(OutboundEmail).where(OutboundEmail.comment_id.in_(ids)).values(comment_id=None)
        )
        # The moderation log keeps its lines (that something happened), not the comment.
        session.execute(
            update(ModerationEvent)
            .where(ModerationEvent.comment_id.in_(ids))
            .values(comment_id=None)
        )
        session.execute(delete(UsedModerationLink).where(UsedModerationLink.comment_id.in_(ids)))
        # A web answer still waiting for its confirmation becomes a comment of its own.
        session.execute(
            update(PendingComment).where(PendingComment.parent_id.in_(ids)).values(parent_id=None)
        )
        session.execute(
            update(PendingComment).where(PendingComment.comment_id.in_(ids)).values(comment_id=None)
        )
        for comment in holdings.comments:
            if comment.id in going:
                session.expunge(comment)
        session.execute(delete(Comment).where(Comment.id.in_(ids)))
    return 0, len(going), len(kept)


def _erase_web_and_moderation(session: Session, holdings: Holdings) -> None:
    """Their web requests go; a block of their address goes (with the address it needs);
    the moderation log and blocks keep their lines with the address and name scrubbed."""
    pending = [row.id for row in holdings.pending]
    follows = [row.id for row in holdings.follow_requests]
    for row in [*holdings.pending, *holdings.follow_requests]:
        session.expunge(row)
    session.execute(delete(PendingComment).where(PendingComment.id.in_(pending)))
    session.execute(delete(FollowRequest).where(FollowRequest.id.in_(follows)))
    for block in holdings.blocks:
        if block.value.lower() == holdings.email:
            session.delete(block)
        else:
            block.actor = ADDRESS_REMOVED  # a block they made, as a moderator
    for event in holdings.moderation_events:
        if event.actor.lower() == holdings.email:
            event.actor = ADDRESS_REMOVED
        event.note = scrub_text(event.note, holdings.email, holdings.name)


def forget(
    session: Session,
    email: str,
    book: AddressBook,
    keyring: Keyring,
    *,
    comments: str = KEEP_ANONYMOUS,
    looked: Holdings | None = None,
    webhooks: WebhookQueue | None = None,
) -> ErasureReport:
    """Erase everything stored about `email` in the caller's transaction: their raw mail (and
    others' mail naming them), subscriptions, queued and sent mail to them, bounces, refusal
    notices, their address and name; their comments kept anonymous or deleted (`comments`);
    the address then only as a salted hash on the suppression list. The person row stays as a
    tombstone, so tokens naming its id are refused and the id is never given again.
    `looked`: what a read-only look found before, so the raw mail it read is not read again.
    `webhooks`: where deleted comments are announced (comment.deleted), if anywhere."""
    if comments not in COMMENT_CHOICES:
        raise ValueError(f"comments must be one of {', '.join(COMMENT_CHOICES)}")
    now = utcnow()
    holdings = find_holdings(session, email, book, keyring, before=looked)
    found = not holdings.empty
    anonymised, deleted, placeholders = _erase_comments(session, holdings, comments, webhooks)
    for comment in holdings.mentioned_in:
        comment.body = scrub_text(comment.body, holdings.email, holdings.name)
        comment.elided = scrub_text(comment.elided, holdings.email, holdings.name)
    erase_raw_mail(session, holdings.inbound, holdings.mentioning)
    outbound_ids = [o.id for o in holdings.outbound]
    for outbound in holdings.outbound:
        session.expunge(outbound)
    if outbound_ids:
        session.execute(delete(OutboundEmail).where(OutboundEmail.id.in_(outbound_ids)))
    person = holdings.person
    subscriptions = 0
    if person is not None:
        subscriptions = len(holdings.subscriptions) + (holdings.blog_subscription is not None)
        session.execute(delete(Subscription).where(Subscription.person_id == person.id))
        session.execute(delete(DigestNewPost).where(DigestNewPost.person_id == person.id))
        session.execute(delete(BlogSubscription).where(BlogSubscription.person_id == person.id))
        person.email = f"erased-person-{person.id}"  # no door takes an address without "@"
        person.display_name = FORMER_READER
        person.bounce_score, person.suspended_at, person.erased_at = 0.0, now, now
        person.created_at = now
    session.execute(
        delete(RejectionNotice).where(RejectionNotice.id.in_([n.id for n in holdings.notices]))
    )
    session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.id.in_([r.id for r in holdings.requests]))
    )
    _erase_web_and_moderation(session, holdings)
    suppress(session, holdings.email)
    session.flush()
    return ErasureReport(
        found=found,
        person_id=person.id if person is not None else None,
        comments_anonymised=anonymised,
        comments_deleted=deleted,
        comments_left_as_placeholder=placeholders,
        others_comments_scrubbed=len(holdings.mentioned_in),
        messages_erased=len(holdings.inbound),
        others_messages_emptied=len(holdings.mentioning),
        outbound_deleted=len(outbound_ids),
        subscriptions_deleted=subscriptions,
    )


def forget_person(
    session_factory: sessionmaker[Session],
    engine: Engine,
    email: str,
    book: AddressBook,
    keyring: Keyring,
    *,
    comments: str = KEEP_ANONYMOUS,
    webhooks: WebhookQueue | None = None,
) -> ErasureReport:
    """Forget `email` in one transaction, then rid SQLite's write-ahead log of the old pages;
    the log line says that an erasure happened, never whose or what."""
    looked = None
    if engine.dialect.name == "sqlite":
        # Reading every raw message can take a while: do it first without the write lock,
        # which the SMTP edge needs for each message it accepts. SQLite gives ids in commit
        # order, so the erasure itself reads only what came in after this look.
        with session_factory() as session:
            session.connection(execution_options={READ_ONLY: True})
            looked = find_holdings(session, email, book, keyring)
    with session_factory.begin() as session:
        report = forget(
            session, email, book, keyring, comments=comments, looked=looked, webhooks=webhooks
        )
    truncate_write_ahead_log(engine)
    log.info("erasure done at a person's request: %s", report.summary())
    return report


def truncate_write_ahead_log(engine: Engine, attempts: int = 50) -> bool:
    """On SQLite, copy the write-ahead log into the database and cut it to zero bytes: its
    old frames still hold the pages as they were before the erasure. Readers in the middle
    of a transaction can delay it; True once done (always on other databases)."""
    if engine.dialect.name != "sqlite":
        return True
    for _ in range(attempts):
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            row = cursor.fetchone()
            busy = row is None or row[0]
            cursor.close()
        finally:
            connection.close()
        if not busy:
            return True
        time.sleep(0.1)
    log.warning("could not cut SQLite's write-ahead log after an erasure; it is cut next time")
    return False
