"""Which of our addresses a message is for, whatever entrance it came in by, and the sentences
every entrance refuses mail with (SMTP replies with enhanced status codes, RFC 3463)."""

from __future__ import annotations

import re
from collections.abc import Container
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from service.identity.addresses import AddressBook, Keyring, Recipient

# The pipe and the HTTP ingresses answer with these same sentences (on stderr, in the body).
S450_SENDER_RATE = "450 4.7.1 Too many messages from this sender; please try again later"
S450_ADDRESS_RATE = "450 4.7.1 Too many messages to this reply address; please try again later"
S452_TOO_MANY_RCPTS = "452 4.5.3 Too many recipients; send the rest in another message"
S550_NOT_OURS = "550 5.1.1 <{address}>: this server only accepts replies to its own reply addresses"
S550_BAD_TOKEN = (
    "550 5.1.1 <{address}>: this reply address is not valid (changed or mistyped?); "
    "reply to the notification email itself"
)
S550_FORGOTTEN = (
    "550 5.1.1 <{address}>: this address is no longer in use; the person it was made for "
    "asked this blog to forget them"
)
S552_TOO_BIG = "552 5.3.4 Message too big for this service (limit {limit} bytes)"
S554_NO_RECIPIENTS = "554 5.5.1 No valid recipients"

# Where a message names who it was delivered to, most precise first: an MTA's pipe adds
# Delivered-To (Postfix) or X-Original-To; To and Cc are what the writer addressed.
RECIPIENT_HEADERS = (("delivered-to",), ("x-original-to",), ("to", "cc"))
# The header block is read only this far: the addresses are near its top.
MAX_HEADER_BYTES = 256 * 1024
# A header field name (RFC 5322 2.2) at the start, or the "From " line of an mbox.
_FIRST_LINE = re.compile(rb"^(?:[!-9;-~]+[ \t]*:|From )")
# What MTAs write for the null sender (a bounce), besides an empty address.
_NULL_SENDERS = ("", "<>", "mailer-daemon")


def our_recipient(
    book: AddressBook,
    keyring: Keyring,
    address: str,
    forgotten: Container[int] = frozenset(),
) -> Recipient | str:
    """The verified recipient an address names, or the refusal when it is not one of ours or
    its token names a person who asked to be forgotten (ids in `forgotten`)."""
    if book.split(address) is None:
        return S550_NOT_OURS.format(address=address)
    recipient = book.recipient(address, keyring)
    if recipient is None:
        return S550_BAD_TOKEN.format(address=address)
    if recipient.named_person in forgotten:
        return S550_FORGOTTEN.format(address=address)
    return recipient


def looks_like_message(raw: bytes) -> bool:
    """Whether the bytes can be a mail message at all: they start with a header field."""
    return bool(_FIRST_LINE.match(raw))


def _header_values(raw: bytes, names: tuple[str, ...]) -> list[str]:
    """Every value of the named header fields, in order, from the message's header block."""
    end = raw.find(b"\n\n")
    crlf = raw.find(b"\r\n\r\n")
    if crlf >= 0 and (end < 0 or crlf < end):
        end = crlf
    head = raw[: min(end if end >= 0 else len(raw), MAX_HEADER_BYTES)]
    header = BytesHeaderParser(policy=compat32).parsebytes(head)
    return [str(value) for name in names for value in header.get_all(name, [])]


def _addresses(values: list[str]) -> list[str]:
    return [address for _, address in getaddresses(values) if "@" in address]


def header_recipients(book: AddressBook, raw: bytes) -> list[str]:
    """The recipients a message's header names, for an entrance that was not told them:
    from the first of Delivered-To, X-Original-To, To/Cc that names an address in our domain,
    only those; if none does, all of the first that names any (so each can be refused)."""
    named: list[list[str]] = [_addresses(_header_values(raw, g)) for g in RECIPIENT_HEADERS]
    for addresses in named:
        if any(book.split(address) is not None for address in addresses):
            return ours_or_all(book, addresses)
    return next((distinct(addresses) for addresses in named if addresses), [])


def ours_or_all(book: AddressBook, addresses: list[str]) -> list[str]:
    """Of the addresses a message names, those in our domain; all of them if none is (so that
    each gets its refusal)."""
    ours = [address for address in addresses if book.split(address) is not None]
    return distinct(ours or addresses)


def header_sender(raw: bytes) -> str:
    """The sender a message's header names, for an entrance that was not told it: the
    Return-Path an MTA added (empty for a bounce), else the From address."""
    return_path = _header_values(raw, ("return-path",))
    if return_path:
        return envelope_sender(return_path[0])
    found = _addresses(_header_values(raw, ("from",)))
    return found[0] if found else ""


def envelope_sender(text: str) -> str:
    """An envelope sender as MTAs and providers write it, "" for the null sender (a bounce)."""
    address = text.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1].strip()
    return "" if address.lower() in _NULL_SENDERS else address


def distinct(addresses: list[str]) -> list[str]:
    """The addresses without repeats (compared without case), in their order."""
    seen: dict[str, str] = {}
    for address in addresses:
        seen.setdefault(address.lower(), address)
    return list(seen.values())
