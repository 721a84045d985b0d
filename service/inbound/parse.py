"""Raw RFC 5322 bytes to a ParsedMessage value (mail-parser for bodies, stdlib for headers)."""

from __future__ import annotations

import base64
import binascii
import codecs
import copy
import email.utils
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

import mailparser

from service.controls import strip_controls, strip_controls_line
from service.extraction import mime_salvage

# mail-parser logs every part at DEBUG and recoverable oddities at WARNING/ERROR; for mail
# from strangers that is noise, and what matters is reported through ParsedMessage.defects.
logging.getLogger("mailparser").setLevel(logging.CRITICAL)


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
    # What was wrong with the MIME structure (defect class names, or why a body was given up).
    defects: tuple[str, ...] = ()
    # Why the From header names no single plain mailbox ("" when it does): such mail is
    # never published, whatever else it carries.
    from_problem: str = ""

    def header(self, name: str) -> str:
        """First value of a header, or "" when absent."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""


# --- charsets -----------------------------------------------------------------------------

# Windows-1252 for the bytes 0x80-0x9F, which ISO-8859-1 maps to unused C1 controls: mail
# labelled ISO-8859-1 (or unlabelled) is in practice Windows-1252 (smart quotes, euro sign).
_C1_TO_CP1252 = {
    byte: bytes([byte]).decode("cp1252")
    for byte in range(0x80, 0xA0)
    if byte not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)  # undefined in cp1252: keep the C1 control
}


def _decode_cp1252(data: bytes) -> str:
    """Windows-1252 that never fails (its five undefined bytes become their Latin-1 controls)."""
    return data.decode("latin-1").translate(_C1_TO_CP1252)


def _cp1252_for_invalid_utf8(error: UnicodeError) -> tuple[str, int]:
    # A body declared UTF-8 that holds stray Windows-1252 bytes keeps its valid UTF-8 and
    # gets the stray bytes as the Windows-1252 characters they almost always are.
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return _decode_cp1252(error.object[error.start : error.end]), error.end


_UTF8_FALLBACK = "replyd.cp1252"
codecs.register_error(_UTF8_FALLBACK, _cp1252_for_invalid_utf8)

# Labels clients send that Python lacks, or that name a smaller set than the one really used.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
}

# Declared charsets that clients use as a label for "Western text": the body is decoded as
# UTF-8 when it is valid UTF-8 with non-ASCII bytes (a mislabel), else as Windows-1252.
_WESTERN = {"ascii", "iso8859-1", "cp1252"}


def decode_text(data: bytes, charset: str | None) -> str:
    """Decode body or header bytes by their declared charset, repairing the usual mislabels."""
    label = (charset or "").strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        codec = codecs.lookup(label).name if label else ""
    except (LookupError, ValueError):
        codec = ""  # unknown-8bit, x-user-defined, typos: treat as undeclared
    if codec and codec not in ("utf-8", "utf-8-sig") and codec not in _WESTERN:
        if not data.isascii() and _is_utf8(data):
            return _decode_utf8_or_cp1252(data).removeprefix("\ufeff")  # label contradicted
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            text = _decode_utf8_or_cp1252(data) if _is_utf8(data) else data.decode(codec, "replace")
        except (LookupError, ValueError, TypeError):
            # A label naming no text encoding ("base64", "rot13"): as if undeclared.
            text = _decode_utf8_or_cp1252(data)
        # Some codecs (utf-16 among them) can yield lone surrogates, which no UTF-8 sink takes.
        return text.encode("utf-8", "replace").decode("utf-8")
    if not _is_utf8(data) and (guess := mime_salvage.guess_charset(data)):
        text = data.decode(guess, "replace")  # not UTF-8, and not Western either
    elif codec in _WESTERN and not _is_utf8(data):
        text = _decode_cp1252(data)
    else:
        text = _decode_utf8_or_cp1252(data)
    return text.removeprefix("\ufeff")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_utf8_or_cp1252(data: bytes) -> str:
    """UTF-8, with any byte that is not part of valid UTF-8 read as Windows-1252."""
    return data.decode("utf-8", _UTF8_FALLBACK)


# --- headers ------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATES = re.compile(r"[\udc80-\udcff]")


def _decode_encoded_word(encoding: str, payload: str) -> bytes:
    try:
        if encoding in "bB":
            # Lax senders drop the padding.
            return base64.b64decode(payload + "=" * (-len(payload) % 4))
        return binascii.a2b_qp(payload.encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return payload.encode("ascii", "replace")


def decode_header_value(raw: str) -> str:
    """Unfold a raw header value and decode its 8-bit bytes and RFC 2047 encoded words; the
    result is one line without control characters."""
    if _SURROGATES.search(raw):
        # The stdlib parser carries raw 8-bit header bytes as surrogate escapes.
        raw = decode_text(raw.encode("ascii", "surrogateescape"), None)
    value = _FOLD.sub("", raw)
    pieces: list[str] = []
    pending = bytearray()  # bytes of adjacent encoded words in one charset, decoded together
    pending_charset = ""
    after_word = False
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[position : match.start()]
        charset = match.group(1).split("*", 1)[0].lower()  # drop an RFC 2231 language suffix
        # RFC 2047 6.2: whitespace between two encoded words is not part of the text; a
        # character may be split across adjacent words, so their bytes are joined first.
        adjacent = after_word and not gap.strip()
        if not (adjacent and charset == pending_charset):
            pieces.append(decode_text(bytes(pending), pending_charset))
            pending = bytearray()
            if not adjacent:
                pieces.append(gap)
        pending += _decode_encoded_word(match.group(2), match.group(3))
        pending_charset = charset
        after_word = True
        position = match.end()
    pieces.append(decode_text(bytes(pending), pending_charset))
    pieces.append(value[position:])
    return strip_controls_line("".join(pieces))


def _decode_8bit(raw: str) -> str:
    """A raw header value with its 8-bit bytes decoded, and nothing else (no encoded words)."""
    if _SURROGATES.search(raw):
        raw = decode_text(raw.encode("ascii", "surrogateescape"), None)
    return _FOLD.sub("", raw)


def _message_ids(value: str) -> tuple[str, ...]:
    return tuple(re.findall(r"<[^<>\s]+>", value))


def _read_headers(raw: bytes, message: Message | None) -> tuple[dict[str, tuple[str, ...]], str]:
    """Decoded headers by lower-case name, and the raw From (parsed before decoding); from
    the parsed message, or from the header block alone when the body could not be parsed."""
    try:
        # `is None`, not truthiness: a Message without header fields is falsy, and its
        # header block would be parsed a second time for nothing.
        head = (
            message if message is not None else BytesHeaderParser(policy=compat32).parsebytes(raw)
        )
        items = head.raw_items()
    except Exception:  # a message we cannot read must still reach a terminal state
        return {}, ""
    headers: dict[str, tuple[str, ...]] = {}
    raw_from = ""
    for name, value in items:
        if not isinstance(value, str):
            continue
        key = str(name).strip().lower()
        if key == "from" and key not in headers:
            raw_from = _FOLD.sub("", value)
        headers[key] = (*headers.get(key, ()), decode_header_value(value))
    return headers, raw_from


# --- bodies -------------------------------------------------------------------------------


_DASHED_RULE = re.compile(r"^-- $|^-{2,}[^-]*-{2,} $")


def unflow(text: str, *, delsp: bool = False) -> str:
    """Join RFC 3676 format=flowed soft-broken lines back into paragraphs, keeping quote marks."""
    out: list[str] = []
    paragraph: list[str] = []
    depth_of_paragraph = 0

    def finish(*, dangling: bool = False) -> None:
        joined = "".join(paragraph)
        if dangling:  # a soft break with nothing after it at this depth: no trailing space
            joined = joined.removesuffix(" ")
        prefix = ">" * depth_of_paragraph
        out.append(f"{prefix} {joined}" if prefix and joined else prefix + joined)
        paragraph.clear()

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing, or the space after the quote marks
        if paragraph and depth != depth_of_paragraph:
            finish(dangling=True)  # a change of quote depth ends a flowed paragraph (RFC 3676 4.5)
        depth_of_paragraph = depth
        # "-- " is the signature separator; Outlook Express also ends its
        # "----- Original Message ----- " rule with a space, which must not glue it to "From:".
        soft_break = content.endswith(" ") and not _DASHED_RULE.match(content)
        if soft_break:
            paragraph.append(content[:-1] if delsp else content)
        else:
            paragraph.append(content)
            finish()
    if paragraph:
        finish(dangling=True)
    return "\n".join(out)


_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([A-Za-z0-9_.:-]{1,40})", re.I)
_META_SNIFF_BYTES = 4096


def _decode_body_part(part: Message) -> str:
    try:
        payload = mime_salvage.decoded_payload(part)
        charset = part.get_param("charset")
        params = {str(k).lower(): str(v).strip().lower() for k, v in part.get_params() or []}
    except Exception:  # broken parameters or encoding: no body from this part
        return ""
    if not isinstance(payload, bytes):
        return ""
    if not isinstance(charset, str):
        charset = None
        if part.get_content_type() == "text/html":
            # Some senders name the charset only in the document's own <meta> tag.
            declared = _META_CHARSET.search(payload[:_META_SNIFF_BYTES])
            charset = declared.group(1).decode("ascii") if declared else None
    # Line ends made newlines, and control characters dropped: nothing stored from mail, and
    # nothing mailed on, carries them (they break the Atom feed and terminals).
    text = strip_controls(decode_text(payload, charset))
    if part.get_content_type() == "text/plain" and params.get("format") == "flowed":
        text = unflow(text, delsp=params.get("delsp") == "yes")
    return text


class _BodyParser(mailparser.MailParser):
    """mail-parser's part selection and attachment rules, with our charset and flowed decoding."""

    def _decode_body_payload(self, part: Message, charset: str, part_index: int) -> str:
        # mail-parser (>= 4.8) decodes each body part here; it falls back to UTF-8 with
        # replacement characters and does not unflow, so the decoding is ours.
        return _decode_body_part(part)

    def _make_mail(self, complete: bool = True) -> dict[str, object]:
        # mail-parser ends each parse building two dicts of every header and computed part
        # (its `mail` and `mail_partial`) from what it already holds; we read neither.
        return {}


