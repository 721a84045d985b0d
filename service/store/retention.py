"""Deletes the raw source of finished inbound mail after a while (failed mail is kept), and the
record of refusal notices, which only serves to send one a day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from service.store.models import InboundEmail, InboundSource, InboundStatus, RejectionNotice, utcnow

# Failed messages keep their source until an operator has retried or handled them.
PURGEABLE = (InboundStatus.PROCESSED, InboundStatus.IGNORED, InboundStatus.REJECTED)
_CHUNK = 500  # sources emptied per statement (bound parameters stay few)


def purge_raw(session: Session, finished_before: datetime, *, failed: bool = False) -> int:
    """Empty the raw bytes of messages whose rows are all terminal and finished before a time,
    not failed (failed ones too with `failed`, when an operator gives up on them); a message
    to several recipients is kept while one of them needs it. Returns how many rows lost
    their source."""
    statuses = (*PURGEABLE, InboundStatus.FAILED) if failed else PURGEABLE
    due = select(InboundEmail.source_id).where(
        InboundEmail.status.in_(statuses),
        InboundEmail.finished_at < finished_before,
        InboundEmail.raw_purged_at.is_(None),
    )
    needed = select(InboundEmail.source_id).where(
        or_(
            InboundEmail.status.not_in(statuses),
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


def purge_notices(session: Session, finished_before: datetime) -> int:
    """Delete the record of refusal notices sent before a time (it holds the address told,
    and is only read for today's); returns how many."""
    result = session.execute(
        delete(RejectionNotice).where(RejectionNotice.day < finished_before.date())
    )
    assert isinstance(result, CursorResult)
    return result.rowcount or 0
