"""Self-service erasure by mail: the footer link to ask, the confirmation link mailed back."""

from __future__ import annotations

import secrets
from datetime import date

from jinja2 import Environment
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.identity.addresses import AddressBook, Keyring
from service.identity.forget_links import CONFIRM_DAYS, confirm_token, request_token
from service.outbound.compose import (
    deliverable_address,
    new_message,
    render_bodies,
    render_line,
)
from service.outbound.writer import MailWriter
from service.store.models import OutboundEmail, Person, utcnow
from service.store.suppression import is_suppressed

# What the confirmation request came by, for the reason its inbound message keeps.
MAILED = "a confirmation link was mailed to the address"
ALREADY_MAILED = "a confirmation link was already mailed to the address today"
NOT_MAILED = "nothing was mailed: the address is forgotten, suppressed or cannot be written to"


class ErasureMail(MailWriter):
    """Links and mail of the self-service erasure, for one deployment."""

    def __init__(
        self,
        book: AddressBook,
        keyring: Keyring,
        *,
        from_address: str,
        site_name: str,
        base_url: str,
        templates: Environment | None = None,
        once_a_day: bool = True,
    ) -> None:
        super().__init__(
            book,
            keyring,
            from_address=from_address,
            site_name=site_name,
            base_url=base_url,
            templates=templates,
        )
        # One confirmation per person and day, so a forged request cannot flood a mailbox;
        # off with the rate limits (REPLYD_RATE_LIMITS=off).
        self.once_a_day = once_a_day

    def request_url(self, person_id: int) -> str:
        """The footer link: a page that offers to mail `person_id` a confirmation link."""
        return f"{self.base_url}/forget/{request_token(person_id, self.keyring)}"

    def confirm_url(self, person_id: int, day: date) -> str:
        """The link mailed to the person: only it leads to the erasure."""
        return f"{self.base_url}/forget/confirm/{confirm_token(person_id, self.keyring, day)}"

    def footer_values(self, person_id: int) -> tuple[str, str]:
        """The footer link for a text part and for an HTML part (escaped)."""
        url = self.request_url(person_id)
        return url, str(escape(url))

    def queue_confirmation(self, session: Session, person: Person) -> str:
        """Queue the confirmation mail for `person` in the caller's transaction; says what
        was done (MAILED, ALREADY_MAILED or NOT_MAILED)."""
        if (
            person.erased_at is not None
            or not deliverable_address(person.email)
            or is_suppressed(session, person.email)
        ):
            return NOT_MAILED
        now = utcnow()
        day = now.date()
        key = f"{day:%Y%m%d}" if self.once_a_day else f"{day:%Y%m%d}.{secrets.token_hex(6)}"
        message_id = f"<forget-{person.id}.{key}@{self.book.domain}>"
        if session.scalar(select(OutboundEmail.id).where(OutboundEmail.message_id == message_id)):
            return ALREADY_MAILED
        context = {
            "site_name": self.site_name,
            "email": person.email,
            "confirm_url": self.confirm_url(person.id, day),
            "days": CONFIRM_DAYS,
        }
        message = new_message(
            sender_name=self.site_name,
            sender_address=self.from_address,
            to=person,
            subject=render_line(self.templates, "forget_confirm.subject", context),
            message_id=message_id,
            date=now,
            # An answer to the person's own request (RFC 3834), never a list mail.
            auto_submitted="auto-replied",
        )
        bodies = render_bodies(self.templates, "forget_confirm", context)
        session.add(
            OutboundEmail(
                kind="forget-confirm",
                message_id=message_id,
                recipient_id=person.id,
                recipient=person.email,
                raw=message.as_bytes(bodies),
            )
        )
        session.flush()
        return MAILED