def _whole(raw: bytes) -> tuple[Message | None, str]:
    """The message parsed once, headers and MIME tree, for both headers and bodies; or None
    and the name of what went wrong (deep nesting, broken MIME)."""
    try:
        return email.message_from_bytes(raw, policy=compat32), ""
    except Exception as error:
        return None, type(error).__name__


def _mime_view(message: Message) -> Message:
    """The message with its MIME headers only, sharing its parts and payload.

    mail-parser parses every address, Date and Received header of what it is given, which
    we do not use and which was a third of a parse. Message offers no public way to drop
    headers in linear time (`del` rescans them per name), so the copy's list is replaced.
    """
    view = copy.copy(message)
    view._headers = [  # type: ignore[attr-defined]
        (name, value)
        for name, value in message.raw_items()
        if name.lower().startswith("content-") or name.lower() == "mime-version"
    ]
    return view


def _bodies(
    message: Message | None, unreadable: str
) -> tuple[str | None, str | None, tuple[str, ...]]:
    if message is None:
        return None, None, (f"body unreadable: {unreadable}",)
    try:
        mail = _BodyParser(_mime_view(message))
        plain = [part for part in mail.text_plain if part.strip()]
        html = [part for part in mail.text_html if part.strip()]
        defects = tuple(sorted(str(name) for name in mail.defects_categories))
    except Exception as error:  # deep nesting, broken MIME: no body, no crash
        return None, None, (f"body unreadable: {type(error).__name__}",)
    try:
        if not plain and not html and message.is_multipart() is False:
            plain, html = _salvaged(message)  # a multipart declaration the body does not match
        elif len(plain) == 1 and not html and mime_salvage.looks_like_raw_mime(plain[0]):
            plain, html = _salvaged(message, plain[0])  # raw MIME under a text/plain header
    except Exception as error:  # salvage is a second chance; its failure must not lose mail
        defects = (*defects, f"salvage failed: {type(error).__name__}")
    return ("\n".join(plain) or None), ("\n".join(html) or None), defects


