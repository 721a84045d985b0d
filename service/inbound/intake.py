"""Taking in one message by an entrance other than the SMTP listener (an MTA's pipe, a mail
provider's webhook): its size, its recipients, the rate limits, the commit; what to answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Container, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from service.identity.addresses import AddressBook, Keyring
from service.inbound.recipients import (
    S450_ADDRESS_RATE,
    S450_SENDER_RATE,
    S452_TOO_MANY_RCPTS,
    S552_TOO_BIG,
    S554_NO_RECIPIENTS,
    distinct,
    looks_like_message,
    our_recipient,
)

log = logging.getLogger(__name__)

# Every entrance a message can come through, as `inbound list --json` shows it in `via`.
VIAS = ("smtp", "lmtp", "pipe", "mailgun", "postmark", "sendgrid", "relay")
UNREADABLE = "554 5.6.0 This is not a mail message: it must start with its header fields"


# How accepted mail is committed: service.inbound.queue.GroupCommit, as the edge does it
# (raw, sender, recipients, via); the row ids, or it raises.
StoreMail = Callable[[bytes, str, list[str], str], Awaitable[list[int]]]


class Allowance(Protocol):
    """A rate limiter: service.inbound.ratelimit.RateLimiter, or StoredMailLimits."""

    def allow(self, kind: str, key: str) -> bool:
        """Count one message for `key` under the `kind` limit; False when over it."""
        ...


class Verdict(StrEnum):
    """What became of a message offered at an entrance."""

    STORED = "stored"  # committed: answer success
    REFUSED = "refused"  # none of its recipients is ours: permanent, do not send it again
    LIMITED = "limited"  # over a rate limit: temporary, send it again later
    TOO_BIG = "too_big"  # over REPLYD_MAX_MESSAGE_BYTES: permanent
    UNREADABLE = "unreadable"  # not a mail message at all: permanent


@dataclass(frozen=True)
class Taken:
    """The verdict on one message, the rows it was stored as, and the SMTP-style sentences
    that explain any refusal (one per refused recipient)."""

    verdict: Verdict
    ids: list[int] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """The sentences, one per line."""
        return "\n".join(self.sentences)


class Intake:
    """The same checks and the same store as the SMTP edge, for a whole message at once."""

    def __init__(
        self,
        book: AddressBook,
        keyring: Keyring,
        store: StoreMail,
        limiter: Allowance,
        *,
        max_message_bytes: int,
        max_recipients: int,
        on_stored: Callable[[], None] = lambda: None,
        forgotten: Container[int] = frozenset(),
    ) -> None:
        self.book = book
        self.keyring = keyring
        self.store = store
        self.limiter = limiter
        self.max_message_bytes = max_message_bytes
        self.max_recipients = max_recipients
        self.on_stored = on_stored
        # Ids of people who asked to be forgotten: addresses whose token names them are refused.
        self.forgotten = forgotten

    def check(self, raw: bytes, recipients: Iterable[str]) -> Taken | tuple[list[str], list[str]]:
        """The refusal that needs no database (size, form, no recipient of ours), or the
        recipients that are ours and the sentences for those that are not."""
        if len(raw) > self.max_message_bytes:
            return Taken(Verdict.TOO_BIG, [], [S552_TOO_BIG.format(limit=self.max_message_bytes)])
        if not looks_like_message(raw):
            return Taken(Verdict.UNREADABLE, [], [UNREADABLE])
        wanted = distinct([address.strip() for address in recipients if address.strip()])
        refusals: list[str] = []
        if len(wanted) > self.max_recipients:
            wanted = wanted[: self.max_recipients]
            refusals.append(S452_TOO_MANY_RCPTS)
        accepted: list[str] = []
        for address in wanted:
            decided = our_recipient(self.book, self.keyring, address, self.forgotten)
            if isinstance(decided, str):
                refusals.append(decided)
            else:
                accepted.append(address)
        if not accepted:
            return Taken(Verdict.REFUSED, [], refusals or [S554_NO_RECIPIENTS])
        return accepted, refusals

    async def take(self, raw: bytes, sender: str, recipients: Iterable[str], via: str) -> Taken:
        """Check the message as the edge checks RCPT and DATA, then commit it (one row per
        accepted recipient) and only then say STORED. A store failure raises: the caller
        answers "try again later"."""
        assert via in VIAS, via
        checked = self.check(raw, recipients)
        if isinstance(checked, Taken):
            log.info("%s: refused a message with %s", via, checked.sentences[0][:9])
            return checked
        accepted, refusals = checked
        over = self._over_limit(sender, accepted)
        if over is not None:
            log.info("%s: rate limit, answered %s", via, over[:9])
            return Taken(Verdict.LIMITED, [], [over])
        ids = await self.store(raw, sender, accepted, via)
        log.info("%s: stored inbound message(s) %s from <%s>", via, ids, sender)
        self.on_stored()
        return Taken(Verdict.STORED, ids, refusals)

    def _over_limit(self, sender: str, accepted: list[str]) -> str | None:
        """The sentence for a message over its sender's or a reply address's limit, else None
        (counted as the edge counts at RCPT: once per accepted recipient)."""
        for address in accepted:
            # Null-sender mail (bounces) comes from every MTA alike; only its address is limited.
            if sender and not self.limiter.allow("sender", sender.lower()):
                return S450_SENDER_RATE
            if not self.limiter.allow("address", address.lower()):
                return S450_ADDRESS_RATE
        return None
