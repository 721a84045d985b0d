"""The inbound queue in the database: store what the edge accepted, claim it, finish it."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.controls import strip_controls, strip_controls_line
from service.store.models import InboundEmail, InboundSource, InboundStatus, UTCDateTime, utcnow

# A worker that has not finished a message within this time is presumed dead; its claim lapses.
LEASE = timedelta(minutes=5)
# A message whose processing crashed the worker this many times is failed, not retried forever.
MAX_ATTEMPTS = 5

# No spaces or control characters inside: a Message-ID has none (RFC 5322 msg-id).
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\x00-\x20\x7f]{1,900}>)", re.I | re.M)


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID from the header block, found without parsing the whole message."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw[: end if end >= 0 else 65536]
    match = _MESSAGE_ID.search(head)
    return match.group(1).decode("ascii", "replace") if match else None


def _received_rows(
    raw: bytes, source_id: int, sender: str, recipients: Iterable[str], via: str = "smtp"
) -> list[dict[str, Any]]:
    """The values of one new row per distinct envelope recipient of one message, each
    pointing at the message's one stored copy, which came in `via` one of our entrances."""
    digest = hashlib.sha256(raw).hexdigest()
    message_id = header_message_id(raw)
    now = utcnow()
    return [
        {
            "source_id": source_id,
            "sha256": digest,
            "message_id": message_id,
            # What SMTP took as an address may hold control characters; what is stored does not.
            "sender": strip_controls_line(sender),
            "recipient": recipient,
            "status": InboundStatus.RECEIVED,
            "received_at": now,
            "updated_at": now,
            "via": via,
        }
        # The same address given twice is one recipient (MTAs lower-case local parts, too).
        for recipient in dict.fromkeys(recipient.lower() for recipient in recipients)
    ]


# Built once: the edge runs them for every message, and building a statement costs more than
# SQLite takes to run it. Sorted: the ids come back in the order the rows were given.
_STORE_SOURCE = insert(InboundSource).returning(InboundSource.id)
_STORE_SOURCE_SORTED = _STORE_SOURCE.returning(InboundSource.id, sort_by_parameter_order=True)
_STORE = insert(InboundEmail).returning(InboundEmail.id)
_STORE_SORTED = _STORE.returning(InboundEmail.id, sort_by_parameter_order=True)


def _inserted_ids(
    connection: Connection, plain: Any, in_order: Any, rows: list[dict[str, Any]]
) -> list[int]:
    """INSERT the rows in one statement; their new ids, in the order of the rows.

    On SQLite, SQLAlchemy keeps ids in order by inserting one row per statement; instead all
    go in one, and their ids are sorted: a table numbered by rowid gives the rows of one
    INSERT rising numbers in the order given (with the write lock held, nobody else's in
    between). That halved the statements per commit, and the edge's CPU per stored message.
    """
    if not rows:
        return []
    if connection.dialect.name == "sqlite":
        return sorted(connection.execute(plain, rows).scalars())
    return list(connection.execute(in_order, rows).scalars())


