"""Building blocks of every message replyd sends: templates, safe header values, common headers."""

from __future__ import annotations

import functools
import html as html_text
import re
import secrets
from datetime import datetime
from email.charset import QP, Charset
from email.errors import HeaderParseError, InvalidHeaderDefect
from email.header import Header
from email.headerregistry import Address
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any, Protocol

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

from service.extraction.marker import MARKERS
from service.resources import templates_dir
from service.store.models import Person

TEMPLATES_DIR = templates_dir()


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
        # Templates are read once per process: no stat() of each file at every render.
        auto_reload=False,
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


# Remembered: the same followers are checked for every comment on their threads, and the
# email package's address parser costs more than the rest of a notification's headers.
@functools.lru_cache(maxsize=4096)
def deliverable_address(address: str) -> bool:
    """Whether an address can stand in a To header: one well-formed addr-spec with a domain.

    ASCII only: our mail is not sent with SMTPUTF8 (RFC 6531), so an internationalised
    address (or an undecoded IDN domain) cannot be written into it.
    """
    if not address.isascii():
        return False
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError, InvalidHeaderDefect):
        return False
    return bool(parsed.username and "." in parsed.domain) and parsed.addr_spec == address


class Addressee(Protocol):
    """Whoever a message is addressed to: a Person, or a row with the same fields."""

    @property
    def email(self) -> str: ...

    @property
    def display_name(self) -> str: ...


def public_name(person: Person) -> str:
    """How a person is named to others: their display name, never their address."""
    return header_text(person.display_name) or "A reader"


def mailbox(display_name: str, address: str) -> str:
    """A `Name <address>` header value; the name quoted or RFC 2047-encoded as it needs."""
    return formataddr((header_text(display_name), address), charset="utf-8")


# The wire form of our mail: CRLF line ends, 7-bit clean (bodies are quoted-printable), so
# any relay takes it unchanged. The email package's compat32 API builds it: a fifth of the
# CPU of EmailMessage's header objects, which matters when one comment fans out to many.
_FOLD_AT = 78  # RFC 5322's recommended line length, at which Header folds


class _Wire(Compat32):
    """compat32, except that a short ASCII field is written without a Header object.

    compat32 hands every field to a Header, which folds it at 78 characters; a field that
    fits comes back unchanged, so building the Header only costs time (two thirds of the
    CPU of a notification's headers).
    """

    def fold_binary(self, name: str, value: Any) -> bytes:
        """The field as it goes on the wire, folded and encoded as compat32 would."""
        if isinstance(value, str) and value.isascii():
            line = f"{name}: {value}"
            if len(line) <= _FOLD_AT and "\r" not in value and "\n" not in value:
                return f"{line}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_WIRE = _Wire(linesep="\r\n")
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


class Draft:
    """The header fields of one outgoing message, in order; `as_bytes` adds rendered bodies."""

    def __init__(self) -> None:
        self._fields: list[tuple[str, str]] = []

    def __setitem__(self, name: str, value: str) -> None:
        if "\r" in value or "\n" in value:
            # Values come through header_text or our own formatting; a line break here
            # would let data start a header of its own.
            raise ValueError(f"line break in the {name} header value")
        self._fields.append((name, value))

    def as_bytes(self, bodies: bytes) -> bytes:
        """The whole message: these header fields, then `bodies` from `render_bodies`."""
        # Each field folded and encoded by the policy, exactly as the generator writes a
        # Message's fields (without building one): non-ASCII text becomes RFC 2047 encoded
        # words, ASCII is folded as it is.
        fields = [
            _WIRE.fold_binary(
                name, value if value.isascii() else Header(value, "utf-8", header_name=name)
            )
            for name, value in self._fields
        ]
        return b"".join(fields) + bodies


def _part_head(subtype: str, *, top: bool) -> bytes:
    """The header fields of a quoted-printable UTF-8 text part as MIMEText writes them (the
    blank line after them included); MIME-Version only when the part is the whole body."""
    # typeshed says str, but MIMEText takes a Charset too: ours is quoted-printable UTF-8.
    part = MIMEText("", subtype, _UTF8_QP)  # type: ignore[arg-type]
    if not top:
        del part["MIME-Version"]  # said once, at the top
    return part.as_bytes(policy=_WIRE)


def _alternative_head(boundary: str) -> bytes:
    """The header fields of a multipart/alternative body with `boundary`, blank line included."""
    whole = MIMEMultipart("alternative", boundary).as_bytes(policy=_WIRE)
    return whole[: whole.index(b"\r\n\r\n") + 4]


# Our own boundary: "=_" cannot occur in quoted-printable text, so it is safe without the
# generator's search of the bodies. It always has the same length, so the email package's
# header for one boundary, written once, serves for every other.
_BOUNDARY_HEX = 12
_SAMPLE_BOUNDARY = "=_replyd_" + "0" * 2 * _BOUNDARY_HEX
_ALTERNATIVE_HEAD = _alternative_head(_SAMPLE_BOUNDARY)
_PART_HEADS = {
    (subtype, top): _part_head(subtype, top=top)
    for subtype in ("plain", "html")
    for top in (True, False)
}


