"""What every writer of our own mail starts from: our addresses, keys, name, links, templates."""

from __future__ import annotations

from jinja2 import Environment

from service.identity.addresses import AddressBook, Keyring
from service.outbound.compose import make_templates


class MailWriter:
    """The deployment's address book and keyring, From address, site name, base URL for links
    and templates: the confirmation, moderation and erasure mails are written from these."""

    def __init__(
        self,
        book: AddressBook,
        keyring: Keyring,
        *,
        from_address: str,
        site_name: str,
        base_url: str,
        templates: Environment | None = None,
    ) -> None:
        self.book = book
        self.keyring = keyring
        self.from_address = from_address
        self.site_name = site_name
        self.base_url = base_url
        self.templates = templates or make_templates()
