"""Deletes the raw source of finished inbound mail after a while; failed mail is kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from service.store.models import InboundEmail, InboundSource, InboundStatus, utcnow

# Failed messages keep their source until an operator has retried or handled them.
PURGEABLE = (InboundStatus.PROCESSED, InboundStatus.IGNORED, InboundStatus.REJECTED)
_CHUNK = 500  # sources emptied per statement (bound parameters stay few)


def purge_raw(session: Session, finished_before: datetime) -> int:
    """Empty the raw bytes of messages whose rows are all terminal, not failed, and finished
    before a time (a message to several recipients is kept while one of them needs it);
    returns how many rows lost their source."""
    due = select(InboundEmail.source_id).where(
        InboundEmail.status.in_(PURGEABLE),
        InboundEmail.finished_at < finished_before,
        InboundEmail.raw_purged_at.is_(None),
    )
    needed = select(InboundEmail.source_id).where(
        or_(
            InboundEmail.status.not_in(PURGEABLE),
            InboundEmail.finished_at.is_(None),
            InboundEmail.finished_at >= finished_before,
        )
    )
    sources = list(session.scalars(due.except_(needed)))
    purged = 0
    now = utcnow()
    for start in range(0, len(sources), _CHUNK):
        chunk = sources[start : start + _CHUNK]
        session.execute(update(InboundSource).where(InboundSource.id.in_(chunk)).values(raw=b""))
        result = session.execute(
            update(InboundEmail)
            .where(InboundEmail.source_id.in_(chunk), InboundEmail.raw_purged_at.is_(None))
            .values(raw_purged_at=now)
        )
        assert isinstance(result, CursorResult)
        purged += result.rowcount or 0
    return purged
