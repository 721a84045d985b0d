"""Deletes the raw source of finished inbound mail after a while (failed mail is kept), and the
record of refusal notices, which only serves to send one a day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.orm import Session

from service.store.models import InboundEmail, InboundStatus, RejectionNotice, utcnow

# Failed messages keep their source until an operator has retried or handled them.
PURGEABLE = (InboundStatus.PROCESSED, InboundStatus.IGNORED, InboundStatus.REJECTED)


def purge_raw(session: Session, finished_before: datetime, *, failed: bool = False) -> int:
    """Empty the raw bytes of terminal, non-failed rows (failed ones too with `failed`, when an
    operator gives up on them) finished before a time; returns count."""
    statuses = (*PURGEABLE, InboundStatus.FAILED) if failed else PURGEABLE
    result = session.execute(
        update(InboundEmail)
        .where(
            InboundEmail.status.in_(statuses),
            InboundEmail.finished_at < finished_before,
            InboundEmail.raw_purged_at.is_(None),
        )
        .values(raw=b"", raw_purged_at=utcnow())
    )
    assert isinstance(result, CursorResult)
    return result.rowcount or 0


def purge_notices(session: Session, finished_before: datetime) -> int:
    """Delete the record of refusal notices sent before a time (it holds the address told,
    and is only read for today's); returns how many."""
    result = session.execute(
        delete(RejectionNotice).where(RejectionNotice.day < finished_before.date())
    )
    assert isinstance(result, CursorResult)
    return result.rowcount or 0
