"""Finds the typed text in broken MIME: multipart declarations that do not match the body,
bodies whose transfer encoding or charset label contradicts their bytes (stdlib only)."""

from __future__ import annotations

import codecs
import re
from email import message_from_string
from email.message import Message
from email.policy import compat32

# A boundary line of an embedded part, followed within a few lines by its Content-Type.
_BOUNDARY_LINE = re.compile(r"^--([^\s-][^\s]{0,69}|-{1,60}[^\s-][^\s]{0,60})[ \t]*$", re.M)
_PART_HEADER = re.compile(r"^content-(?:type|transfer-encoding)\s*:", re.I | re.M)
_HEADER_WINDOW = 400  # characters after a boundary line in which a part's headers start
# What a base64 body can hold; anything else means the label lies and the body is plain.
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=\s]")
# Legacy charsets (as Python's codec names) a detector may name that the Windows-1252 repair
# would get wrong: Cyrillic, Greek, Central European, Hebrew, Arabic, Thai and East Asian.
_NON_WESTERN = frozenset(
    codecs.lookup(name).name
    for name in (
        "cp1251", "koi8-r", "koi8-u", "iso8859-5", "mac-cyrillic", "cp866", "cp1253",
        "iso8859-7", "cp1250", "iso8859-2", "cp1255", "iso8859-8", "cp1256", "tis-620",
        "gb2312", "gb18030", "big5", "euc-jp", "shift_jis", "euc-kr", "cp949",
    )
)  # fmt: skip
_DETECT_BYTES = 64_000  # bytes handed to the charset detector
# A well-formed two- to four-byte UTF-8 sequence.
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
# Text in a non-Latin script has most of its letters above 0x7F; Western text has a few.
_MIN_HIGH_BYTES = 4
_NON_LATIN_SHARE = 0.6
_HIGH_WORD = re.compile(rb"[A-Za-z\x80-\xff]*[\x80-\xff][A-Za-z\x80-\xff]*")
# chardet's confidence runs low on short text; the charset family is what is trusted here.
_DETECT_CONFIDENCE = 0.05


def decoded_payload(part: Message) -> bytes | None:
    """The part's payload bytes, decoded unless its transfer-encoding label is contradicted.

    A body labelled base64 that holds ordinary text (a forwarder changed the header, not
    the body) is taken as it stands.
    """
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding == "base64":
        raw = part.get_payload(decode=False)
        if isinstance(raw, str) and _NOT_BASE64.search(raw):
            return raw.encode("ascii", "surrogateescape")
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else None


def embedded_parts(body: str) -> list[Message]:
    """The text parts inside a body that still holds raw MIME (boundaries and part headers),
    as when a multipart declaration was lost or names a boundary the body does not use."""
    body = body.replace("\r\n", "\n")
    starts = [
        m
        for m in _BOUNDARY_LINE.finditer(body)
        if _PART_HEADER.search(body, m.end(), m.end() + _HEADER_WINDOW)
        and not body[m.end() : m.end() + _HEADER_WINDOW].lstrip("\r\n").startswith("--")
    ]
    if not starts:
        return []
    boundary = starts[0].group(1)
    chunks = re.split(rf"^--{re.escape(boundary)}(?:--)?[ \t]*$", body, flags=re.M)
    parts: list[Message] = []
    for chunk in chunks[1:]:
        text = chunk.lstrip("\r\n")
        if not _PART_HEADER.match(text):
            continue
        part = message_from_string(text, policy=compat32)
        if part.is_multipart():
            inner = part.get_payload()
            parts.extend(p for p in inner if isinstance(p, Message) and _is_text(p))
            continue
        if _is_text(part):
            parts.append(part)
        elif part.get_content_maintype() == "multipart":
            parts.extend(embedded_parts(str(part.get_payload())))
    return parts


def plain_part(body: str, charset: str | None) -> Message:
    """A text/plain part holding a body whose multipart declaration came to nothing."""
    part = Message(policy=compat32)
    part["Content-Type"] = f'text/plain; charset="{charset}"' if charset else "text/plain"
    part.set_payload(body)
    return part


def looks_like_raw_mime(text: str) -> bool:
    """Whether a decoded text body starts with a boundary line and part headers."""
    head = text.lstrip()[:_HEADER_WINDOW].replace("\r\n", "\n")
    match = _BOUNDARY_LINE.match(head)
    return match is not None and _PART_HEADER.search(head, match.end()) is not None


def guess_charset(data: bytes) -> str | None:
    """A non-Western legacy charset for bytes that are not UTF-8, when a detector is sure.

    Western text needs no guess: its stray bytes are read as Windows-1252 anyway.
    """
    sample = data[:_DETECT_BYTES]
    if _UTF8_SEQUENCE.search(sample):
        return None  # partly UTF-8: the stray bytes are Windows-1252 far more often
    # Only words holding a byte above 0x7F count: a quoted English thread must not hide a
    # Cyrillic reply, and a French reply has one accent in a word of Latin letters.
    high = latin = 0
    words = _HIGH_WORD.findall(sample)
    for word in words:
        above = sum(1 for byte in word if byte >= 0x80)
        high += above
        latin += len(word) - above
    if high < _MIN_HIGH_BYTES or high < _NON_LATIN_SHARE * (high + latin):
        return None  # a few accented letters among Latin ones: Western text
    try:
        import chardet  # deferred: only broken bodies pay for it
    except ImportError:  # pragma: no cover - chardet comes with talon
        return None
    result = chardet.detect(b" ".join(words))  # the English around it would mislead
    confidence = float(result.get("confidence") or 0.0)
    try:
        name = codecs.lookup(str(result.get("encoding") or "")).name
    except LookupError:
        return None
    return name if name in _NON_WESTERN and confidence >= _DETECT_CONFIDENCE else None


def _is_text(part: Message) -> bool:
    return part.get_content_type() in ("text/plain", "text/html")
