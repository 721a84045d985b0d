"""What a prepared message to our addresses leads to: a comment, a refusal, a bounce, an opt-out."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from service.identity.addresses import AddressKind, Recipient
from service.inbound.classify import dmarc_failure
from service.inbound.outcome import Outcome, rejected
from service.inbound.prepare import Prepared
from service.inbound.route import route_reply
from service.outbound.audience import Audience
from service.outbound.bounces import read_bounce, record_bounce
from service.outbound.notify import Notifier
from service.store.engine import Deferred, execute_or_defer
from service.store.models import Comment, InboundStatus, OutboundEmail, Person, Post
from service.store.subscriptions import unsubscribe

log = logging.getLogger(__name__)

_NAME = (
    update(Person)
    .where(Person.id == bindparam("person_id"))
    .values(display_name=bindparam("display_name"))
)


def name_person(session: Session, person: Person, name: str, later: Deferred | None = None) -> None:
    """Give a person the display name their mail carries, in the caller's transaction (with
    `later`, when it is flushed).

    An UPDATE through Core, with the loaded object told it is current: the session's
    unit-of-work flush would cost several times the statement, for most first replies.
    """
    execute_or_defer(session, _NAME, [{"person_id": person.id, "display_name": name}], later)
    set_committed_value(person, "display_name", name)


class Decider:
    """Routes a prepared reply to its post and publishes it, or says why not; counts bounces
    and honours unsubscribe mail."""

    def __init__(self, notifier: Notifier, *, trust_authserv_id: str | None = None) -> None:
        self.notifier = notifier
        self.trust_authserv_id = trust_authserv_id

    def decide(
        self,
        session: Session,
        item: Prepared,
        audience: Audience,
        published: Mapping[str, int],
        later: Deferred | None,
    ) -> Outcome:
        """What a (person-written, or bounce) message to one of our addresses leads to.
        `audience` follows the posts replied to, `published` maps dedupe keys to the comments
        already made of them; `later` takes the writes of a published reply that can wait
        for the commit."""
        address = item.address
        if address is None:
            # Accepted at RCPT with a key since rotated out; route by threading instead.
            address = Recipient(AddressKind.REPLY)
        if later is not None and address.kind in (
            AddressKind.BOUNCE,
            AddressKind.UNSUBSCRIBE,
            AddressKind.FORGET,
        ):
            # These change subscriptions and people, and the audience reads them again.
            later.flush(session.connection())
        if address.kind is AddressKind.BOUNCE:
            outcome = self._bounce(session, address, item.mail.raw)
            audience.forget()  # the bounce may have suspended someone
            return outcome
        if address.kind is AddressKind.UNSUBSCRIBE:
            assert address.target is not None
            done = unsubscribe(session, address.target)
            audience.forget()
            return Outcome(InboundStatus.IGNORED, f"unsubscribe request handled: {done}")
        if address.kind is AddressKind.FORGET:
            return self._forget_request(session, item)
        if address.kind is AddressKind.DIGEST:
            return rejected(
                "digest", "reply to a digest's own address; the sender was told how to reply"
            )
        return self._publish(session, item, audience, published, later)

    def _forget_request(self, session: Session, item: Prepared) -> Outcome:
        """Mail to forget@: mail a confirmation link to the From address, if replyd knows a
        person there; only that link erases (a From header is no proof, invariant 7)."""
        assert item.message is not None
        sender = item.message.from_address.strip().lower()
        person = session.scalar(select(Person).where(Person.email == sender)) if sender else None
        if person is None:
            # Nothing is mailed to an address replyd holds no person for: a forged From
            # must not make this server write to strangers.
            return Outcome(InboundStatus.IGNORED, "erasure request from an unknown address")
        done = self.notifier.erasure_mail.queue_confirmation(session, person)
        return Outcome(InboundStatus.IGNORED, f"erasure request: {done}")

    def _bounce(self, session: Session, address: Recipient, raw: bytes) -> Outcome:
        """Count a bounce against the person the bounced message went to; never answer it."""
        sent = session.get(OutboundEmail, address.outbound_id)
        person = session.get(Person, address.person_id)
        if sent is None or person is None or sent.recipient_id != person.id:
            return Outcome(InboundStatus.IGNORED, "bounce for a message we have no record of")
        if person.erased_at is not None:
            return Outcome(InboundStatus.IGNORED, "bounce of mail to a person since forgotten")
        verdict = record_bounce(session, person, read_bounce(raw))
        return Outcome(InboundStatus.IGNORED, f"bounce of outbound #{sent.id}: {verdict}")

    def _publish(
        self,
        session: Session,
        item: Prepared,
        audience: Audience,
        published: Mapping[str, int],
        later: Deferred | None,
    ) -> Outcome:
        """Decide whether the reply may be published; if so store it and queue its mail."""
        mail, message, extraction, key = item.mail, item.message, item.extraction, item.key
        assert message is not None and extraction is not None and key is not None
        if self.trust_authserv_id:
            forged = dmarc_failure(message, self.trust_authserv_id)
            if forged:
                # No notice: the From address is probably not the one who sent this.
                return Outcome(InboundStatus.REJECTED, forged)
        # The token was verified with the address; a reply without a valid one goes by threading.
        route = route_reply(session, item.address.target if item.address else None, message)
        if route.target is None:
            return rejected("no_route", route.reason)
        target = route.target
        post = session.get(Post, target.post_id)
        person = session.get(Person, target.person_id)
        if post is None or person is None:
            return rejected("gone", "the post or person this address names is gone")
        if person.erased_at is not None:
            # No notice either: the sender is (or poses as) someone who asked never to be
            # mailed again.
            return Outcome(InboundStatus.REJECTED, "the person this address names was forgotten")
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
        existing = published.get(key)
        if existing is not None:
            return Outcome(
                InboundStatus.IGNORED, f"duplicate of the reply published as comment #{existing}"
            )
        if not person.display_name and message.from_name:
            name_person(session, person, message.from_name[:200], later)
        comment = Comment(
            post_id=post.id,
            parent_id=parent.id if parent else None,
            author_id=person.id,
            body=extraction.reply.strip(),
            elided=extraction.elided,
            source="email",
            inbound_email_id=mail.id,
            dedupe_key=key,
        )
        queued = self.notifier.publish(session, comment, post, person, audience, later)
        log.info(
            "inbound #%s became comment #%s on %r (%s notifications)",
            mail.id,
            comment.id,
            post.slug,
            queued,
        )
        return Outcome(InboundStatus.PROCESSED, None, comment.id)
