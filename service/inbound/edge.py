"""The SMTP/LMTP edge: refuse bad recipients at RCPT, commit the raw message, then answer 250."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Container

from aiosmtpd.smtp import SMTP, Envelope, Session

from service.identity.addresses import AddressBook, AddressKind, Keyring, Recipient
from service.inbound.ratelimit import RateLimiter, sender_key
from service.inbound.recipients import (
    S450_ADDRESS_RATE,
    S450_SENDER_RATE,
    S452_TOO_MANY_RCPTS,
    S552_TOO_BIG,
    S554_NO_RECIPIENTS,
    our_recipient,
)

log = logging.getLogger(__name__)

# Replies are data: every answer the edge gives, with its enhanced status code (RFC 3463).
S250_RCPT_OK = "250 2.1.5 Recipient OK"
S250_STORED = "250 2.0.0 Message accepted; it will appear as a comment shortly"
S250_STORED_ANY = "250 2.0.0 Message accepted"
# What the 250 after DATA says, by the kind of address the message went to.
S250_STORED_FOR = {
    AddressKind.REPLY: S250_STORED,
    AddressKind.BOUNCE: "250 2.0.0 Delivery status notification accepted; bounce recorded",
    AddressKind.UNSUBSCRIBE: (
        "250 2.0.0 Unsubscribe request accepted; you will get no more mail about this post"
    ),
    AddressKind.DIGEST: (
        "250 2.0.0 Message accepted; a reply to a digest is not published, "
        "you will be told how to reply"
    ),
    AddressKind.CONFIRM: "250 2.0.0 Confirmation accepted; your request will be carried out",
}
S421_DRAINING = "421 4.3.2 This server is shutting down; please try again shortly"
S451_STORE_FAILED = "451 4.3.0 Temporary failure storing your message; please try again later"
# Refusals every entrance shares (recipients, rates, size) are in service.inbound.recipients.
S450_CLIENT_RATE = "450 4.7.1 Too many messages from your address; please try again later"

StoreFunction = Callable[[bytes, str, list[str], str], Awaitable[list[int]]]


class ReplySession(Session):
    """An SMTP session, and whether its client greeted with LHLO (LMTP) and from where."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.lmtp = False
        self.client = ""  # the client's IP address


