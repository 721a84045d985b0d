"""Building blocks of every message replyd sends: templates, safe header values, common headers."""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.errors import HeaderParseError, InvalidHeaderDefect
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

from service.marker import MARKERS
from service.models import Person

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


# Languages with a template set under templates/<language>/ (English is templates/ itself).
LANGUAGES = ("en", "de")


def make_templates(directory: Path = TEMPLATES_DIR, language: str = "en") -> Environment:
    """The jinja2 environment for outbound mail in one language, falling back to English.

    HTML is autoescaped, text is left as typed; `marker` (the reply-above-this-line line) is
    available to every template.
    """
    loaders = [FileSystemLoader(directory)]
    if language != "en":
        loaders.insert(0, FileSystemLoader(directory / language))
    environment = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.globals["marker"] = MARKERS.get(language, MARKERS["en"])
    return environment


def render_line(templates: Environment, name: str, context: dict[str, Any]) -> str:
    """Render a one-line template (a subject), as a single line."""
    return " ".join(templates.get_template(name).render(context).split())


def header_text(value: str, limit: int = 200) -> str:
    """User data made safe for a header value: one line, no control characters, bounded."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(cleaned.split())[:limit]


def deliverable_address(address: str) -> bool:
    """Whether an address can stand in a To header: one well-formed addr-spec with a domain."""
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError, InvalidHeaderDefect):
        return False
    return bool(parsed.username and "." in parsed.domain) and parsed.addr_spec == address


def public_name(person: Person) -> str:
    """How a person is named to others: their display name, never their address."""
    return header_text(person.display_name) or "A reader"


def new_message(
    *,
    sender_name: str,
    sender_address: str,
    to: Person | str,
    subject: str,
    message_id: str,
    date: datetime,
    auto_submitted: str = "auto-generated",
) -> EmailMessage:
    """A message with the headers every mail of ours carries (RFC 3834 loop protection too)."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = Address(display_name=header_text(sender_name), addr_spec=sender_address)
    if isinstance(to, Person):
        message["To"] = Address(display_name=header_text(to.display_name), addr_spec=to.email)
    else:
        message["To"] = Address(addr_spec=to)
    message["Subject"] = header_text(subject, 250)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = auto_submitted
    message["X-Auto-Response-Suppress"] = "All"
    return message


def add_bodies(
    message: EmailMessage, templates: Environment, name: str, context: dict[str, Any]
) -> None:
    """Render `name`.txt (and `name`.html when it exists) into the message's body parts."""
    message.set_content(templates.get_template(f"{name}.txt").render(context))
    try:
        html = templates.get_template(f"{name}.html")
    except TemplateNotFound:
        return
    message.add_alternative(html.render(context), subtype="html")
