"""Signed tokens of self-service erasure: the footer's request link, the mailed confirmation."""

from __future__ import annotations

from datetime import date

from service.identity.addresses import Keyring, sign, unsign

# Two purposes, so a footer link can never stand in for a confirmation link: the footer link
# travels in every mail (and in every forward of it); only the confirmation proves the mailbox.
REQUEST = "forget"
CONFIRM = "forget-confirm"
# A confirmation link works for this many days after it was mailed, then a new one is needed.
CONFIRM_DAYS = 7


def request_token(person_id: int, keyring: Keyring) -> str:
    """The token of a person's "delete what this blog keeps about me" link (mail footers)."""
    return sign((person_id,), keyring, REQUEST)


def requesting_person(token: str, keyring: Keyring) -> int | None:
    """The person a footer link's token names, or None when it is not a valid one."""
    values = unsign(token, keyring, REQUEST, 1)
    if values is None or values[0] == 0:
        return None
    return values[0]


def confirm_token(person_id: int, keyring: Keyring, day: date) -> str:
    """The token of the confirmation link mailed on `day` to a person who asked to be forgotten."""
    return sign((person_id, day.toordinal()), keyring, CONFIRM)


def confirming_person(token: str, keyring: Keyring, today: date) -> int | None:
    """The person a confirmation token names, or None when it is invalid or out of date."""
    values = unsign(token, keyring, CONFIRM, 2)
    if values is None or values[0] == 0:
        return None
    person_id, mailed = values
    if not 0 <= today.toordinal() - mailed <= CONFIRM_DAYS:
        return None
    return person_id
