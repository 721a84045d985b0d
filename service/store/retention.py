"""Deletes the raw source of finished inbound mail after a while; failed mail is kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from service.store.models import InboundEmail, InboundStatus, utcnow

# Failed messages keep their source until an operator has retried or handled them.
PURGEABLE = (InboundStatus.PROCESSED, InboundStatus.IGNORED, InboundStatus.REJECTED)


def purge_raw(session: Session, finished_before: datetime) -> int:
    """Empty the raw bytes of terminal, non-failed rows finished before a time; returns count."""
    result = session.execute(
        update(InboundEmail)
        .where(
            InboundEmail.status.in_(PURGEABLE),
            InboundEmail.finished_at < finished_before,
            InboundEmail.raw_purged_at.is_(None),
        )
        .values(raw=b"", raw_purged_at=utcnow())
    )
    assert isinstance(result, CursorResult)
    return result.rowcount or 0
