"""Tells a proven sender, at most once a day per reason, why their reply was not published."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from jinja2 import Environment
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.outbound.compose import (
    deliverable_address,
    header_text,
    make_templates,
    new_message,
    render_bodies,
    render_line,
)
from service.store.models import (
    MAX_COMMENT_CHARS,
    OutboundEmail,
    ReasonCode,
    RejectionNotice,
    utcnow,
)
from service.store.suppression import is_suppressed

log = logging.getLogger(__name__)

# Reasons a sender is told about; the sentences for each are in the rejection templates.
REASON_CODES = frozenset(
    {
        ReasonCode.CLOSED,
        ReasonCode.SENDER_MISMATCH,
        ReasonCode.EMPTY,
        ReasonCode.GONE,
        ReasonCode.NO_ROUTE,
        ReasonCode.DIGEST,
        ReasonCode.EXPIRED,
        ReasonCode.TOO_LONG,
    }
)
DEFAULT_NOTICES_PER_HOUR = 100


class RejectionNotices:
    """Queues rejection notices in the caller's transaction, throttled per sender and reason
    (one a day) and overall (`per_hour`, None for no cap).

    The caller sends one only to a proven sender (see service.inbound.decide); the cap is
    what is left should that ever be wrong: replyd must not become a way to mail strangers.
    """

    def __init__(
        self,
        *,
        from_address: str,
        site_name: str,
        domain: str,
        templates: Environment | None = None,
        per_hour: int | None = DEFAULT_NOTICES_PER_HOUR,
    ) -> None:
        self.from_address = from_address
        self.site_name = site_name
        self.domain = domain
        self.templates = templates or make_templates()
        self.per_hour = per_hour

    def _ours(self, address: str) -> bool:
        """Whether an address is at our domain (or below it), or our own sender address."""
        domain = address.rpartition("@")[2]
        return (
            address == self.from_address
            or domain == self.domain
            or domain.endswith(f".{self.domain}")
        )

    def _over_the_cap(self, session: Session) -> bool:
        """Whether the notices of the last hour, from every node, reached the cap."""
        if self.per_hour is None:
            return False
        since = utcnow() - timedelta(hours=1)
        recent = session.scalar(
            select(func.count())
            .select_from(RejectionNotice)
            .where(RejectionNotice.created_at >= since)
        )
        if (recent or 0) < self.per_hour:
            return False
        log.warning(
            "not sending a rejection notice: %s went out in the last hour "
            "(REPLYD_NOTICES_PER_HOUR)",
            recent,
        )
        return True

    def queue(
        self,
        session: Session,
        *,
        inbound_id: int,
        to: str,
        code: str,
        subject: str,
        in_reply_to: str | None,
        today: date | None = None,
    ) -> bool:
        """Queue a notice unless one for this sender and reason went out today; True if queued."""
        to = to.strip().lower()
        if not to or code not in REASON_CODES or self._ours(to):
            return False
        if not deliverable_address(to):
            return False  # a mangled From cannot be answered; the rejection stands without it
        if is_suppressed(session, to):
            return False  # they asked to be forgotten: never mailed again
        now = utcnow()
        day = today or now.date()
        already = session.scalar(
            select(RejectionNotice.id).where(
                RejectionNotice.sender == to,
                RejectionNotice.reason_code == code,
                RejectionNotice.day == day,
            )
        )
        if already is not None or self._over_the_cap(session):
            return False
        message_id = f"<rejected-{inbound_id}@{self.domain}>"
        message = new_message(
            sender_name=self.site_name,
            sender_address=self.from_address,
            to=to,
            subject=render_line(self.templates, "rejection.subject", {"subject": subject}),
            message_id=message_id,
            date=now,
            auto_submitted="auto-replied",
        )
        if in_reply_to:
            # The sender's own Message-ID, so it threads under their mail; one line, bounded.
            message["In-Reply-To"] = header_text(in_reply_to, 998)
            message["References"] = header_text(in_reply_to, 998)
        bodies = render_bodies(
            self.templates,
            "rejection",
            {
                "site_name": self.site_name,
                "subject": subject,
                "code": code,
                "max_comment_chars": MAX_COMMENT_CHARS,
            },
        )
        # A savepoint: losing a race for the daily slot must not undo the caller's work.
        try:
            with session.begin_nested():
                session.add(
                    RejectionNotice(
                        sender=to,
                        reason_code=code,
                        day=day,
                        inbound_email_id=inbound_id,
                        created_at=now,
                    )
                )
                session.add(
                    OutboundEmail(
                        kind="rejection",
                        message_id=message_id,
                        recipient=to,
                        raw=message.as_bytes(bodies),
                    )
                )
        except IntegrityError:
            return False
        return True