def _salvaged(message: Message, body: str | None = None) -> tuple[list[str], list[str]]:
    """Text and HTML bodies read from a body whose MIME structure was lost or mismatched."""
    if body is None:
        raw = message.get_payload()
        if not isinstance(raw, str) or message.get_content_maintype() != "multipart":
            return [], []
        body = raw
        charset = message.get_param("charset")
        parts = mime_salvage.embedded_parts(body) or [
            mime_salvage.plain_part(body, charset if isinstance(charset, str) else None)
        ]
    else:
        parts = mime_salvage.embedded_parts(body)
        if not parts:
            return [body], []
    plain = [
        text
        for p in parts
        if p.get_content_type() == "text/plain" and (text := _decode_body_part(p)).strip()
    ]
    html = [
        text
        for p in parts
        if p.get_content_type() == "text/html" and (text := _decode_body_part(p)).strip()
    ]
    return plain, html


def _top_level(value: str) -> str:
    """The characters of an address header outside quoted strings, comments and angle
    brackets: where the separators of mailboxes and groups stand."""
    out: list[str] = []
    quoted = escaped = False
    comment = angle = 0
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or comment):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == "(":
            comment += 1
        elif comment:
            comment -= ch == ")"
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(angle - 1, 0)
        elif not angle:
            out.append(ch)
    return "".join(out)


