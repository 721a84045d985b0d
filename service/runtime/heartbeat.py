"""Claims kept alive: each process renews the leases of the rows its workers hold."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import timedelta

from sqlalchemy import Update, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.store.models import (
    InboundEmail,
    InboundStatus,
    OutboundEmail,
    OutboundStatus,
    UTCDateTime,
    utcnow,
)

log = logging.getLogger(__name__)

BEATS_PER_LEASE = 3  # a lease survives two missed beats


def node_name() -> str:
    """This process's name in the claims it writes: host, pid and a random part, since a
    process started after a crash may get the dead one's pid (in a container, it will)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def _renewal(table: type[InboundEmail] | type[OutboundEmail], status: str, prefix: str) -> Update:
    """Move the leases of the rows in `status` claimed by names starting with `prefix` to
    :until. Rows another transaction has locked are skipped, not waited for (PostgreSQL):
    they are being finished right now, and waiting could deadlock with that transaction."""
    held = (
        select(table.id)
        .where(table.status == status, table.claimed_by.startswith(prefix, autoescape=True))
        .with_for_update(skip_locked=True)
    )
    return (
        update(table)
        .where(table.id.in_(held.scalar_subquery()))
        .values(lease_until=bindparam("until", type_=UTCDateTime()))
        .execution_options(synchronize_session=False)
    )


class ClaimHeartbeat:
    """Renews, every third of a lease, the leases of every inbound and outbound row claimed by
    this process's workers (named `holder`/...), from a thread of its own.

    So a lease can be short: while the process lives its claims never lapse, however long a
    message takes (a slow relay, a large batch), and no other node takes a message it still
    works on; when it dies, another node takes its messages once their leases run out.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], holder: str, lease: timedelta
    ) -> None:
        self.session_factory = session_factory
        self.lease = lease
        self.every = lease.total_seconds() / BEATS_PER_LEASE
        prefix = f"{holder}/"
        self._renewals = (
            _renewal(InboundEmail, InboundStatus.PROCESSING, prefix),
            _renewal(OutboundEmail, OutboundStatus.SENDING, prefix),
        )
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> int:
        """Renew every lease this process holds now; returns how many rows."""
        until = utcnow() + self.lease
        renewed = 0
        with self.session_factory.begin() as session:
            for renewal in self._renewals:
                result = session.execute(renewal, {"until": until})
                renewed += result.rowcount or 0  # type: ignore[attr-defined]
        return renewed

    def start(self) -> None:
        """Beat in a thread until `stop`."""
        self._thread = threading.Thread(target=self._run, name="claims-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (the leases then run out unless the rows are finished)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.every + 30)

    def _run(self) -> None:
        while not self._stopping.wait(self.every):
            try:
                self.beat()
            except Exception:
                # The database may be briefly away; the next beat comes well within the lease.
                log.warning("renewing the leases of claimed mail failed", exc_info=True)
