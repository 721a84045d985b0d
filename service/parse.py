"""Raw RFC 5322 bytes to a ParsedMessage value (mail-parser for bodies, stdlib for headers)."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field

import mailparser


@dataclass(frozen=True)
class ParsedMessage:
    """What the pipeline needs to know of one inbound message."""

    message_id: str | None
    from_address: str  # lower-cased addr-spec, "" when missing
    from_name: str
    subject: str
    in_reply_to: tuple[str, ...]  # message ids, angle brackets kept
    references: tuple[str, ...]
    text: str | None  # decoded, unflowed text/plain body, None when the mail has none
    html: str | None  # decoded text/html body, None when the mail has none
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # lower-case names

    def header(self, name: str) -> str:
        """First value of a header, or "" when absent."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""


def _message_ids(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split() if part.startswith("<") and part.endswith(">"))


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one message; never raises on malformed input (missing parts become empty)."""
    mail = mailparser.parse_from_bytes(raw)
    message = mail.message
    headers: dict[str, tuple[str, ...]] = {}
    for name, value in message.items():
        headers.setdefault(name.lower(), ())
        headers[name.lower()] += (str(value),)
    name, address = email.utils.parseaddr(str(message.get("From", "")))
    text = "\n".join(mail.text_plain) if mail.text_plain else None
    html = "\n".join(mail.text_html) if mail.text_html else None
    message_id = str(message.get("Message-ID", "")).strip() or None
    return ParsedMessage(
        message_id=message_id,
        from_address=address.strip().lower(),
        from_name=name.strip(),
        subject=str(mail.subject or ""),
        in_reply_to=_message_ids(str(message.get("In-Reply-To", ""))),
        references=_message_ids(str(message.get("References", ""))),
        text=text,
        html=html,
        headers=headers,
    )
