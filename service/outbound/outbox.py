"""Delivers queued outbound mail to a local Maildir or an SMTP relay, with retries."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import mailbox
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosmtplib
from sqlalchemy import Boolean, bindparam, case, func, null, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.files import private_dir
from service.outbound.bounces import Bounce, record_bounce
from service.outbound.delivery_errors import REFUSALS, Cancelled, DeliveryError, relay_error
from service.outbound.notify import Unrendered
from service.outbound.wanted import needs_asking, unwanted
from service.runtime.settings import DEFAULT_LEASE_SECONDS, Outbound
from service.store.engine import READ_ONLY
from service.store.models import OutboundEmail, OutboundStatus, Person, UTCDateTime, utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=DEFAULT_LEASE_SECONDS)  # kept alive by the sender's heartbeat
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)
CLAIM_LIMIT = 32  # rows claimed, delivered and recorded together


# The outcome of one delivery attempt, for many rows in one executemany.
_RECORD = (
    update(OutboundEmail)
    .where(OutboundEmail.__table__.c.id == bindparam("row_id"))
    .values(
        status=bindparam("status"),
        sent_at=bindparam("sent_at", type_=UTCDateTime()),
        next_attempt_at=func.coalesce(
            bindparam("next_attempt_at", type_=UTCDateTime()), OutboundEmail.next_attempt_at
        ),
        last_error=bindparam("last_error"),
        claimed_by=None,
        lease_until=None,
        # A message is not kept once it is delivered (or failed for good): it holds a
        # person's address, other people's words and the links of our own tokens.
        raw=case((bindparam("done", type_=Boolean()), null()), else_=OutboundEmail.raw),
    )
)


# Claiming runs for every batch: built once (building a statement costs more than running it).
_NOW = bindparam("now", type_=UTCDateTime())
_DUE = (
    select(
        OutboundEmail.id,
        OutboundEmail.recipient,
        OutboundEmail.raw,
        OutboundEmail.attempts,
        OutboundEmail.kind,
        OutboundEmail.recipient_id,
        OutboundEmail.comment_id,
        OutboundEmail.message_id,
        OutboundEmail.post_id,
    )
    .where(
        or_(
            (OutboundEmail.status == OutboundStatus.QUEUED)
            & (OutboundEmail.next_attempt_at <= bindparam("due", type_=UTCDateTime())),
            (OutboundEmail.status == OutboundStatus.SENDING) & (OutboundEmail.lease_until < _NOW),
        )
    )
    .order_by(OutboundEmail.next_attempt_at, OutboundEmail.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(OutboundEmail)
    .where(OutboundEmail.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=OutboundStatus.SENDING,
        claimed_by=bindparam("worker"),
        lease_until=bindparam("lease_until", type_=UTCDateTime()),
        attempts=OutboundEmail.attempts + 1,
    )
)
# Locked, so that a sender whose lease lapsed cannot overwrite the new claimant's result.
_HOLDERS = (
    select(OutboundEmail.id, OutboundEmail.claimed_by, OutboundEmail.attempts)
    .where(OutboundEmail.id.in_(bindparam("ids", expanding=True)))
    .with_for_update()
)


# Writes the messages of notifications queued without one: by row id, bytes or the reason
# it cannot be written (Notifier.render_queued).
Renderer = Callable[[Session, list[Unrendered]], dict[int, bytes | str]]


def by_kind(default: Renderer, **renderers: Renderer) -> Renderer:
    """One renderer that hands each kind of queued mail to its own (a notification's is
    `default`), a batch at a time per kind."""

    def render(session: Session, queued: list[Unrendered]) -> dict[int, bytes | str]:
        groups: dict[str, list[Unrendered]] = {}
        for item in queued:
            groups.setdefault(item.kind if item.kind in renderers else "", []).append(item)
        written: dict[int, bytes | str] = {}
        for kind, items in groups.items():
            written.update(renderers.get(kind, default)(session, items))
        return written

    return render


@dataclass(frozen=True)
class Parcel:
    """A claimed outbound message, detached from its database session."""

    id: int
    recipient: str
    raw: bytes | None  # None: a notification whose message is yet to be written
    attempts: int
    kind: str
    recipient_id: int | None
    comment_id: int | None = None
    message_id: str | None = None
    post_id: int | None = None

    @property
    def message(self) -> bytes:
        """The message to send (parcels from `write_messages` have one)."""
        if self.raw is None:
            raise ValueError(f"outbound #{self.id} has no message written yet")
        return self.raw


def backoff(attempts: int) -> timedelta:
    """Wait before the next try: 30 s, 1 min, 2 min, ... capped at 6 h."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)


