"""Form fields as the bytes that were sent, for the mail providers' webhooks.

A provider's raw MIME must reach the store unchanged. Starlette's form parser gives text: a
multipart field decoded as UTF-8 or else Latin-1, a URL-encoded one with undecodable bytes
replaced; a mail in an 8-bit charset cannot be had back from that. So the fields are read
here with python-multipart's own parser (which Starlette uses too), kept as bytes.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

MAX_FIELDS = 200  # providers send a few dozen; more is not a provider


class FormError(ValueError):
    """The body is not a form this ingress can read; the message says what is wrong."""


Fields = dict[str, list[bytes]]


def form_fields(content_type: str, body: bytes) -> Fields:
    """The fields of a multipart/form-data or application/x-www-form-urlencoded body, each
    name with its values as bytes, in order."""
    media, options = parse_options_header(content_type)
    if media == b"application/x-www-form-urlencoded":
        return _urlencoded(body)
    if media == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise FormError("the multipart/form-data body has no boundary parameter")
        return _multipart(boundary, body)
    raise FormError(
        "expected a form (multipart/form-data or application/x-www-form-urlencoded), "
        f"got {media.decode('latin-1') or 'no Content-Type'}"
    )


def field(fields: Fields, name: str) -> bytes | None:
    """The first value of a field, None when it is missing."""
    values = fields.get(name)
    return values[0] if values else None


def text_field(fields: Fields, name: str) -> str:
    """A field that holds text (addresses, signatures): UTF-8, "" when missing."""
    value = field(fields, name)
    return value.decode("utf-8", "replace").strip() if value is not None else ""


def _add(fields: Fields, name: str, value: bytes) -> None:
    if sum(len(values) for values in fields.values()) >= MAX_FIELDS:
        raise FormError(f"the form has more than {MAX_FIELDS} fields")
    fields.setdefault(name, []).append(value)


def _urlencoded(body: bytes) -> Fields:
    fields: Fields = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        _add(
            fields,
            unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace"),
            unquote_to_bytes(value.replace(b"+", b" ")),
        )
    return fields


class _Parts:
    """Collects each part of a multipart body: its name from Content-Disposition, its bytes."""

    def __init__(self) -> None:
        self.fields: Fields = {}
        self.data = bytearray()
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.disposition = b""

    def begin(self) -> None:
        self.data = bytearray()
        self.disposition = b""

    def data_chunk(self, data: bytes, start: int, end: int) -> None:
        self.data += data[start:end]

    def header_name_chunk(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def header_value_chunk(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        if bytes(self.header_name).lower() == b"content-disposition":
            self.disposition = bytes(self.header_value)
        self.header_name = bytearray()
        self.header_value = bytearray()

    def end(self) -> None:
        name = parse_options_header(self.disposition)[1].get(b"name")
        if name is None:
            raise FormError("a part of the multipart form has no name")
        _add(self.fields, name.decode("utf-8", "replace"), bytes(self.data))


def _multipart(boundary: bytes, body: bytes) -> Fields:
    parts = _Parts()
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": parts.begin,
            "on_part_data": parts.data_chunk,
            "on_part_end": parts.end,
            "on_header_field": parts.header_name_chunk,
            "on_header_value": parts.header_value_chunk,
            "on_header_end": parts.header_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise FormError(f"the multipart form cannot be read: {exc}") from None
    return parts.fields
