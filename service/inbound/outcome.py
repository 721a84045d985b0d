"""Where an inbound message ended: its terminal status, the reason, and what it made."""

from __future__ import annotations

from dataclasses import dataclass

from service.store.models import InboundStatus


@dataclass(frozen=True)
class Outcome:
    """Where a message ended: terminal status, reason, the comment it made, the refusal code."""

    status: InboundStatus
    reason: str | None = None
    comment_id: int | None = None
    code: str | None = None  # for rejections: which explanation the sender gets


def rejected(code: str, reason: str) -> Outcome:
    """A refusal after DATA, with the code of the notice the sender gets."""
    return Outcome(InboundStatus.REJECTED, reason, code=code)


def failure(exc: Exception) -> Outcome:
    """The failed outcome for an exception, its reason bounded for the database."""
    return Outcome(InboundStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