class Outbox:
    """Claims due outbound rows, delivers them, and records the result."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        outbound: Outbound,
        *,
        envelope_sender: Callable[[Parcel], str],
        max_attempts: int,
        render: Renderer,
        local_hostname: str = "localhost",
        lease: timedelta = LEASE,
    ) -> None:
        self.session_factory = session_factory
        self.render = render  # writes notifications queued without their message
        self.lease = lease
        self.outbound = outbound
        self.envelope_sender = envelope_sender
        self.max_attempts = max_attempts
        self.local_hostname = local_hostname
        self._maildir: mailbox.Maildir | None = None

    def claim_due(
        self, worker: str, limit: int = CLAIM_LIMIT, *, held_back: timedelta = timedelta(0)
    ) -> list[Parcel]:
        """Claim up to `limit` rows that fell due at least `held_back` ago (or whose sender
        died mid-delivery)."""
        now = utcnow()
        with self.session_factory.begin() as session:
            connection = session.connection()
            rows = connection.execute(
                _DUE, {"now": now, "due": now - held_back, "limit": limit}
            ).all()
            if not rows:
                return []
            connection.execute(
                _CLAIM,
                {
                    "ids": [row.id for row in rows],
                    "worker": worker,
                    "lease_until": now + self.lease,
                },
            )
            return [
                Parcel(
                    row.id,
                    row.recipient,
                    row.raw,
                    row.attempts + 1,
                    row.kind,
                    row.recipient_id,
                    row.comment_id,
                    row.message_id,
                    row.post_id,
                )
                for row in rows
            ]

    def write_messages(
        self, parcels: list[Parcel]
    ) -> tuple[list[Parcel], list[tuple[Parcel, DeliveryError | None]]]:
        """Right before sending: check that each recipient still wants their mail (cancelled
        if not), and write the messages of notifications queued without one, reading in a
        transaction of its own that leaves SQLite's write lock to the edge and the worker.
        Returns the parcels ready to send, and the attempts already over: those cancelled,
        and those that cannot be written, failed with the reason."""
        if not any(p.raw is None or needs_asking(p) for p in parcels):
            return parcels, []
        with self.session_factory() as session:
            session.connection(execution_options={READ_ONLY: True})
            cancelled = unwanted(session, parcels)
            unrendered = [
                Unrendered(
                    p.id, p.comment_id, p.recipient_id, p.recipient, p.message_id, p.kind, p.post_id
                )
                for p in parcels
                if p.raw is None and p.id not in cancelled
            ]
            written = self.render(session, unrendered) if unrendered else {}
        ready: list[Parcel] = []
        over: list[tuple[Parcel, DeliveryError | None]] = []
        for parcel in parcels:
            if parcel.id in cancelled:
                over.append((parcel, Cancelled(cancelled[parcel.id])))
                continue
            raw = parcel.raw if parcel.raw is not None else written.get(parcel.id)
            if isinstance(raw, bytes):
                ready.append(dataclasses.replace(parcel, raw=raw))
            else:
                reason = raw or "no message was written for it"
                over.append((parcel, DeliveryError(reason, permanent=True)))
        return ready, over

    def _relay_client(self) -> aiosmtplib.SMTP:
        """A client for the configured relay (it logs in and starts TLS as it connects)."""
        return aiosmtplib.SMTP(
            hostname=self.outbound.host,
            port=self.outbound.port,
            username=self.outbound.username,
            password=self.outbound.password,
            start_tls=self.outbound.starttls,
            cert_bundle=self.outbound.cafile,
            local_hostname=self.local_hostname,
            timeout=60,
        )

    async def _relay_all(self, parcels: list[Parcel]) -> list[DeliveryError | None]:
        """Send parcels through the relay over one SMTP session; per parcel, None or why not.

        One session for the batch, as MTAs reuse theirs: connecting, TLS and login cost more
        than a notification. Should the relay drop the session, the next parcel opens another;
        should it not take a connection or our login, the rest of the batch is not tried.
        """
        results: list[DeliveryError | None] = []
        client: aiosmtplib.SMTP | None = None
        try:
            for index, parcel in enumerate(parcels):
                if client is None:
                    client = self._relay_client()
                    try:
                        await client.connect()
                    except (aiosmtplib.SMTPException, OSError) as exc:
                        client = None
                        results += [relay_error(exc)] * (len(parcels) - index)
                        break
                try:
                    # The client, not aiosmtplib.send(): send() cannot use the null sender "<>".
                    await client.sendmail(
                        self.envelope_sender(parcel), [parcel.recipient], parcel.message
                    )
                    results.append(None)
                except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                    results.append(relay_error(exc))
                    # A refusal resets the envelope and keeps the session; anything else
                    # (a drop, a timeout) may leave it half-way, so the next parcel gets a new one.
                    if not isinstance(exc, REFUSALS) or not client.is_connected:
                        client.close()
                        client = None
        finally:
            if client is not None:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()
        return results

    def record_all(
        self, attempts: list[tuple[Parcel, DeliveryError | None]], worker: str
    ) -> list[str]:
        """Store the outcomes of several attempts in one commit; returns the new statuses."""
        if not attempts:
            return []
        with self.session_factory.begin() as session:
            # The raw message is not read back.
            ids = [parcel.id for parcel, _ in attempts]
            rows = {row.id: row for row in session.connection().execute(_HOLDERS, {"ids": ids})}
            now = utcnow()
            statuses: list[str] = []
            changes: list[dict[str, object]] = []
            for parcel, error in attempts:
                row = rows.get(parcel.id)
                if row is None or row.claimed_by != worker:
                    statuses.append("lost-claim")
                    continue
                change = self._change(parcel.id, row.attempts, error, now)
                changes.append(change)
                statuses.append(str(change["status"]))
                if error is not None and error.bounce is not None:
                    self._count_refusal(session, parcel, error.bounce)
            if changes:
                session.connection().execute(_RECORD, changes)
            return statuses

    @staticmethod
    def _count_refusal(session: Session, parcel: Parcel, bounce: Bounce) -> None:
        """Count the relay's refusal of a recipient against their address, as a DSN would be
        (a delivery that went through lowers nothing: the relay takes what it bounces later)."""
        person = session.get(Person, parcel.recipient_id) if parcel.recipient_id else None
        if person is not None:
            verdict = record_bounce(session, person, bounce)
            log.info("outbound #%s refused at RCPT: %s", parcel.id, verdict)

    def _change(
        self, row_id: int, attempts: int, error: DeliveryError | None, now: datetime
    ) -> dict[str, object]:
        """The parameters of _RECORD for one attempt: sent, failed for good, or retried later."""
        if error is None:
            status, sent_at, retry_at, reason = OutboundStatus.SENT, now, None, None
        elif isinstance(error, Cancelled):
            status, sent_at, retry_at, reason = OutboundStatus.CANCELLED, None, None, str(error)
        elif error.permanent or attempts >= self.max_attempts:
            status, sent_at, retry_at, reason = OutboundStatus.FAILED, None, None, str(error)
        else:
            status, sent_at, reason = OutboundStatus.QUEUED, None, str(error)
            retry_at = now + backoff(attempts)
        return {
            "row_id": row_id,
            "status": status,
            "sent_at": sent_at,
            "next_attempt_at": retry_at,  # None keeps the row's own
            "last_error": reason[:2000] if reason else None,
            "done": status != OutboundStatus.QUEUED,
        }

    def _file_all(self, parcels: list[Parcel]) -> list[DeliveryError | None]:
        """Write parcels into the outbox Maildir; per parcel, None or why it failed."""
        results: list[DeliveryError | None] = []
        for parcel in parcels:
            try:
                if self._maildir is None:
                    assert self.outbound.path is not None
                    # Maildir makes the folder itself but not its parents.
                    private_dir(self.outbound.path.parent)
                    self._maildir = mailbox.Maildir(self.outbound.path, create=True)
                # Written into tmp/ and renamed into new/, so readers never see half a file.
                self._maildir.add(parcel.message)
                results.append(None)
            except OSError as exc:
                self._maildir = None  # the folder may be gone: look again next time
                message = f"cannot write to the outbox Maildir: {exc}"
                results.append(DeliveryError(message, permanent=False))
        return results

    async def run_once(self, worker: str, *, held_back: timedelta = timedelta(0)) -> int:
        """Deliver a batch of what is due (for `held_back` at least); returns how many
        attempts were made."""
        claimed = await asyncio.to_thread(self.claim_due, worker, held_back=held_back)
        parcels, attempts = await asyncio.to_thread(self.write_messages, claimed)
        errors: list[DeliveryError | None] = []
        if parcels and self.outbound.kind == "maildir":
            # One trip to a thread for the whole batch: local files need no concurrency.
            errors = await asyncio.to_thread(self._file_all, parcels)
        elif parcels:
            errors = await self._relay_all(parcels)
        attempts += zip(parcels, errors, strict=True)
        # One commit for the whole batch: a crash before it re-sends the batch (at least
        # once, as any crash between delivery and record would), never loses a message.
        statuses = await asyncio.to_thread(self.record_all, attempts, worker)
        for (parcel, error), status in zip(attempts, statuses, strict=True):
            if error is None:
                log.info("outbound #%s delivered", parcel.id)
            else:
                log.warning(
                    "outbound #%s attempt %s: %s -> %s", parcel.id, parcel.attempts, error, status
                )
        return len(claimed)
