"""Takes one claimed inbound message to exactly one terminal state."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.addresses import AddressBook, AddressKind, Keyring, Recipient
from service.bounces import read_bounce, record_bounce
from service.classify import auto_generated_reason, dmarc_failure
from service.extract import Extraction, extract_reply
from service.inbox import MAX_ATTEMPTS, finish
from service.models import Comment, InboundEmail, InboundStatus, OutboundEmail, Person, Post
from service.notices import RejectionNotices
from service.notify import Notifier
from service.parse import ParsedMessage, parse_message
from service.route import route_reply
from service.subscriptions import unsubscribe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """Where a message ended: terminal status, reason, the comment it made, the refusal code."""

    status: InboundStatus
    reason: str | None = None
    comment_id: int | None = None
    code: str | None = None  # for rejections: which explanation the sender gets


def rejected(code: str, reason: str) -> Outcome:
    """A refusal after DATA, with the code of the notice the sender gets."""
    return Outcome(InboundStatus.REJECTED, reason, code=code)


def dedupe_key(message_id: str | None, raw_sha256: str, sender: str, recipient: str) -> str:
    """Identity of a reply across redeliveries: Message-ID (or content), sender, reply address."""
    identity = message_id or f"sha256:{raw_sha256}"
    key = f"{identity}\0{sender.lower()}\0{recipient.lower()}"
    return hashlib.sha256(key.encode()).hexdigest()


class Pipeline:
    """parse → classify → extract → route → store comment and notifications, in one go."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        book: AddressBook,
        keyring: Keyring,
        notifier: Notifier,
        notices: RejectionNotices,
        *,
        own_addresses: Collection[str],
        quotes_only: bool = False,
        trust_authserv_id: str | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.book = book
        self.keyring = keyring
        self.notifier = notifier
        self.notices = notices
        self.own_addresses = own_addresses
        self.quotes_only = quotes_only
        self.trust_authserv_id = trust_authserv_id

    def process(self, inbound_id: int, worker: str) -> Outcome | None:
        """Process a row this worker claimed; None if the claim was lost to another worker."""
        with self.session_factory.begin() as session:
            row = self._claimed(session, inbound_id, worker)
            if row is None:
                return None
            if row.attempts > MAX_ATTEMPTS:
                reason = f"gave up after {row.attempts - 1} attempts that never finished"
                finish(session, row, InboundStatus.FAILED, reason)
                return Outcome(InboundStatus.FAILED, reason)
            raw, sender, recipient, sha = row.raw, row.sender, row.recipient, row.sha256
        try:
            return self._process(inbound_id, worker, raw, sender, recipient, sha)
        except Exception as exc:
            log.exception("processing inbound #%s failed", inbound_id)
            return self._finish_alone(
                inbound_id,
                worker,
                Outcome(InboundStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000]),
            )

    @staticmethod
    def _claimed(session: Session, inbound_id: int, worker: str) -> InboundEmail | None:
        # Locked (PostgreSQL): a worker whose lease lapsed cannot finish the row while the
        # worker that took it over does; SQLite's write lock already serialises them.
        row = session.get(InboundEmail, inbound_id, with_for_update=True)
        if row is None or row.status != InboundStatus.PROCESSING or row.claimed_by != worker:
            return None
        return row

    def _finish_alone(self, inbound_id: int, worker: str, outcome: Outcome) -> Outcome | None:
        """Record an outcome in a transaction of its own."""
        with self.session_factory.begin() as session:
            row = self._claimed(session, inbound_id, worker)
            if row is None:
                return None
            finish(session, row, outcome.status, outcome.reason)
            return outcome

    def _process(
        self, inbound_id: int, worker: str, raw: bytes, sender: str, recipient: str, sha: str
    ) -> Outcome | None:
        address = self.book.recipient(recipient, self.keyring)
        message = parse_message(raw)
        ignore = None
        if address is None or address.kind is not AddressKind.BOUNCE:
            ignore = auto_generated_reason(message, sender, self.own_addresses)
        # CPU-heavy steps run before the write transaction, so it stays short.
        extraction = None
        if ignore is None and (address is None or address.kind is AddressKind.REPLY):
            extraction = extract_reply(message.text, message.html, quotes_only=self.quotes_only)
        key = dedupe_key(message.message_id, sha, sender, recipient)
        try:
            with self.session_factory.begin() as session:
                row = self._claimed(session, inbound_id, worker)
                if row is None:
                    return None
                if ignore:
                    outcome = Outcome(InboundStatus.IGNORED, ignore)
                else:
                    outcome = self._decide(session, row, address, message, raw, extraction, key)
                if outcome.code:
                    self.notices.queue(
                        session,
                        inbound_id=row.id,
                        to=message.from_address or sender,
                        code=outcome.code,
                        subject=message.subject,
                        in_reply_to=message.message_id,
                    )
                finish(session, row, outcome.status, outcome.reason)
                return outcome
        except IntegrityError:
            # Another worker published the same reply between our check and our insert.
            duplicate = Outcome(InboundStatus.IGNORED, "duplicate of a reply already published")
            return self._finish_alone(inbound_id, worker, duplicate)

    def _decide(
        self,
        session: Session,
        row: InboundEmail,
        address: Recipient | None,
        message: ParsedMessage,
        raw: bytes,
        extraction: Extraction | None,
        key: str,
    ) -> Outcome:
        """What a (person-written, or bounce) message to one of our addresses leads to."""
        if address is None:
            # Accepted at RCPT with a key since rotated out; route by threading instead.
            address = Recipient(AddressKind.REPLY)
        if address.kind is AddressKind.BOUNCE:
            return self._bounce(session, address, raw)
        if address.kind is AddressKind.UNSUBSCRIBE:
            assert address.target is not None
            done = unsubscribe(session, address.target)
            return Outcome(InboundStatus.IGNORED, f"unsubscribe request handled: {done}")
        if address.kind is AddressKind.DIGEST:
            return rejected(
                "digest", "reply to a digest's own address; the sender was told how to reply"
            )
        assert extraction is not None
        return self._publish(session, row, message, extraction, key)

    def _bounce(self, session: Session, address: Recipient, raw: bytes) -> Outcome:
        """Count a bounce against the person the bounced message went to; never answer it."""
        sent = session.get(OutboundEmail, address.outbound_id)
        person = session.get(Person, address.person_id)
        if sent is None or person is None or sent.recipient_id != person.id:
            return Outcome(InboundStatus.IGNORED, "bounce for a message we have no record of")
        verdict = record_bounce(session, person, read_bounce(raw))
        return Outcome(InboundStatus.IGNORED, f"bounce of outbound #{sent.id}: {verdict}")

    def _publish(
        self,
        session: Session,
        row: InboundEmail,
        message: ParsedMessage,
        extraction: Extraction,
        key: str,
    ) -> Outcome:
        """Decide whether the reply may be published; if so store it and queue its mail."""
        if self.trust_authserv_id:
            forged = dmarc_failure(message, self.trust_authserv_id)
            if forged:
                # No notice: the From address is probably not the one who sent this.
                return Outcome(InboundStatus.REJECTED, forged)
        route = route_reply(session, self.book, self.keyring, row.recipient, message)
        if route.target is None:
            return rejected("no_route", route.reason)
        target = route.target
        post = session.get(Post, target.post_id)
        person = session.get(Person, target.person_id)
        if post is None or person is None:
            return rejected("gone", "the post or person this address names is gone")
        if message.from_address != person.email:
            return rejected(
                "sender_mismatch",
                f"sender mismatch: From <{message.from_address}> is not the person this reply "
                "address was issued to",
            )
        if post.closed:
            return rejected("closed", f"post {post.slug!r} is closed to comments")
        parent = None
        if target.comment_id is not None:
            parent = session.get(Comment, target.comment_id)
            if parent is None or parent.post_id != post.id:
                return rejected("gone", "the comment replied to no longer exists")
        if not extraction.reply.strip():
            return rejected(
                "empty",
                "empty reply: nothing was left after removing the quoted text and signature",
            )
        existing = session.scalar(select(Comment.id).where(Comment.dedupe_key == key))
        if existing is not None:
            return Outcome(
                InboundStatus.IGNORED, f"duplicate of the reply published as comment #{existing}"
            )
        if not person.display_name and message.from_name:
            person.display_name = message.from_name[:200]
        comment = Comment(
            post_id=post.id,
            parent_id=parent.id if parent else None,
            author_id=person.id,
            body=extraction.reply.strip(),
            elided=extraction.elided,
            source="email",
            inbound_email_id=row.id,
            dedupe_key=key,
        )
        queued = self.notifier.publish(session, comment, post, person)
        log.info(
            "inbound #%s became comment #%s on %r (%s notifications)",
            row.id,
            comment.id,
            post.slug,
            queued,
        )
        return Outcome(InboundStatus.PROCESSED, None, comment.id)
