"""What a prepared message to our addresses leads to: a comment, a refusal, a bounce, an opt-out."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from service.identity.addresses import CONFIRM_COMMENT, AddressKind, Recipient
from service.inbound.classify import dmarc_failure, dmarc_pass
from service.inbound.outcome import Outcome, ignored, rejected
from service.inbound.prepare import Prepared
from service.inbound.route import route_reply
from service.moderation.blocks import Blocklist
from service.moderation.intake import Intake
from service.outbound.audience import Audience
from service.outbound.bounces import read_bounce, record_bounce
from service.outbound.confirmations import carry_out, look_up
from service.outbound.notify import Notifier
from service.store.engine import Deferred, execute_or_defer
from service.store.models import (
    MAX_COMMENT_CHARS,
    Comment,
    InboundStatus,
    OutboundEmail,
    Person,
    Post,
    ReasonCode,
    utcnow,
)
from service.store.subscriptions import unsubscribe
from service.store.visibility import is_published

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

    def __init__(self, intake: Intake, *, trust_authserv_id: str | None = None) -> None:
        self.intake = intake  # publishes a reply, or holds it for a moderator
        self.trust_authserv_id = trust_authserv_id

    @property
    def notifier(self) -> Notifier:
        """The notifier the intake publishes with: our addresses, keys and public-text rules."""
        return self.intake.notifier

    def decide(
        self,
        session: Session,
        item: Prepared,
        audience: Audience,
        published: Mapping[str, int],
        later: Deferred | None,
        blocks: Blocklist | None = None,
    ) -> Outcome:
        """What a (person-written, or bounce) message to one of our addresses leads to.
        `audience` follows the posts replied to, `published` maps dedupe keys to the comments
        already made of them; `later` takes the writes of a published reply that can wait
        for the commit; `blocks` holds the blocked senders among the batch's."""
        address = item.address
        if address is None:
            # Accepted at RCPT with a key since rotated out; route by threading instead.
            address = Recipient(AddressKind.REPLY)
        if blocks is not None and address.kind in (
            AddressKind.REPLY,
            AddressKind.DIGEST,
            AddressKind.CONFIRM,
        ):
            sender = item.message.from_address if item.message is not None else ""
            rule = blocks.rule_for(sender or "") or blocks.rule_for(item.mail.sender)
            if rule is not None:
                # No notice, no comment, no moderator woken: the sender learns nothing.
                return rejected(ReasonCode.BLOCKED, f"blocked sender ({rule})", notice=False)
        changes_people = (
            AddressKind.BOUNCE,
            AddressKind.UNSUBSCRIBE,
            AddressKind.CONFIRM,
            AddressKind.FORGET,
        )
        if later is not None and address.kind in changes_people:
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
            return ignored(ReasonCode.UNSUBSCRIBE, f"unsubscribe request handled: {done}")
        message = item.message
        assert message is not None
        if message.from_problem:
            # Nobody to answer: the From names no one mailbox we could write to in good faith.
            return rejected(ReasonCode.FROM_INVALID, message.from_problem, notice=False)
        if self.trust_authserv_id:
            forged = dmarc_failure(message, self.trust_authserv_id)
            if forged:
                # No notice: the From address is probably not the one who sent this.
                return rejected(ReasonCode.DMARC_FAIL, forged, notice=False)
        authenticated = bool(self.trust_authserv_id) and dmarc_pass(
            message, self.trust_authserv_id or ""
        )
        if address.kind is AddressKind.FORGET:
            return self._forget_request(session, item)
        if address.kind is AddressKind.CONFIRM:
            return self._confirm(session, item, audience, authenticated)
        if address.kind is AddressKind.DIGEST:
            reader = session.get(Person, address.person_id)
            proven = reader is not None and reader.email == message.from_address
            return rejected(
                ReasonCode.DIGEST,
                "reply to a digest's own address; the sender was told how to reply",
                notice=proven or authenticated,
            )
        return self._publish(session, item, audience, published, later, authenticated)

    def _forget_request(self, session: Session, item: Prepared) -> Outcome:
        """Mail to forget@: mail a confirmation link to the From address, if replyd knows a
        person there; only that link erases (a From header is no proof, invariant 7)."""
        assert item.message is not None
        sender = item.message.from_address.strip().lower()
        person = session.scalar(select(Person).where(Person.email == sender)) if sender else None
        if person is None:
            # Nothing is mailed to an address replyd holds no person for: a forged From
            # must not make this server write to strangers.
            return ignored(ReasonCode.ERASURE, "erasure request from an unknown address")
        done = self.notifier.erasure_mail.queue_confirmation(session, person)
        return ignored(ReasonCode.ERASURE, f"erasure request: {done}")

    def _bounce(self, session: Session, address: Recipient, raw: bytes) -> Outcome:
        """Count a bounce against the person the bounced message went to; never answer it."""
        sent = session.get(OutboundEmail, address.outbound_id)
        person = session.get(Person, address.person_id)
        if sent is None or person is None or sent.recipient_id != person.id:
            return ignored(ReasonCode.BOUNCE, "bounce for a message we have no record of")
        if person.erased_at is not None:
            return ignored(ReasonCode.BOUNCE, "bounce of mail to a person since forgotten")
        verdict = record_bounce(session, person, read_bounce(raw))
        return ignored(ReasonCode.BOUNCE, f"bounce of outbound #{sent.id}: {verdict}")

    def _confirm(
        self, session: Session, item: Prepared, audience: Audience, authenticated: bool
    ) -> Outcome:
        """A reply to a confirmation mail: from the address it was mailed to, it confirms the
        web comment (published now, or held for a moderator) or follow request it names,
        once. Only the address the mail went to (or an authenticated From) hears why not."""
        message, confirmation = item.message, item.address.confirmation if item.address else None
        assert message is not None and confirmation is not None
        now = utcnow()
        found = look_up(session, confirmation, now)
        if found is None or found.state == "expired":
            proven = found is not None and message.from_address == found.email
            return rejected(
                ReasonCode.EXPIRED,
                "the request this confirmation names has expired",
                notice=proven or authenticated,
            )
        if message.from_address != found.email:
            return rejected(
                ReasonCode.SENDER_MISMATCH,
                f"sender mismatch: From <{message.from_address}> is not the address this "
                "confirmation was mailed to",
                notice=authenticated,
            )
        done = carry_out(session, confirmation, self.intake, audience, now)
        assert done is not None
        if done.state == "closed":
            return rejected(
                ReasonCode.CLOSED, f"post {done.post_slug!r} is closed to comments", notice=True
            )
        if done.state == "already":
            return ignored(ReasonCode.DUPLICATE, "confirmed before; nothing more to do")
        if done.kind == CONFIRM_COMMENT:
            log.info("inbound #%s confirmed web comment #%s", item.mail.id, done.comment_id)
            return Outcome(
                InboundStatus.PROCESSED, "web comment confirmed by reply", done.comment_id
            )
        return ignored(
            ReasonCode.CONFIRMED, f"follow request confirmed by reply: post {done.post_slug!r}"
        )

    def _publish(
        self,
        session: Session,
        item: Prepared,
        audience: Audience,
        published: Mapping[str, int],
        later: Deferred | None,
        authenticated: bool,
    ) -> Outcome:
        """Decide whether the reply may be published; if so store it and queue its mail.

        Publishing needs proof (invariant 7): a token we signed for one person (in the reply
        address, or in the Message-ID of the notification answered) with that person's
        address in From, or a From our MTA authenticated. Only then is the sender told why a
        reply was refused; anyone else may be a forged bystander (`authenticated`: our MTA
        saw the From domain pass DMARC)."""
        mail, message, extraction, key = item.mail, item.message, item.extraction, item.key
        assert message is not None and extraction is not None and key is not None
        notifier = self.notifier
        route = route_reply(
            session,
            notifier.book,
            notifier.keyring,
            item.address.target if item.address else None,
            message,
            authenticated=authenticated,
        )
        if route.target is None:
            return rejected(ReasonCode.NO_ROUTE, route.reason, notice=authenticated)
        target = route.target
        post = session.get(Post, target.post_id)
        person = session.get(Person, target.person_id)
        if post is None or person is None:
            return rejected(
                ReasonCode.GONE,
                "the post or person this address names is gone",
                notice=authenticated,
            )
        if person.erased_at is not None:
            # No notice either: the sender is (or poses as) someone who asked never to be
            # mailed again.
            return rejected(
                ReasonCode.FORGOTTEN, "the person this address names was forgotten", notice=False
            )
        if message.from_address != person.email:
            return rejected(
                ReasonCode.SENDER_MISMATCH,
                f"sender mismatch: From <{message.from_address}> is not the person this reply "
                f"address was issued to (routed by {route.via})",
                notice=authenticated,
            )
        # From here on the sender is proven: the person the token was issued to.
        if post.closed:
            return rejected(
                ReasonCode.CLOSED, f"post {post.slug!r} is closed to comments", notice=True
            )
        parent = None
        if target.comment_id is not None:
            parent = session.get(Comment, target.comment_id)
            if parent is None or parent.post_id != post.id or not is_published(parent):
                return rejected(
                    ReasonCode.GONE, "the comment replied to no longer exists", notice=True
                )
        if not extraction.reply.strip():
            return rejected(
                ReasonCode.EMPTY,
                "empty reply: nothing was left after removing the quoted text and signature",
                notice=True,
            )
        if len(extraction.reply.strip()) > MAX_COMMENT_CHARS:
            # As long as the web allows, no more: each follower would be mailed all of it.
            return rejected(
                ReasonCode.TOO_LONG,
                f"too long: the reply has {len(extraction.reply.strip())} characters, "
                f"over the {MAX_COMMENT_CHARS} a comment may have",
                notice=True,
            )
        existing = published.get(key)
        if existing is not None:
            return ignored(
                ReasonCode.DUPLICATE, f"duplicate of the reply published as comment #{existing}"
            )
        if not person.display_name and message.from_name:
            name = notifier.public_text.clean_line(message.from_name)[:200]
            if name:
                name_person(session, person, name, later)
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
        queued = self.intake.submit(session, comment, post, person, audience, later)
        log.info(
            "inbound #%s became %s comment #%s on %r (%s mails queued)",
            mail.id,
            comment.status,
            comment.id,
            post.slug,
            queued,
        )
        return Outcome(InboundStatus.PROCESSED, None, comment.id)
