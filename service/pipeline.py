"""Takes one claimed inbound message to exactly one terminal state."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.addresses import AddressBook, Keyring
from service.classify import auto_generated_reason
from service.extract import Extraction, extract_reply
from service.inbox import MAX_ATTEMPTS, finish
from service.models import Comment, InboundEmail, InboundStatus, Person, Post
from service.notify import Notifier, follow
from service.parse import ParsedMessage, parse_message
from service.route import route_reply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """Where a message ended: its terminal status, the reason, and the comment it made."""

    status: InboundStatus
    reason: str | None = None
    comment_id: int | None = None


def dedupe_key(message_id: str | None, raw_sha256: str, sender: str, recipient: str) -> str:
    """Identity of a reply across redeliveries: Message-ID (or content), sender, reply address."""
    identity = message_id or f"sha256:{raw_sha256}"
    return hashlib.sha256(f"{identity}\0{sender.lower()}\0{recipient.lower()}".encode()).hexdigest()


class Pipeline:
    """parse → classify → extract → route → store comment and notifications, in one go."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        book: AddressBook,
        keyring: Keyring,
        notifier: Notifier,
        *,
        own_addresses: Collection[str],
        quotes_only: bool = False,
    ) -> None:
        self.session_factory = session_factory
        self.book = book
        self.keyring = keyring
        self.notifier = notifier
        self.own_addresses = own_addresses
        self.quotes_only = quotes_only

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
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            with self.session_factory.begin() as session:
                row = self._claimed(session, inbound_id, worker)
                if row is None:
                    return None
                finish(session, row, InboundStatus.FAILED, reason)
            return Outcome(InboundStatus.FAILED, reason)

    @staticmethod
    def _claimed(session: Session, inbound_id: int, worker: str) -> InboundEmail | None:
        row = session.get(InboundEmail, inbound_id)
        if row is None or row.status != InboundStatus.PROCESSING or row.claimed_by != worker:
            return None
        return row

    def _process(
        self, inbound_id: int, worker: str, raw: bytes, sender: str, recipient: str, sha: str
    ) -> Outcome | None:
        message = parse_message(raw)
        ignore = auto_generated_reason(message, sender, self.own_addresses)
        # CPU-heavy steps run before the write transaction, so it stays short.
        extraction = (
            None
            if ignore
            else extract_reply(message.text, message.html, quotes_only=self.quotes_only)
        )
        key = dedupe_key(message.message_id, sha, sender, recipient)
        try:
            with self.session_factory.begin() as session:
                row = self._claimed(session, inbound_id, worker)
                if row is None:
                    return None
                if ignore:
                    outcome = Outcome(InboundStatus.IGNORED, ignore)
                else:
                    assert extraction is not None
                    outcome = self._publish(session, row, message, extraction, key)
                finish(session, row, outcome.status, outcome.reason)
                return outcome
        except IntegrityError:
            # Another worker published the same reply between our check and our insert.
            with self.session_factory.begin() as session:
                row = self._claimed(session, inbound_id, worker)
                if row is None:
                    return None
                outcome = Outcome(InboundStatus.IGNORED, "duplicate of a reply already published")
                finish(session, row, outcome.status, outcome.reason)
                return outcome

    def _publish(
        self,
        session: Session,
        row: InboundEmail,
        message: ParsedMessage,
        extraction: Extraction,
        key: str,
    ) -> Outcome:
        """Decide whether the reply may be published; if so store it and queue its mail."""
        route = route_reply(session, self.book, self.keyring, row.recipient, message)
        if route.target is None:
            return Outcome(InboundStatus.REJECTED, route.reason)
        target = route.target
        post = session.get(Post, target.post_id)
        person = session.get(Person, target.person_id)
        if post is None or person is None:
            return Outcome(InboundStatus.REJECTED, "the post or person this address names is gone")
        if message.from_address != person.email:
            return Outcome(
                InboundStatus.REJECTED,
                f"sender mismatch: From <{message.from_address}> is not the person this reply "
                "address was issued to",
            )
        if post.closed:
            return Outcome(InboundStatus.REJECTED, f"post {post.slug!r} is closed to comments")
        parent = None
        if target.comment_id is not None:
            parent = session.get(Comment, target.comment_id)
            if parent is None or parent.post_id != post.id:
                return Outcome(InboundStatus.REJECTED, "the comment replied to no longer exists")
        if not extraction.reply.strip():
            return Outcome(
                InboundStatus.REJECTED,
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
        session.add(comment)
        session.flush()
        follow(session, post, person)
        session.flush()
        queued = self.notifier.queue_for_comment(session, comment, post)
        log.info(
            "inbound #%s became comment #%s on %r (%s notifications)",
            row.id,
            comment.id,
            post.slug,
            queued,
        )
        return Outcome(InboundStatus.PROCESSED, None, comment.id)