class ReplyEnvelope(Envelope):
    """An envelope, with the kind of each recipient accepted (by lower-cased address)."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: dict[str, AddressKind] = {}


def replies_after_data(session: Session, envelope: Envelope, reply: str) -> str:
    """The answer to DATA: once over SMTP; over LMTP once per accepted RCPT (RFC 2033 4.2),
    failures too, or the client waits for the rest and then sends the message again."""
    if isinstance(session, ReplySession) and session.lmtp and envelope.rcpt_tos:
        return "\r\n".join([reply] * len(envelope.rcpt_tos))
    return reply


class ReplyHandler:
    """aiosmtpd handler: checks reply addresses at RCPT and stores accepted mail at DATA."""

    def __init__(
        self,
        book: AddressBook,
        keyring: Keyring,
        store: StoreFunction,
        *,
        max_recipients: int,
        max_message_bytes: int,
        on_stored: Callable[[], None] = lambda: None,
        limiter: RateLimiter | None = None,
        forgotten: Container[int] = frozenset(),
    ) -> None:
        self.book = book
        self.keyring = keyring
        self.store = store
        self.max_recipients = max_recipients
        self.max_message_bytes = max_message_bytes
        self.on_stored = on_stored
        self.limiter = limiter or RateLimiter({})
        # Ids of people who asked to be forgotten: addresses whose token names them are refused.
        self.forgotten = forgotten
        # Refusals by reply code ("550 5.1.1"), for /metrics; these never reach the database.
        self.refusals: Counter[str] = Counter()
        self.draining = False
        self.storing = 0  # DATA commits in progress; draining waits for them

    def check_recipient(self, address: str) -> Recipient | str:
        """The verified recipient, or the refusal when the address is not one of ours (or
        names a person who asked to be forgotten)."""
        return our_recipient(self.book, self.keyring, address, self.forgotten)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Refuse new transactions while draining; otherwise accept any sender."""
        if self.draining:
            return S421_DRAINING
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Accept only valid reply addresses, at most max_recipients of them, while their
        sender, client and address are within their rate limits."""
        assert isinstance(envelope, ReplyEnvelope)
        if self.draining:
            return S421_DRAINING
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return S452_TOO_MANY_RCPTS
        recipient = self.check_recipient(address)
        if isinstance(recipient, str):
            # The address itself is not logged: it carries a token.
            log.info("refused a recipient at RCPT with %s", recipient[:9])
            return recipient
        key = address.lower()
        if key not in envelope.kinds:  # the same address again is the same copy, and free
            refusal = self._over_limit(session, envelope, key)
            if refusal:
                return refusal
            envelope.kinds[key] = recipient.kind
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return S250_RCPT_OK

    def _over_limit(self, session: Session, envelope: ReplyEnvelope, address: str) -> str | None:
        """The 450 for a recipient whose message would be over a rate limit, else None.
        Only looked at here: messages are counted once stored (see _count)."""
        client = session.client if isinstance(session, ReplySession) else ""
        wanted = len(envelope.kinds) + 1
        sender = envelope.mail_from or ""
        # Null-sender mail (bounces) comes from every MTA alike; only its address is limited.
        if sender not in ("", "<>") and not self.limiter.allows(
            "sender", sender_key(client, sender), wanted
        ):
            log.info("rate limit: sender over its limit, answered 450")
            return S450_SENDER_RATE
        if not self.limiter.allows("client", client, wanted):
            log.info("rate limit: client address over its limit, answered 450")
            return S450_CLIENT_RATE
        if not self.limiter.allows("address", address):
            log.info("rate limit: reply address over its limit, answered 450")
            return S450_ADDRESS_RATE
        return None

    def _count(self, session: Session, sender: str, recipients: list[str]) -> None:
        """Count a stored message against its sender, client and reply addresses."""
        client = session.client if isinstance(session, ReplySession) else ""
        if sender:
            self.limiter.charge("sender", sender_key(client, sender), len(recipients))
        self.limiter.charge("client", client, len(recipients))
        for address in recipients:
            self.limiter.charge("address", address)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Commit the raw message once (one row per distinct recipient), and only then
        answer 250: once over SMTP, once per accepted RCPT over LMTP."""
        assert isinstance(envelope, ReplyEnvelope)
        raw = envelope.original_content or b""
        if len(raw) > self.max_message_bytes:
            return replies_after_data(
                session, envelope, S552_TOO_BIG.format(limit=self.max_message_bytes)
            )
        if not envelope.rcpt_tos:
            return S554_NO_RECIPIENTS
        recipients = list(envelope.kinds)  # distinct, lower-cased, in the order given
        sender = envelope.mail_from or ""
        if sender == "<>":
            sender = ""
        self.storing += 1
        try:
            # The commit runs off the event loop: it waits for fsync, and other sessions must not.
            via = "lmtp" if isinstance(session, ReplySession) and session.lmtp else "smtp"
            ids = await self.store(raw, sender, recipients, via)
        except Exception:
            log.exception("could not store an inbound message; answered 451")
            return replies_after_data(session, envelope, S451_STORE_FAILED)
        finally:
            self.storing -= 1
        self._count(session, sender, recipients)
        log.info("stored inbound message(s) %s from <%s>", ids, sender)
        self.on_stored()
        if isinstance(session, ReplySession) and session.lmtp:
            # One reply per accepted RCPT (RFC 2033), each saying what its own address does.
            kinds = [envelope.kinds[address.lower()] for address in envelope.rcpt_tos]
            return "\r\n".join(S250_STORED_FOR.get(kind, S250_STORED_ANY) for kind in kinds)
        kinds = list(set(envelope.kinds.values()))
        return (
            S250_STORED_FOR.get(kinds[0], S250_STORED_ANY) if len(kinds) == 1 else S250_STORED_ANY
        )

    async def drained(self, timeout: float) -> bool:
        """Wait until no DATA commit is in progress (so each gets its reply); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.storing and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return not self.storing

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Advertise ENHANCEDSTATUSCODES (RFC 2034): every reply of ours carries one."""
        session.host_name = hostname
        return [*responses[:-1], "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected error is temporary for the sender, and never shows our internals."""
        log.error("error in SMTP session: %r", error)
        return S451_STORE_FAILED
