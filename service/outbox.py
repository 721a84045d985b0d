"""Delivers queued outbound mail to a local Maildir or an SMTP relay, with retries."""

from __future__ import annotations

import asyncio
import logging
import mailbox
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import aiosmtplib
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, defer, sessionmaker

from service.bounces import record_delivery
from service.config import Outbound
from service.models import OutboundEmail, OutboundStatus, utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)


class DeliveryError(Exception):
    """A delivery attempt failed; `permanent` says whether trying again could help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Parcel:
    """A claimed outbound message, detached from its database session."""

    id: int
    recipient: str
    raw: bytes
    attempts: int
    kind: str
    recipient_id: int | None


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
        local_hostname: str = "localhost",
        lease: timedelta = LEASE,
    ) -> None:
        self.session_factory = session_factory
        self.lease = lease
        self.outbound = outbound
        self.envelope_sender = envelope_sender
        self.max_attempts = max_attempts
        self.local_hostname = local_hostname

    def claim_due(self, worker: str, limit: int = 20) -> list[Parcel]:
        """Claim up to `limit` rows that are due (or whose sender died mid-delivery)."""
        now = utcnow()
        with self.session_factory.begin() as session:
            rows = session.scalars(
                select(OutboundEmail)
                .where(
                    or_(
                        (OutboundEmail.status == OutboundStatus.QUEUED)
                        & (OutboundEmail.next_attempt_at <= now),
                        (OutboundEmail.status == OutboundStatus.SENDING)
                        & (OutboundEmail.lease_until < now),
                    )
                )
                .order_by(OutboundEmail.next_attempt_at, OutboundEmail.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            parcels = []
            for row in rows:
                row.status = OutboundStatus.SENDING
                row.claimed_by = worker
                row.lease_until = now + self.lease
                row.attempts += 1
                parcels.append(
                    Parcel(row.id, row.recipient, row.raw, row.attempts, row.kind, row.recipient_id)
                )
            return parcels

    async def deliver(self, parcel: Parcel) -> None:
        """Hand one message to the configured destination; raises DeliveryError."""
        if self.outbound.kind == "maildir":
            assert self.outbound.path is not None
            try:
                await asyncio.to_thread(_add_to_maildir, str(self.outbound.path), parcel.raw)
            except OSError as exc:
                raise DeliveryError(
                    f"cannot write to the outbox Maildir: {exc}", permanent=False
                ) from exc
            return
        client = aiosmtplib.SMTP(
            hostname=self.outbound.host,
            port=self.outbound.port,
            username=self.outbound.username,
            password=self.outbound.password,
            start_tls=self.outbound.starttls,
            cert_bundle=self.outbound.cafile,
            local_hostname=self.local_hostname,
            timeout=60,
        )
        try:
            # The client, not aiosmtplib.send(): send() cannot use the null sender "<>".
            async with client:
                await client.sendmail(self.envelope_sender(parcel), [parcel.recipient], parcel.raw)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [error.code for error in exc.recipients]
            raise DeliveryError(
                f"relay refused the recipient: {exc}", permanent=all(c >= 500 for c in codes)
            ) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            # Our credentials, not this message, are wrong: keep it queued until they are fixed.
            raise DeliveryError(
                f"relay refused our login ({exc.code} {exc.message}); check REPLYD_OUTBOUND",
                permanent=False,
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"relay answered {exc.code} {exc.message}", permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"relay unreachable: {exc}", permanent=False) from exc

    def record(self, parcel: Parcel, worker: str, error: DeliveryError | None) -> str:
        """Store the outcome of one attempt; returns the row's new status."""
        return self.record_all([(parcel, error)], worker)[0]

    def record_all(
        self, attempts: list[tuple[Parcel, DeliveryError | None]], worker: str
    ) -> list[str]:
        """Store the outcomes of several attempts in one commit; returns the new statuses."""
        if not attempts:
            return []
        with self.session_factory.begin() as session:
            # One query for the batch, locked so that a sender whose lease lapsed cannot
            # overwrite the new claimant's result; the raw message is not read back.
            rows = {
                row.id: row
                for row in session.scalars(
                    select(OutboundEmail)
                    .options(defer(OutboundEmail.raw))
                    .where(OutboundEmail.id.in_([parcel.id for parcel, _ in attempts]))
                    .with_for_update()
                )
            }
            return [
                self._record(session, rows.get(parcel.id), worker, error)
                for parcel, error in attempts
            ]

    def _record(
        self,
        session: Session,
        row: OutboundEmail | None,
        worker: str,
        error: DeliveryError | None,
    ) -> str:
        now = utcnow()
        if row is None or row.claimed_by != worker:
            return "lost-claim"
        row.claimed_by = None
        row.lease_until = None
        if error is None:
            row.status = OutboundStatus.SENT
            row.sent_at = now
            row.last_error = None
            if row.recipient_id is not None:
                record_delivery(session, row.recipient_id)
        elif error.permanent or row.attempts >= self.max_attempts:
            row.status = OutboundStatus.FAILED
            row.last_error = str(error)[:2000]
        else:
            row.status = OutboundStatus.QUEUED
            row.next_attempt_at = now + backoff(row.attempts)
            row.last_error = str(error)[:2000]
        return row.status

    async def run_once(self, worker: str) -> int:
        """Deliver everything due now; returns how many attempts were made."""
        parcels = await asyncio.to_thread(self.claim_due, worker)
        attempts: list[tuple[Parcel, DeliveryError | None]] = []
        for parcel in parcels:
            error: DeliveryError | None = None
            try:
                await self.deliver(parcel)
            except DeliveryError as exc:
                error = exc
            attempts.append((parcel, error))
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
        return len(parcels)


def _add_to_maildir(path: str, raw: bytes) -> None:
    # mailbox.Maildir writes into tmp/ and renames into new/, so readers never see half a file.
    mailbox.Maildir(path, create=True).add(raw)
