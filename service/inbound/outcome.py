"""Where an inbound message ended: its terminal status, the reason, and what it made."""

from __future__ import annotations

from dataclasses import dataclass

from service.store.models import InboundStatus, ReasonCode


@dataclass(frozen=True)
class Outcome:
    """Where a message ended: terminal status, reason (its code and its words), the comment
    it made, and whether its sender is told."""

    status: InboundStatus
    reason: str | None = None
    comment_id: int | None = None
    code: ReasonCode | None = None
    # Only a proven sender is told why (the person a valid token names, or a From our MTA
    # authenticated): a notice to anyone else is backscatter to whoever was forged.
    notice: bool = False


def rejected(code: ReasonCode, reason: str, *, notice: bool) -> Outcome:
    """A refusal after DATA; with `notice`, the sender gets the explanation for `code`."""
    return Outcome(InboundStatus.REJECTED, reason, code=code, notice=notice)


def ignored(code: ReasonCode, reason: str) -> Outcome:
    """A message that is no reply of a person's (machine-made, a bounce, a duplicate)."""
    return Outcome(InboundStatus.IGNORED, reason, code=code)


def failure(exc: Exception) -> Outcome:
    """The failed outcome for an exception, its reason bounded for the database."""
    return Outcome(
        InboundStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000], code=ReasonCode.ERROR
    )
