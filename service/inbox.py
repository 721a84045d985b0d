"""The inbound queue in the database: store what the edge accepted, claim it, finish it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.models import InboundEmail, InboundStatus, utcnow

# A worker that has not finished a message within this time is presumed dead; its claim lapses.
LEASE = timedelta(minutes=5)
# A message whose processing crashed the worker this many times is failed, not retried forever.
MAX_ATTEMPTS = 5

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]{1,900}>)", re.I | re.M)


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID from the header block, found without parsing the whole message."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw[: end if end >= 0 else 65536]
    match = _MESSAGE_ID.search(head)
    return match.group(1).decode("ascii", "replace") if match else None


def store_received(
    session_factory: sessionmaker[Session], raw: bytes, sender: str, recipients: Iterable[str]
) -> list[int]:
    """Commit one row per envelope recipient; returns their ids. Raises if not stored."""
    digest = hashlib.sha256(raw).hexdigest()
    message_id = header_message_id(raw)
    with session_factory.begin() as session:
        rows = [
            InboundEmail(
                raw=raw,
                sha256=digest,
                message_id=message_id,
                sender=sender,
                recipient=recipient.lower(),
                status=InboundStatus.RECEIVED,
            )
            for recipient in recipients
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def claim_next(session_factory: sessionmaker[Session], worker: str) -> int | None:
    """Claim the oldest waiting (or abandoned) inbound row for `worker`; its id or None."""
    now = utcnow()
    with session_factory.begin() as session:
        candidate = (
            select(InboundEmail.id)
            .where(
                or_(
                    InboundEmail.status == InboundStatus.RECEIVED,
                    (InboundEmail.status == InboundStatus.PROCESSING)
                    & (InboundEmail.lease_until < now),
                )
            )
            .order_by(InboundEmail.id)
            .limit(1)
            # PostgreSQL: nodes skip rows another node holds; SQLite ignores this and relies
            # on BEGIN IMMEDIATE serialising writers.
            .with_for_update(skip_locked=True)
        )
        row_id = session.scalar(candidate)
        if row_id is None:
            return None
        session.execute(
            update(InboundEmail)
            .where(InboundEmail.id == row_id)
            .values(
                status=InboundStatus.PROCESSING,
                claimed_by=worker,
                lease_until=now + LEASE,
                attempts=InboundEmail.attempts + 1,
                updated_at=now,
            )
        )
        return row_id


def finish(
    session: Session, row: InboundEmail, status: InboundStatus, reason: str | None = None
) -> None:
    """Move a claimed row to a terminal state (inside the caller's transaction)."""
    now = utcnow()
    row.status = status
    row.reason = reason
    row.claimed_by = None
    row.lease_until = None
    row.updated_at = now
    row.finished_at = now


REPLAYABLE = (InboundStatus.FAILED, InboundStatus.REJECTED, InboundStatus.IGNORED)


def requeue(session: Session, ids: Iterable[int] | None = None) -> int:
    """Put failed rows (or the given failed/rejected/ignored ids) back in the queue."""
    statuses = REPLAYABLE if ids is not None else (InboundStatus.FAILED,)
    statement = (
        update(InboundEmail)
        .where(InboundEmail.status.in_(statuses))
        .values(
            status=InboundStatus.RECEIVED,
            reason=None,
            attempts=0,
            finished_at=None,
            updated_at=utcnow(),
        )
    )
    if ids is not None:
        statement = statement.where(InboundEmail.id.in_(list(ids)))
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return result.rowcount or 0
