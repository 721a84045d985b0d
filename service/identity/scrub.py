"""Our own addresses, links and tokens cut out of text that others will read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from service.controls import strip_controls, strip_controls_line
from service.identity.addresses import PURPOSES, AddressBook, Keyring, carries_our_mac

ADDRESS_REMOVED = "[reply address removed]"
LINK_REMOVED = "[link removed]"
TOKEN_REMOVED = "[token removed]"

# A URL, up to the first character that cannot stand in one as typed in mail.
_URL = re.compile(r"(?:https?://|mailto:)[^\s<>\"'`]+", re.I)
# An address as it stands in text: in a To line, in angle brackets, in a sentence.
# Bounded (a local part has at most 64 octets), so a long line without spaces costs linear time.
_ADDRESS = re.compile(r"[^\s<>\"'`()\[\],;:@]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
# A run of base32 letters long enough to be a token: the shortest has a key id, two values
# and the MAC (13 bytes, 21 characters).
_TOKEN_RUN = re.compile(r"[A-Za-z2-7]{21,}")
# What may stand glued before a token in mangled text: %2B for "+", =3D for "=".
_LEAD = 3
_LONGEST_TOKEN = 100  # far above any we make (varints of three 64-bit ids, key id, MAC)


def remove_own_addresses(text: str, book: AddressBook, keyring: Keyring) -> str:
    """`text` without anything that carries one of our tokens or names one of our addresses:
    reply, unsubscribe, bounce and digest addresses, the Message-IDs of our notifications,
    our links with tokens (https unsubscribe links, mailto: links), and bare tokens. Each
    becomes a placeholder, wherever it stands: a reader's quoted notification holds their
    personal reply address, and whoever reads it could write as them with it.
    """
    if "@" not in text and not _TOKEN_RUN.search(text):
        return text  # the common case: nothing that could be ours
    text = _URL.sub(
        lambda m: LINK_REMOVED if _ours(unquote(m.group()), book, keyring) else m.group(), text
    )
    text = _ADDRESS.sub(
        lambda m: ADDRESS_REMOVED if _our_address(m.group(), book, keyring) else m.group(), text
    )
    return _TOKEN_RUN.sub(
        lambda m: TOKEN_REMOVED if _token(m.group(), keyring) else m.group(), text
    )


def _our_address(address: str, book: AddressBook, keyring: Keyring) -> bool:
    """Whether an address is one of ours (any of our kinds, at our domain) or holds a token."""
    address = address.rstrip(".")
    if book.split(address) is not None:
        return True
    return any(_token(run, keyring) for run in _TOKEN_RUN.findall(address))


def _ours(fragment: str, book: AddressBook, keyring: Keyring) -> bool:
    """Whether a (decoded) URL names one of our addresses or carries one of our tokens."""
    return any(_our_address(a, book, keyring) for a in _ADDRESS.findall(fragment)) or any(
        _token(run, keyring) for run in _TOKEN_RUN.findall(fragment)
    )


def _token(run: str, keyring: Keyring) -> bool:
    """Whether a run of base32 letters is, or ends in, a token we signed."""
    if len(run) > _LONGEST_TOKEN + _LEAD:
        return False
    return any(
        carries_our_mac(run[start:], keyring, PURPOSES)
        for start in range(min(_LEAD, len(run) - 20) + 1)
    )


@dataclass(frozen=True)
class PublicText:
    """Text from outside made fit to publish and to mail to others: without control
    characters, and without our own addresses, links and tokens."""

    book: AddressBook
    keyring: Keyring

    def clean(self, text: str) -> str:
        """Text of several lines (a comment, what extraction cut)."""
        return remove_own_addresses(strip_controls(text), self.book, self.keyring)

    def clean_line(self, text: str) -> str:
        """One line (a display name)."""
        return remove_own_addresses(strip_controls_line(text), self.book, self.keyring)
