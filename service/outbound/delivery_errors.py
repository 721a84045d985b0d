"""What a failed delivery attempt means: try again later, give up, cancel, or a bounce."""

from __future__ import annotations

import re

import aiosmtplib

from service.outbound.bounces import Bounce


class DeliveryError(Exception):
    """A delivery attempt failed; `permanent` says whether trying again could help, `bounce`
    what it counts as against the recipient's address (if anything)."""

    def __init__(self, message: str, *, permanent: bool, bounce: Bounce | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.bounce = bounce


class Cancelled(DeliveryError):
    """Not sent, and never to be: the recipient no longer wants it (the message says why)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


def refusal_bounce(code: int, message: str) -> Bounce | None:
    """What a relay's refusal of a recipient at RCPT counts as against the address: a 5xx is a
    hard bounce, as a DSN saying so would be, unless its enhanced status is 5.7.x (security or
    policy: "Relay access denied" is about us, not them, and must not suspend every reader);
    a 4xx is retried and counts nothing."""
    if code < 500:
        return None
    match = _ENHANCED.match(message)
    status = match.group(1) if match else f"{code}"
    if status.startswith("5.7."):
        return None
    return Bounce(hard=True, status=status)


def relay_error(exc: Exception) -> DeliveryError:
    """What an exception from the relay means for the parcel: permanent, or try again later."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [error.code for error in exc.recipients]
        first = exc.recipients[0] if exc.recipients else None
        return DeliveryError(
            f"relay refused the recipient: {exc}",
            permanent=all(c >= 500 for c in codes),
            bounce=refusal_bounce(first.code, first.message) if first else None,
        )
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # Our credentials, not this message, are wrong: keep it queued until they are fixed.
        return DeliveryError(
            f"relay refused our login ({exc.code} {exc.message}); check REPLYD_OUTBOUND",
            permanent=False,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return DeliveryError(f"relay answered {exc.code} {exc.message}", permanent=exc.code >= 500)
    if isinstance(exc, ValueError):
        # The SMTP client refuses to write an address it cannot send safely.
        return DeliveryError(f"address cannot be sent: {exc}", permanent=True)
    return DeliveryError(f"relay unreachable: {exc}", permanent=False)


# Answers after which the relay's session stays usable (aiosmtplib resets the envelope).
REFUSALS = (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused)