def _insert_rows(connection: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """INSERT the inbound rows in one statement; their new ids, in order."""
    return _inserted_ids(connection, _STORE, _STORE_SORTED, rows)


def _insert_sources(connection: Connection, raws: list[bytes]) -> list[int]:
    """INSERT one stored copy per message in one statement; their new ids, in order."""
    return _inserted_ids(
        connection, _STORE_SOURCE, _STORE_SOURCE_SORTED, [{"raw": raw} for raw in raws]
    )


@dataclass
class _Waiting:
    """One message handed to a GroupCommit, and what became of it."""

    raw: bytes
    sender: str
    recipients: list[str]
    via: str = "smtp"
    ids: list[int] = field(default_factory=list)
    error: BaseException | None = None


class GroupCommit:
    """How the edge stores accepted mail, for many SMTP sessions at once: the message's bytes
    once, and one row per distinct recipient pointing at them. Messages whose DATA ends while
    a commit is in flight share the next commit, so N waiting senders cost one fsync, not N.

    Each caller still returns only after the commit holding its own message, so 250 keeps
    meaning stored. It runs on the event loop, and each commit goes to a thread of its own:
    one handoff per batch, where a thread per waiting session cost the edge a wake-up and a
    context switch per message.
    """

    def __init__(self, engine: Engine, max_batch: int = 64) -> None:
        # A Core connection per commit, not a Session: nothing here needs the ORM, and a
        # session cost the edge about a tenth of its CPU per message.
        self.engine = engine
        self.max_batch = max_batch
        self._queue: list[tuple[_Waiting, asyncio.Future[list[int]]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def __call__(
        self, raw: bytes, sender: str, recipients: Iterable[str], via: str = "smtp"
    ) -> list[int]:
        """Commit one message (its bytes once, a row per distinct recipient) that came in
        `via` one of our entrances, and return the row ids; raises if not."""
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[list[int]] = loop.create_future()
        self._queue.append((_Waiting(raw, sender, list(recipients), via), stored))
        if self._committer is None:
            self._committer = loop.create_task(self._commit_queued())
        return await stored

    async def _commit_queued(self) -> None:
        """Commit batches until none is waiting; each caller learns its own outcome."""
        batch: list[tuple[_Waiting, asyncio.Future[list[int]]]] = []
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                try:
                    await asyncio.to_thread(self._commit, [item for item, _ in batch])
                except Exception as exc:  # no thread to commit in (the loop is closing)
                    for item, _ in batch:
                        item.error = exc
                for item, stored in batch:
                    if stored.done():  # its session went away meanwhile
                        continue
                    if item.error is not None:
                        stored.set_exception(item.error)
                    else:
                        stored.set_result(item.ids)
                batch = []
        finally:
            self._committer = None
            # Cancelled (the loop is closing): nobody may wait for a commit that never comes.
            for _, stored in batch + self._queue:
                if not stored.done():
                    stored.set_exception(RuntimeError("the inbound store stopped"))
            self._queue.clear()

    def _commit(self, batch: list[_Waiting]) -> None:
        try:
            with self.engine.begin() as connection:
                sources = _insert_sources(connection, [item.raw for item in batch])
                groups = [
                    _received_rows(item.raw, source, item.sender, item.recipients, item.via)
                    for item, source in zip(batch, sources, strict=True)
                ]
                ids = iter(_insert_rows(connection, [row for group in groups for row in group]))
                for item, group in zip(batch, groups, strict=True):
                    item.ids = [next(ids) for _ in group]
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            # One bad message must not cost the others their 250: store them one by one.
            for item in batch:
                self._commit([item])


@dataclass(frozen=True)
class ClaimedMail:
    """An inbound row a worker holds, with what processing it needs from the row."""

    id: int
    raw: bytes
    sender: str
    recipient: str
    sha256: str
    attempts: int  # including this claim


_CLAIMED_COLUMNS = (
    InboundEmail.id,
    InboundEmail.raw.label("raw"),  # read from the message's one stored copy
    InboundEmail.sender,
    InboundEmail.recipient,
    InboundEmail.sha256,
    InboundEmail.attempts,
)


_CLAIMABLE = (
    select(*_CLAIMED_COLUMNS)
    .where(
        or_(
            InboundEmail.status == InboundStatus.RECEIVED,
            (InboundEmail.status == InboundStatus.PROCESSING)
            & (InboundEmail.lease_until < bindparam("now", type_=UTCDateTime())),
        )
    )
    .order_by(InboundEmail.id)
    .limit(bindparam("limit"))
    # PostgreSQL: nodes skip rows another node holds; SQLite ignores this and relies on
    # BEGIN IMMEDIATE serialising writers.
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(InboundEmail)
    .where(InboundEmail.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=InboundStatus.PROCESSING,
        claimed_by=bindparam("worker"),
        lease_until=bindparam("lease_until", type_=UTCDateTime()),
        attempts=InboundEmail.attempts + 1,
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
)


def claim_mail(
    session_factory: sessionmaker[Session], worker: str, limit: int, lease: timedelta = LEASE
) -> list[ClaimedMail]:
    """Claim up to `limit` of the oldest waiting (or abandoned) inbound rows in one commit,
    with what processing needs of them, so it need not read them again."""
    now = utcnow()
    with session_factory.begin() as session:
        connection = session.connection()
        mails = [
            ClaimedMail(row.id, row.raw, row.sender, row.recipient, row.sha256, row.attempts + 1)
            for row in connection.execute(_CLAIMABLE, {"now": now, "limit": limit})
        ]
        if mails:
            connection.execute(
                _CLAIM,
                {
                    "ids": [mail.id for mail in mails],
                    "worker": worker,
                    "lease_until": now + lease,
                    "now": now,
                },
            )
        return mails


def held_mail(session: Session, inbound_id: int, worker: str) -> ClaimedMail | None:
    """The content of a row `worker` holds a claim on, or None if it holds none."""
    row = session.execute(
        select(*_CLAIMED_COLUMNS).where(
            InboundEmail.id == inbound_id,
            InboundEmail.status == InboundStatus.PROCESSING,
            InboundEmail.claimed_by == worker,
        )
    ).first()
    if row is None:
        return None
    return ClaimedMail(row.id, row.raw, row.sender, row.recipient, row.sha256, row.attempts)


def release(session_factory: sessionmaker[Session], worker: str, ids: Iterable[int]) -> int:
    """Give back claimed rows this worker will not process (it is stopping); returns how many."""
    wanted = list(ids)
    if not wanted:
        return 0
    with session_factory.begin() as session:
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(InboundEmail)
            .where(
                InboundEmail.id.in_(wanted),
                InboundEmail.status == InboundStatus.PROCESSING,
                InboundEmail.claimed_by == worker,
            )
            .values(
                status=InboundStatus.RECEIVED,
                claimed_by=None,
                lease_until=None,
                # This claim never ran, so it must not count towards MAX_ATTEMPTS.
                attempts=InboundEmail.attempts - 1,
                updated_at=utcnow(),
            )
        )
        return result.rowcount or 0


_FINISH = (
    update(InboundEmail)
    .where(InboundEmail.__table__.c.id == bindparam("row_id"))
    .values(
        status=bindparam("status"),
        reason=bindparam("reason"),
        reason_code=bindparam("reason_code"),
        claimed_by=None,
        lease_until=None,
        updated_at=bindparam("now", type_=UTCDateTime()),
        finished_at=bindparam("now", type_=UTCDateTime()),
    )
)


def finish_many(
    session: Session, outcomes: Iterable[tuple[int, str, str | None, str | None]]
) -> None:
    """Move claimed rows to their terminal states, as (id, status, reason, reason code), in
    one statement."""
    now = utcnow()
    params = [
        {
            "row_id": row_id,
            "status": status,
            # Reasons may quote the message (a subject, an address): stored without controls.
            "reason": strip_controls(reason) if reason else reason,
            "reason_code": code,
            "now": now,
        }
        for row_id, status, reason, code in outcomes
    ]
    if params:
        session.connection().execute(_FINISH, params)


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
            reason_code=None,
            attempts=0,
            finished_at=None,
            updated_at=utcnow(),
        )
    )
    if ids is not None:
        statement = statement.where(InboundEmail.id.in_(list(ids)))
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return result.rowcount or 0
