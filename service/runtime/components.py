"""The long-lived objects a replyd process is built from (engine, keys, builders), made once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.identity.addresses import AddressBook, Keyring
from service.runtime.settings import Settings
from service.store.engine import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from jinja2 import Environment

    from service.inbound.pipeline import Pipeline
    from service.inbound.prepare import Preparer
    from service.moderation.actions import Moderation
    from service.moderation.intake import Intake
    from service.outbound.confirmations import Confirmations
    from service.outbound.digest import Digests
    from service.outbound.erasure_mail import ErasureMail
    from service.outbound.notify import Notifier
    from service.outbound.outbox import Outbox, Parcel
    from service.outbound.webhooks import WebhookSender
    from service.store.suppression import ErasedPeople
    from service.store.webhook_events import WebhookQueue

# The builders below import their modules when called: a CLI command that lists posts builds
# Components too, and must not pay for the extraction, delivery or template stack.


@dataclass
class Components:
    """The long-lived objects a replyd process is built from, made once from Settings."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    book: AddressBook
    keyring: Keyring

    @classmethod
    def build(cls, settings: Settings, *, durable: bool = True) -> Components:
        """Build the database engine, address book and keyring from settings."""
        engine = make_engine(settings.database_url, durable=durable)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=make_sessionmaker(engine),
            book=AddressBook(settings.domain, settings.reply_prefix, settings.reply_separator),
            keyring=Keyring.from_strings(settings.secret, settings.old_secrets),
        )

    def digests(self) -> Digests:
        """The digest builder for this deployment."""
        from service.outbound.digest import Digests

        return Digests(
            self.book,
            self.keyring,
            self.notifier(),
            from_address=self.settings.from_address,
            site_name=self.settings.site_name,
            templates=self.templates,
        )

    def _mail_identity(self) -> dict[str, Any]:
        """What every mail builder shares: who the mail is from, the site's name, where its
        links point and the templates it is written with."""
        return {
            "from_address": self.settings.from_address,
            "site_name": self.settings.site_name,
            "base_url": self.settings.base_url,
            "templates": self.templates,
        }

    def erasure_mail(self) -> ErasureMail:
        """The self-service erasure's links and confirmation mail for this deployment."""
        from service.outbound.erasure_mail import ErasureMail

        return ErasureMail(
            self.book,
            self.keyring,
            **self._mail_identity(),
            once_a_day=bool(self.settings.rate_limits),
        )

    def notifier(self) -> Notifier:
        """A notifier rendering with this deployment's addresses."""
        from service.outbound.notify import Notifier

        return Notifier(
            self.book,
            self.keyring,
            **self._mail_identity(),
            moderators=frozenset(self.settings.moderators),
            erasure_mail=self.erasure_mail(),
            webhooks=self.webhook_queue(),
        )

    def webhook_queue(self) -> WebhookQueue | None:
        """Where comment events are queued for REPLYD_WEBHOOK_URL; None when it is unset."""
        if self.settings.webhooks is None:
            return None
        from service.store.webhook_events import WebhookQueue

        return WebhookQueue(self.settings.webhooks.urls)

    def webhook_sender(self) -> WebhookSender | None:
        """What delivers the queued comment events; None when no webhook URL is set."""
        if self.settings.webhooks is None:
            return None
        from service.outbound.webhooks import WebhookSender

        return WebhookSender(self.session_factory, self.settings.webhooks)

    def intake(self, notifier: Notifier | None = None) -> Intake:
        """How new comments are published or held, as REPLYD_MODERATION says."""
        from service.moderation.intake import Intake
        from service.outbound.moderation_mail import ModerationMail

        settings = self.settings
        mail = ModerationMail(self.book, self.keyring, **self._mail_identity())
        return Intake(
            notifier or self.notifier(),
            mail,
            mode=settings.moderation,
            moderators=settings.moderators,
        )

    def moderation(self, notifier: Notifier | None = None) -> Moderation:
        """Moderators' actions on comments (approve, hide, restore, delete)."""
        from service.moderation.actions import Moderation

        return Moderation(notifier or self.notifier())

    def confirmations(self) -> Confirmations:
        """Readers' requests from the blog and their confirmation mail, for this deployment."""
        from service.outbound.confirmations import Confirmations

        return Confirmations(
            self.book,
            self.keyring,
            **self._mail_identity(),
        )

    @cached_property
    def erased_people(self) -> ErasedPeople:
        """The ids of forgotten people this process knows of (the SMTP edge refuses their
        tokens); the daemon refreshes it, an erasure made in this process adds to it."""
        from service.store.suppression import ErasedPeople

        return ErasedPeople()

    @cached_property
    def templates(self) -> Environment:
        """Outbound mail templates in the deployment's language (REPLYD_LANGUAGE), made once."""
        from service.outbound.compose import make_templates

        return make_templates(language=self.settings.language)

    def preparer(self) -> Preparer:
        """Parsing, classification and extraction as this deployment does them."""
        from service.inbound.prepare import Preparer

        settings = self.settings
        return Preparer(
            self.book,
            self.keyring,
            own_addresses={settings.from_address},
            quotes_only=settings.quotes_only,
        )

    def pipeline(self) -> Pipeline:
        """The inbound pipeline, as every worker (in the daemon or a process of its own) runs it."""
        from service.inbound.pipeline import Pipeline
        from service.outbound.notices import RejectionNotices
        from service.store.engine import edge_waiting

        settings = self.settings
        notifier = self.notifier()
        return Pipeline(
            self.session_factory,
            self.preparer(),
            notifier,
            RejectionNotices(
                from_address=settings.from_address,
                site_name=settings.site_name,
                domain=settings.domain,
                templates=self.templates,
                per_hour=settings.notices_per_hour,
            ),
            trust_authserv_id=settings.trust_authserv_id,
            yield_now=edge_waiting(self.engine),
            intake=self.intake(notifier),
        )

    def envelope_sender(self, parcel: Parcel) -> str:
        """VERP per message, so a bounce names what bounced; "" (null) for our auto-replies."""
        if parcel.kind == "rejection" or parcel.recipient_id is None:
            return ""  # RFC 3834: automatic responses go out with a null return path
        return self.book.bounce_address(parcel.id, parcel.recipient_id, self.keyring)

    def outbox(self) -> Outbox:
        """The outbox delivering this deployment's queued mail."""
        from service.outbound.new_posts import KIND, NewPostMail
        from service.outbound.outbox import Outbox, by_kind

        notifier = self.notifier()
        render = by_kind(notifier.render_queued, **{KIND: NewPostMail(notifier).render_queued})
        return Outbox(
            self.session_factory,
            self.settings.outbound,
            envelope_sender=self.envelope_sender,
            max_attempts=self.settings.outbound_max_attempts,
            local_hostname=self.settings.domain,
            lease=timedelta(seconds=self.settings.lease_seconds),
            render=render,
        )
