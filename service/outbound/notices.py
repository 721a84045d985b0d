"""Tells a sender, at most once a day per reason, why their reply was not published."""

from __future__ import annotations

from datetime import date

from jinja2 import Environment
from sqlalchemy import select
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
from service.store.models import OutboundEmail, RejectionNotice, utcnow
from service.store.suppression import is_suppressed

# Reasons a sender is told about; the sentences for each are in the rejection templates.
REASON_CODES = frozenset({"closed", "sender_mismatch", "empty", "gone", "no_route", "digest"})


class RejectionNotices:
    """Queues rejection notices in the caller's transaction, throttled per sender and reason."""

    def __init__(
        self,
        *,
        from_address: str,
        site_name: str,
        domain: str,
        templates: Environment | None = None,
    ) -> None:
        self.from_address = from_address
        self.site_name = site_name
        self.domain = domain
        self.templates = templates or make_templates()

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
        if not to or code not in REASON_CODES or to.endswith(f"@{self.domain}"):
            return False
        if not deliverable_address(to):
            return False  # a mangled From cannot be answered; the rejection stands without it
        if is_suppressed(session, to):
            return False  # they asked to be forgotten: never mailed again
        day = today or utcnow().date()
        already = session.scalar(
            select(RejectionNotice.id).where(
                RejectionNotice.sender == to,
                RejectionNotice.reason_code == code,
                RejectionNotice.day == day,
            )
        )
        if already is not None:
            return False
        message_id = f"<rejected-{inbound_id}@{self.domain}>"
        message = new_message(
            sender_name=self.site_name,
            sender_address=self.from_address,
            to=to,
            subject=render_line(self.templates, "rejection.subject", {"subject": subject}),
            message_id=message_id,
            date=utcnow(),
            auto_submitted="auto-replied",
        )
        if in_reply_to:
            # The sender's own Message-ID, so it threads under their mail; one line, bounded.
            message["In-Reply-To"] = header_text(in_reply_to, 998)
            message["References"] = header_text(in_reply_to, 998)
        bodies = render_bodies(
            self.templates,
            "rejection",
            {"site_name": self.site_name, "subject": subject, "code": code},
        )
        # A savepoint: losing a race for the daily slot must not undo the caller's work.
        try:
            with session.begin_nested():
                session.add(
                    RejectionNotice(
                        sender=to, reason_code=code, day=day, inbound_email_id=inbound_id
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