def _sender(raw_from: str, from_headers: int) -> tuple[str, str, str]:
    """The From header's display name (decoded) and address (not decoded: RFC 2047 has no
    place inside an addr-spec), and why it names no single plain mailbox ("" when it does)."""
    if from_headers == 0:
        return "", "", "no From header"
    if from_headers > 1:
        return "", "", f"{from_headers} From headers; a message has exactly one"
    value = _decode_8bit(raw_from)
    outside = _top_level(value)
    if ":" in outside or ";" in outside:
        return "", "", "the From header holds a group, not one mailbox"
    if "," in outside:
        return "", "", "the From header holds more than one mailbox"
    try:
        name, address = email.utils.parseaddr(value)
    except Exception:
        return "", "", "the From header cannot be read as a mailbox"
    name = decode_header_value(name)
    address = address.strip()
    if "=?" in address:
        return name, "", "an RFC 2047 encoded word inside the From address"
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or any(not ch.isprintable() or ch.isspace() for ch in address):
        return name, "", "the From header holds no usable address"
    return name, address.lower(), ""


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one message; never raises on malformed input (missing parts become empty)."""
    message, unreadable = _whole(raw)
    headers, raw_from = _read_headers(raw, message)

    def first(name: str) -> str:
        values = headers.get(name, ())
        return values[0] if values else ""

    name, address, from_problem = _sender(raw_from, len(headers.get("from", ())))
    text, html, defects = _bodies(message, unreadable)
    return ParsedMessage(
        message_id=first("message-id").strip() or None,
        from_address=address,
        from_name=name,
        subject=first("subject"),
        in_reply_to=_message_ids(first("in-reply-to")),
        references=_message_ids(first("references")),
        text=text,
        html=html,
        headers=headers,
        defects=defects,
        from_problem=from_problem,
    )
