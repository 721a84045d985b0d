"""The SMTP/LMTP edge: refuse bad recipients at RCPT, commit the raw message, then answer 250."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Container
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from service.identity.addresses import AddressBook, Keyring
from service.inbound.ratelimit import RateLimiter
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
S421_DRAINING = "421 4.3.2 This server is shutting down; please try again shortly"
S451_STORE_FAILED = "451 4.3.0 Temporary failure storing your message; please try again later"
# Refusals every entrance shares (recipients, rates, size) are in service.inbound.recipients.

StoreFunction = Callable[[bytes, str, list[str], str], Awaitable[list[int]]]


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
        lmtp: bool = False,
        limiter: RateLimiter | None = None,
        forgotten: Container[int] = frozenset(),
    ) -> None:
        self.book = book
        self.keyring = keyring
        self.store = store
        self.max_recipients = max_recipients
        self.max_message_bytes = max_message_bytes
        self.on_stored = on_stored
        self.lmtp = lmtp
        self.limiter = limiter or RateLimiter({})
        # Ids of people who asked to be forgotten: addresses whose token names them are refused.
        self.forgotten = forgotten
        # Refusals by reply code ("550 5.1.1"), for /metrics; these never reach the database.
        self.refusals: Counter[str] = Counter()
        self.draining = False
        self.storing = 0  # DATA commits in progress; draining waits for them

    def check_recipient(self, address: str) -> str | None:
        """The refusal for an envelope recipient, or None when it is one of our addresses."""
        decided = our_recipient(self.book, self.keyring, address, self.forgotten)
        return decided if isinstance(decided, str) else None

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
        """Accept only valid reply addresses, and at most max_recipients of them."""
        if self.draining:
            return S421_DRAINING
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return S452_TOO_MANY_RCPTS
        refusal = self.check_recipient(address)
        if refusal:
            # The address itself is not logged: it carries a token.
            log.info("refused a recipient at RCPT with %s", refusal[:9])
            return refusal
        sender = (envelope.mail_from or "").lower()
        # Null-sender mail (bounces) comes from every MTA alike; only its address is limited.
        if sender not in ("", "<>") and not self.limiter.allow("sender", sender):
            log.info("rate limit: sender over its limit, answered 450")
            return S450_SENDER_RATE
        if not self.limiter.allow("address", address.lower()):
            log.info("rate limit: reply address over its limit, answered 450")
            return S450_ADDRESS_RATE
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return S250_RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Commit the raw message (one row per recipient), and only then answer 250."""
        raw = envelope.original_content or b""
        if len(raw) > self.max_message_bytes:
            return S552_TOO_BIG.format(limit=self.max_message_bytes)
        if not envelope.rcpt_tos:
            return S554_NO_RECIPIENTS
        sender = envelope.mail_from or ""
        if sender == "<>":
            sender = ""
        self.storing += 1
        try:
            # The commit runs off the event loop: it waits for fsync, and other sessions must not.
            via = "lmtp" if self.lmtp else "smtp"
            ids = await self.store(raw, sender, list(envelope.rcpt_tos), via)
        except Exception:
            log.exception("could not store an inbound message; answered 451")
            return S451_STORE_FAILED
        finally:
            self.storing -= 1
        log.info("stored inbound message(s) %s from <%s>", ids, sender)
        self.on_stored()
        # LMTP answers DATA once per recipient (RFC 2033); all were stored in one commit.
        return "\r\n".join([S250_STORED] * len(ids)) if self.lmtp else S250_STORED

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


# aiosmtpd's own refusals carry no enhanced status code (RFC 3463); these are added to them.
_ENHANCED_FOR = {
    "421": "4.3.2",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.3.1",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "550": "5.7.1",
    "553": "5.1.3",
    "554": "5.3.0",
    "555": "5.5.4",
}
_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")

# A path as nearly every client writes it: <local@domain>, both dot-atoms (RFC 5321 4.1.2),
# then nothing or parameters after a space. Anything else (quoted local parts, address
# literals, comments, source routes, the null path) goes to aiosmtpd's full parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(
    rf"<((?:{_ATOM}(?:\.{_ATOM})*)@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
    # Parameters: printable ASCII without "(" (a comment), after spaces only.
    r"(?:\Z| +(?=[!-'*-~]))([ -'*-~]*)\Z"
)


def with_enhanced_code(reply: str, max_message_bytes: int) -> str:
    """A refusal line with an enhanced status code, as every reply of ours has."""
    code, _, text = reply.partition(" ")
    if code == "552" and text.startswith("Error"):
        return S552_TOO_BIG.format(limit=max_message_bytes)
    if code not in _ENHANCED_FOR or _ENHANCED.match(text.split(" ", 1)[0]):
        return reply
    return f"{code} {_ENHANCED_FOR[code]} {text}"


class _EnhancedReplies:
    """Gives aiosmtpd's built-in refusals enhanced status codes (and our size sentence)."""

    max_message_bytes: int
    # RFC 5321 allows 1000 octets; broken clients send longer lines and their replies
    # are still worth having, so lines up to 128 KiB are taken.
    line_length_limit = 128 * 1024

    event_handler: Any

    async def push(self, status: Any) -> None:
        """Send a reply line, adding the enhanced code aiosmtpd leaves out; count refusals."""
        if isinstance(status, str) and status[:1] in ("4", "5") and "\r\n" not in status:
            status = with_enhanced_code(status, self.max_message_bytes)
            refusals = getattr(self.event_handler, "refusals", None)
            if refusals is not None:
                refusals[" ".join(status.split(" ", 2)[:2])] += 1
        await super().push(status)  # type: ignore[misc]

    local_part_limit: int

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The address of a MAIL or RCPT path and what follows it, as aiosmtpd's own parser
        gives them; the usual <local@domain> is read with one regular expression.

        aiosmtpd parses every path with the email package's RFC 5322 parser, and builds a
        class on each call: that was a quarter of the edge's CPU per message.
        """
        plain = _PLAIN_PATH.match(arg)
        if plain is None:
            return super()._getaddr(arg)  # type: ignore[misc]
        address, rest = plain.groups()
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest


class ReplySMTP(_EnhancedReplies, SMTP):
    """SMTP protocol with our size refusals."""


class ReplyLMTP(_EnhancedReplies, LMTP):
    """LMTP protocol (for an MTA such as Postfix in front) with our size refusals."""


def make_protocol(handler: ReplyHandler, protocol: str, hostname: str) -> SMTP:
    """One protocol instance per connection, as asyncio's create_server wants."""
    cls = ReplyLMTP if protocol == "lmtp" else ReplySMTP
    # hostname given: otherwise aiosmtpd calls getfqdn() on every connection.
    server = cls(
        handler,
        hostname=hostname,
        data_size_limit=handler.max_message_bytes,
        enable_SMTPUTF8=True,
        decode_data=False,
    )
    server.max_message_bytes = handler.max_message_bytes
    return server
