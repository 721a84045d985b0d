"""Signed tokens of the blog side: a reader's confirmed address (author token) and form tokens."""

from __future__ import annotations

from service.identity.addresses import Keyring, sign, unsign

# How long a browser that confirmed an address may comment with it without another mail.
AUTHOR_TOKEN_DAYS = 30
# How long a comment form on our own pages stays good for sending.
FORM_TOKEN_SECONDS = 24 * 3600
_CLOCK_SKEW = 300  # seconds a token may seem to come from the future (nodes' clocks differ)


def make_author_token(person_id: int, now: int, keyring: Keyring) -> str:
    """A token saying: whoever holds this confirmed `person_id`'s address; good for
    AUTHOR_TOKEN_DAYS from `now` (seconds since 1970)."""
    return sign((person_id, now + AUTHOR_TOKEN_DAYS * 86400), keyring, "author")


def author_of(token: str, keyring: Keyring, now: int) -> int | None:
    """The person an author token was made for, None when it is forged, foreign or expired."""
    if not token or len(token) > 100:
        return None
    values = unsign(token, keyring, "author", 2)
    if values is None or values[0] == 0 or values[1] < now:
        return None
    return values[0]


def make_form_token(post_id: int, client: str, now: int, keyring: Keyring) -> str:
    """The token a comment or follow form on our pages carries back: bound to the post and to
    the client address it was shown to, so another site can neither forge one nor use its own
    copy from a visitor's browser (cross-site request forgery)."""
    return sign((post_id, now), keyring, f"form\0{client}")


def form_token_valid(token: str, post_id: int, client: str, now: int, keyring: Keyring) -> bool:
    """Whether a form token was made by us, for this post and client, within the last day."""
    if not token or len(token) > 100:
        return False
    values = unsign(token, keyring, f"form\0{client}", 2)
    if values is None or values[0] != post_id:
        return False
    return now - FORM_TOKEN_SECONDS <= values[1] <= now + _CLOCK_SKEW
