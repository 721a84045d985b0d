"""Preparing claimed mail without the database: parse, classify, extract (the CPU-heavy part)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass

from service.extraction.extract import Extraction, extract_reply
from service.identity.addresses import AddressBook, AddressKind, Keyring, Recipient
from service.inbound.classify import auto_generated
from service.inbound.outcome import Outcome, failure, ignored
from service.inbound.parse import ParsedMessage, parse_message
from service.inbound.queue import MAX_ATTEMPTS, ClaimedMail
from service.store.models import InboundStatus, ReasonCode

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """One claimed message after the CPU-heavy steps, ready to be decided in a transaction."""

    mail: ClaimedMail
    address: Recipient | None = None
    message: ParsedMessage | None = None
    ignore: Outcome | None = None  # machine-made mail: ignored, whatever it is addressed to
    extraction: Extraction | None = None
    key: str | None = None
    failed: Outcome | None = None  # already decided: it could not be read, or crashed too often


def dedupe_key(message_id: str | None, raw_sha256: str, sender: str, recipient: str) -> str:
    """Identity of a reply across redeliveries: Message-ID (or content), sender, reply address."""
    identity = message_id or f"sha256:{raw_sha256}"
    key = f"{identity}\0{sender.lower()}\0{recipient.lower()}"
    return hashlib.sha256(key.encode()).hexdigest()


class Preparer:
    """The CPU-heavy part of processing a message, which needs no database: parse, classify,
    extract. It may run in another process than the recording (see service.runtime.preparing)."""

    def __init__(
        self,
        book: AddressBook,
        keyring: Keyring,
        *,
        own_addresses: Collection[str],
        quotes_only: bool = False,
    ) -> None:
        self.book = book
        self.keyring = keyring
        self.own_addresses = own_addresses
        self.quotes_only = quotes_only

    def prepare_all(self, mails: list[ClaimedMail]) -> list[Prepared]:
        """Each of the claimed messages prepared, in order."""
        return [self.prepare(mail) for mail in mails]

    def prepare(self, mail: ClaimedMail) -> Prepared:
        """Parse, classify and extract one claimed message; a failure becomes its outcome."""
        if mail.attempts > MAX_ATTEMPTS:
            reason = f"gave up after {mail.attempts - 1} attempts that never finished"
            return Prepared(
                mail, failed=Outcome(InboundStatus.FAILED, reason, code=ReasonCode.GAVE_UP)
            )
        try:
            address = self.book.recipient(mail.recipient, self.keyring)
            message = parse_message(mail.raw)
            ignore = None
            if address is None or address.kind is not AddressKind.BOUNCE:
                machine = auto_generated(message, mail.sender, self.own_addresses)
                ignore = ignored(*machine) if machine else None
            extraction = None
            if ignore is None and (address is None or address.kind is AddressKind.REPLY):
                extraction = extract_reply(message.text, message.html, quotes_only=self.quotes_only)
            key = dedupe_key(message.message_id, mail.sha256, mail.sender, mail.recipient)
        except Exception as exc:
            log.exception("processing inbound #%s failed", mail.id)
            return Prepared(mail, failed=failure(exc))
        return Prepared(mail, address, message, ignore, extraction, key)
