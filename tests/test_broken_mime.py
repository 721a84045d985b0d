# ruff: noqa: RUF001
"""Broken MIME that real mail carries still yields the text a person typed, never nothing."""

from __future__ import annotations

import pytest

from service.extraction.extract import extract_reply
from service.extraction.mime_salvage import guess_charset
from service.inbound.parse import parse_message

HEAD = (
    b"From: Ann <ann@example.org>\r\nTo: reply+abc@replies.example.org\r\n"
    b"Subject: Re: x\r\nMessage-ID: <1@example.org>\r\nMIME-Version: 1.0\r\n"
)
TYPED = "Hello there, this is what I typed."
QUOTE = (
    "\r\n\r\nOn Tue, Mar 12, 2024 at 9:41 AM Bob <bob@example.org> wrote:\r\n> old\r\n> older\r\n"
)


def reply(raw: bytes) -> str:
    """The comment the pipeline would publish for a raw message."""
    message = parse_message(raw)
    return extract_reply(message.text, message.html).reply


@pytest.mark.parametrize(
    "body",
    [
        # The declared boundary is not the one the body uses.
        b'Content-Type: multipart/alternative; boundary="AAA"\r\n\r\n--BBB\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + TYPED.encode()
        + QUOTE.encode()
        + b"\r\n--BBB\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div>"
        + TYPED.encode()
        + b"</div>\r\n--BBB--\r\n",
        # Multipart without a boundary parameter.
        b"Content-Type: multipart/mixed\r\n\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\n"
        + TYPED.encode()
        + b"\r\n--XYZ--\r\n",
        # Multipart declared, a plain body sent.
        b'Content-Type: multipart/alternative; boundary="AAA"\r\n\r\n'
        + TYPED.encode()
        + QUOTE.encode(),
        # Raw MIME parts under a text/plain header (a relay dropped the multipart header).
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\n--000000000000abc\r\n"
        b'Content-Type: text/plain; charset="UTF-8"\r\nContent-Transfer-Encoding: '
        b"quoted-printable\r\n\r\n"
        + TYPED.encode()
        + QUOTE.encode()
        + b"\r\n--000000000000abc--\r\n",
        # A base64 label on a body that is plain text.
        b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + TYPED.encode()
        + QUOTE.encode(),
        # An HTML label on a plain-text body.
        b"Content-Type: text/html; charset=us-ascii\r\n\r\n" + TYPED.encode() + QUOTE.encode(),
    ],
)
def test_mismatched_structure_still_yields_the_typed_text(body: bytes) -> None:
    """Whatever the MIME headers claim, the typed text comes out, and only it."""
    assert reply(HEAD + body) == TYPED


@pytest.mark.parametrize(
    ("label", "text", "encoding"),
    [
        ("windows-1251", "Привет, всё хорошо, спасибо.", "utf-8"),
        ("koi8-r", "Ça va très bien, merci.", "utf-8"),
        ("iso-8859-2", "Dziękuję bardzo, wszystko gra.", "utf-8"),
        ("shift_jis", "タイムゾーンの設定があると助かります。", "utf-8"),
        ("utf-8", "Привет, всё хорошо, спасибо.", "cp1251"),
        ("us-ascii", "Γεια σου, τι κάνεις σήμερα;", "cp1253"),
        ("utf-8", "Grüße aus Köln, schön dich zu sehen.", "cp1252"),
    ],
)
def test_charset_label_contradicted_by_the_bytes(label: str, text: str, encoding: str) -> None:
    """A charset label the bytes contradict does not turn the reply into mojibake."""
    raw = (
        HEAD
        + (
            f"Content-Type: text/plain; charset={label}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode()
        + text.encode(encoding)
        + b"\r\n"
    )
    assert reply(raw) == text


def test_western_text_is_not_guessed() -> None:
    """A few accents among Latin letters are left to the Windows-1252 repair."""
    assert guess_charset("Grüße aus Köln, café crème.".encode("cp1252")) is None
    assert guess_charset("Ok \xe9 \xe2\x82\xac".encode("latin-1")) is None  # partly UTF-8