def _qp_part(text: str, subtype: str, *, top: bool) -> bytes:
    """One text part: MIMEText's header fields and its quoted-printable body, CRLF line ends."""
    # The encoder ends lines with LF only (a CR in the text comes out as a line end too),
    # and the generator writes each as CRLF.
    body = _UTF8_QP.body_encode(text)
    return _PART_HEADS[subtype, top] + body.replace("\n", "\r\n").encode("ascii")


def render_texts(
    templates: Environment, name: str, context: dict[str, Any]
) -> tuple[str, str | None]:
    """`name`.txt and `name`.html (None when there is none) rendered with `context`."""
    text = templates.get_template(f"{name}.txt").render(context)
    try:
        html = templates.get_template(f"{name}.html")
    except TemplateNotFound:
        return text, None
    return text, html.render(context)


def encode_bodies(text: str, html: str | None) -> bytes:
    """The text (and HTML) MIME-encoded, with their Content-Type lines: the part of a message
    after its own header fields.

    The email package encodes the text and writes every header field; the parts are joined
    here as its generator joins them (building MIMEText objects took three quarters of the
    time).
    """
    if html is None:
        return _qp_part(text, "plain", top=True)
    boundary = f"=_replyd_{secrets.token_hex(_BOUNDARY_HEX)}".encode("ascii")
    head = _ALTERNATIVE_HEAD.replace(_SAMPLE_BOUNDARY.encode("ascii"), boundary)
    plain = _qp_part(text, "plain", top=False)
    rich = _qp_part(html, "html", top=False)
    dash = b"--" + boundary
    return b"".join(
        (head, dash, b"\r\n", plain, b"\r\n", dash, b"\r\n", rich, b"\r\n", dash, b"--\r\n")
    )


def render_bodies(templates: Environment, name: str, context: dict[str, Any]) -> bytes:
    """`name`.txt (and `name`.html when it exists) rendered and MIME-encoded (encode_bodies).

    Rendered once, these bytes serve every recipient of the same text.
    """
    return encode_bodies(*render_texts(templates, name, context))


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _qp_line(line: str) -> bytes:
    """One line of text as quoted-printable, with the CRLF soft breaks it may need."""
    return _UTF8_QP.body_encode(line).replace("\n", "\r\n").encode("ascii")


class PersonalBodies:
    """Bodies rendered and encoded once for many readers, except for values each reader has
    of their own (their unsubscribe and erasure links): the templates see a placeholder for
    each, which `for_reader` replaces in the encoded bytes.

    Each placeholder is drawn at random for each rendering, so no text from outside (a
    comment quoting one) can name it. A value must stand where the text part shows it as it
    is (a URL, say); the HTML part gets it escaped.
    """

    def __init__(
        self,
        templates: Environment,
        name: str,
        context: dict[str, Any],
        *,
        personal: tuple[str, ...],
    ) -> None:
        self.placeholders = {key: f"replydslot{secrets.token_hex(8)}" for key in personal}
        self.text, self.html = render_texts(templates, name, {**context, **self.placeholders})
        self.encoded = encode_bodies(self.text, self.html)

    def for_reader(self, **values: str) -> bytes:
        """The encoded bodies with the reader's own values in (HTML-escaped in the HTML):
        quoted-printable encodes each line on its own, so only the lines holding a
        placeholder are encoded again."""
        if values.keys() != self.placeholders.keys():
            raise ValueError(f"a reader's values are {sorted(self.placeholders)}")
        plain = {self.placeholders[key]: value for key, value in values.items()}
        escaped = {mark: html_text.escape(value) for mark, value in plain.items()}
        out = self.encoded
        for source, filling in ((self.text, plain), (self.html, escaped)):
            # Quoted-printable breaks lines at CR and LF only (other breaks it escapes).
            for line in _LINE_BREAK.split(source or ""):
                if not any(mark in line for mark in filling):
                    continue
                before = _qp_line(line)
                if before not in out:  # cannot happen; still, never send a placeholder
                    return self._encoded_anew(plain, escaped)
                out = out.replace(before, _qp_line(_fill(line, filling)), 1)
        return out

    def _encoded_anew(self, plain: dict[str, str], escaped: dict[str, str]) -> bytes:
        html = _fill(self.html, escaped) if self.html is not None else None
        return encode_bodies(_fill(self.text, plain), html)


def _fill(text: str, filling: dict[str, str]) -> str:
    for mark, value in filling.items():
        text = text.replace(mark, value)
    return text


def new_message(
    *,
    sender_name: str,
    sender_address: str,
    to: Addressee | str,
    subject: str,
    message_id: str,
    date: datetime,
    auto_submitted: str = "auto-generated",
) -> Draft:
    """A message with the headers every mail of ours carries (RFC 3834 loop protection too)."""
    message = Draft()
    message["From"] = mailbox(sender_name, sender_address)
    if isinstance(to, str):
        message["To"] = mailbox("", to)
    else:
        message["To"] = mailbox(to.display_name, to.email)
    message["Subject"] = header_text(subject, 250)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = auto_submitted
    message["X-Auto-Response-Suppress"] = "All"
    return message
