"""MIME parsing: headers, charsets, transfer encodings, format=flowed, part choice, bad input."""

from __future__ import annotations

import base64
import logging
import time

import mailparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.inbound.parse import (
    ParsedMessage,
    decode_header_value,
    decode_text,
    parse_message,
    unflow,
)


def message(*headers: str, body: bytes | str = b"Hello\n") -> bytes:
    """A raw message from header lines and a body."""
    raw_body = body.encode("utf-8") if isinstance(body, str) else body
    return ("\n".join(headers) + "\n\n").encode("utf-8", "surrogateescape") + raw_body


def plain(charset: str | None, body: bytes, *extra: str) -> ParsedMessage:
    """Parse a one-part text/plain message with the given charset label and raw body."""
    content_type = "Content-Type: text/plain" + (f"; charset={charset}" if charset else "")
    return parse_message(message("From: a@example.org", content_type, *extra, body=body))


FROM_HEADERS = {
    # one plain mailbox: read
    "From: Rita Reader <Rita@Example.org>": ("rita@example.org", "Rita Reader", ""),
    'From: "Reader, Rita" <rita@example.org>': ("rita@example.org", "Reader, Rita", ""),
    "From: rita@example.org (Rita)": ("rita@example.org", "Rita", ""),
    "From: =?utf-8?q?J=C3=B6rg?= <j@example.org>": ("j@example.org", "Jörg", ""),
    # anything else: no address, and the reason
    "From: The Boss <=?utf-8?q?boss=40example.org?=>": ("", "The Boss", "encoded word"),
    "From: <boss@=?utf-8?q?example.org?=>": ("", "", "encoded word"),
    "From: =?utf-8?q?mailer-daemon=40x=29_label?=": ("", "", "encoded word"),
    "From: a@example.org, b@example.org": ("", "", "more than one mailbox"),
    "From: Reader, Rita <rita@example.org>": ("", "", "more than one mailbox"),
    "From: Team: a@example.org, b@example.org;": ("", "", "group"),
    "From: undisclosed-recipients:;": ("", "", "group"),
    "From: a@example.org\nFrom: b@example.org": ("", "", "2 From headers"),
    "From: nobody": ("", "", "no usable address"),
    "From: <>": ("", "", "no usable address"),
    "Subject: no From at all": ("", "", "no From header"),
}


class TestFromHeader:
    @pytest.mark.parametrize("header", sorted(FROM_HEADERS))
    def test_one_from_one_mailbox_no_encoded_address(self, header: str) -> None:
        """Only one From header with one plain mailbox gives an address: encoded words are
        decoded in the display name, never inside the address; anything else says why."""
        address, name, problem = FROM_HEADERS[header]
        parsed = parse_message(message(*header.split("\n")))
        assert parsed.from_address == address
        assert parsed.from_name == name
        assert problem in parsed.from_problem
        assert bool(parsed.from_problem) == bool(problem)


class TestHeaders:
    def test_rfc2047_name_and_subject(self) -> None:
        """Encoded words in Q and B form decode in the From name and the Subject."""
        parsed = parse_message(
            message(
                "From: =?UTF-8?Q?Fran=C3=A7oise_Dubois?= <Francoise@Example.ORG>",
                "Subject: =?ISO-8859-1?B?UmU6IENhZuk=?=",
            )
        )
        assert parsed.from_name == "Françoise Dubois"
        assert parsed.from_address == "francoise@example.org"
        assert parsed.subject == "Re: Café"

    def test_whitespace_between_encoded_words_is_dropped(self) -> None:
        """RFC 2047 6.2: folding whitespace between two encoded words is not text."""
        value = (
            "=?ISO-8859-1?Q?Re=3A_Nuevo_comentario_en_=AB=BFPor_qu=E9_Ma?=\n"
            " =?ISO-8859-1?Q?ke=3F=BB?="
        )
        assert decode_header_value(value) == "Re: Nuevo comentario en «¿Por qué Make?»"

    def test_text_between_encoded_words_is_kept(self) -> None:
        """Plain words around and between encoded words keep their spaces."""
        assert decode_header_value("Re: =?utf-8?q?caf=C3=A9?= and =?utf-8?q?th=C3=A9?=") == (
            "Re: café and thé"
        )

    def test_character_split_across_encoded_words(self) -> None:
        """A UTF-8 character split over two adjacent encoded words still decodes."""
        encoded = base64.b64encode("é".encode()).decode()
        first = base64.b64encode(b"\xc3").decode()
        second = base64.b64encode(b"\xa9").decode()
        assert decode_header_value(f"=?utf-8?b?{first}?= =?utf-8?b?{second}?=") == "é"
        assert decode_header_value(f"=?utf-8?b?{encoded}?=") == "é"

    def test_eight_bit_utf8_header(self) -> None:
        """Raw UTF-8 bytes in a header (RFC 6532 style) decode as UTF-8."""
        raw = (
            b"From: J\xc3\xbcrgen Wei\xc3\x9f <j@example.org>\nSubject: Gr\xc3\xbc\xc3\x9fe\n\nHi\n"
        )
        parsed = parse_message(raw)
        assert parsed.from_name == "Jürgen Weiß"
        assert parsed.subject == "Grüße"

    def test_eight_bit_latin1_header(self) -> None:
        """Raw Latin-1 bytes in a header (old clients) decode as Windows-1252."""
        raw = b'From: "Zo\xeb Keller" <zoe@example.org>\nSubject: \x93Make\x94\n\nHi\n'
        parsed = parse_message(raw)
        assert parsed.from_name == "Zoë Keller"
        assert parsed.subject == "\u201cMake\u201d"

    def test_thread_headers(self) -> None:
        """Message-ID, In-Reply-To and References come back as ids with angle brackets."""
        parsed = parse_message(
            message(
                "From: a@example.org",
                "Message-ID: <m1@example.org>",
                "In-Reply-To: <n2@replies.example.org> (Example Blog's message)",
                "References: <n1@replies.example.org>\n <n2@replies.example.org>",
            )
        )
        assert parsed.message_id == "<m1@example.org>"
        assert parsed.in_reply_to == ("<n2@replies.example.org>",)
        assert parsed.references == ("<n1@replies.example.org>", "<n2@replies.example.org>")

    def test_missing_headers(self) -> None:
        """A message without From, Subject or Message-ID gives empty values, not errors."""
        parsed = parse_message(b"\nJust a body\n")
        assert parsed.from_address == ""
        assert parsed.from_name == ""
        assert parsed.subject == ""
        assert parsed.message_id is None
        assert parsed.header("x-nothing") == ""

    def test_headers_by_lower_case_name(self) -> None:
        """Every header is kept, decoded, under its lower-case name, repeats in order."""
        parsed = parse_message(message("From: a@example.org", "Received: one", "Received: two"))
        assert parsed.headers["received"] == ("one", "two")
        assert parsed.header("RECEIVED") == "one"


class TestCharsets:
    def test_iso_8859_1(self) -> None:
        """An ISO-8859-1 body decodes to the right accented letters."""
        assert plain("ISO-8859-1", "Café crème, José\n".encode("latin-1")).text == (
            "Café crème, José\n"
        )

    def test_windows_1252_quoted_printable(self) -> None:
        """Windows-1252 smart quotes and dashes survive quoted-printable."""
        parsed = plain(
            '"windows-1252"',
            b"That=92s it =96 =93quoted=94=\n soft\n",
            "Content-Transfer-Encoding: quoted-printable",
        )
        assert parsed.text == "That\u2019s it \u2013 \u201cquoted\u201d soft\n"

    def test_latin1_label_on_windows_1252_bytes(self) -> None:
        """Bytes 0x80-0x9F under an ISO-8859-1 label are Windows-1252, not C1 controls."""
        assert plain("iso-8859-1", b"\x93Hi\x94 \x80 5\n").text == "\u201cHi\u201d € 5\n"

    def test_utf8_label_on_windows_1252_bytes(self) -> None:
        """A body labelled UTF-8 that is Windows-1252 is repaired, keeping valid UTF-8."""
        assert plain("utf-8", b"caf\xe9 \xe2\x82\xac \x96 ok\n").text == "café € \u2013 ok\n"

    def test_latin1_label_on_utf8_bytes(self) -> None:
        """A body labelled ISO-8859-1 that is valid UTF-8 is read as UTF-8 (no mojibake)."""
        assert plain("iso-8859-1", "Grüße\n".encode()).text == "Grüße\n"

    def test_missing_charset(self) -> None:
        """Without a charset, UTF-8 is tried first, then Windows-1252."""
        assert plain(None, "naïve\n".encode()).text == "naïve\n"
        assert plain(None, b"na\xefve\n").text == "naïve\n"

    def test_unknown_charset_label(self) -> None:
        """An unknown label (unknown-8bit, typos) is treated as undeclared."""
        assert plain("unknown-8bit", "Jürgen\n".encode()).text == "Jürgen\n"
        assert plain("x-no-such-charset", b"J\xfcrgen\n").text == "Jürgen\n"
        assert plain("base64", b"not base64 text\n").text == "not base64 text\n"

    def test_html_meta_charset_when_mime_has_none(self) -> None:
        """An HTML part without a MIME charset is decoded by its own <meta charset>."""
        html = '<meta charset="koi8-r"><p>Привет</p>'.encode("koi8-r")
        parsed = parse_message(message("From: a@example.org", "Content-Type: text/html", body=html))
        assert parsed.html == '<meta charset="koi8-r"><p>Привет</p>'

    def test_other_declared_charsets(self) -> None:
        """Non-Western charsets are decoded by their label."""
        assert plain("koi8-r", "Привет\n".encode("koi8-r")).text == "Привет\n"
        assert plain("gb2312", "你好\n".encode("gb18030")).text == "你好\n"

    def test_base64_body(self) -> None:
        """A base64 body is decoded, then its charset applied."""
        body = base64.encodebytes("Le résumé arrive à 3 h.\n".encode())
        parsed = plain("utf-8", body, "Content-Transfer-Encoding: base64")
        assert parsed.text == "Le résumé arrive à 3 h.\n"

    def test_decode_text_drops_bom(self) -> None:
        """A UTF-8 byte order mark at the start is not text."""
        assert decode_text(b"\xef\xbb\xbfHi", "utf-8") == "Hi"

    def test_nul_bytes_removed(self) -> None:
        """NUL bytes in a body never reach the text."""
        assert plain("utf-8", b"Hi\x00 there\n").text == "Hi there\n"

    def test_crlf_normalised(self) -> None:
        """Line ends are plain newlines whatever the wire used."""
        assert plain("utf-8", b"one\r\ntwo\r\n").text == "one\ntwo\n"


class TestFlowed:
    def test_soft_breaks_join(self) -> None:
        """Lines ending in a space join the next line (RFC 3676)."""
        assert unflow("one \ntwo \nthree\nfour") == "one two three\nfour"

    def test_delsp_removes_the_break_space(self) -> None:
        """With DelSp=yes the space before the break is deleted, joining split words."""
        assert unflow("http://exa \nmple.org\nthe  \nend", delsp=True) == (
            "http://example.org\nthe end"
        )

    def test_space_stuffing_removed(self) -> None:
        """A leading space added to protect "From " or ">" is removed."""
        assert unflow(" From the docs\n >not a quote") == "From the docs\n>not a quote"

    def test_quoted_paragraphs(self) -> None:
        """Quoted flowed lines join within one quote depth and keep their marks."""
        assert unflow("> one \n> two\n>> deep \n>> er\n> \nplain") == (
            "> one two\n>> deep er\n>\nplain"
        )

    def test_quote_depth_change_ends_paragraph(self) -> None:
        """A flowed line followed by a different quote depth is not joined to it."""
        assert unflow("> flowed \nunquoted") == "> flowed\nunquoted"

    def test_signature_separator_is_not_flowed(self) -> None:
        """The "-- " line stays a line of its own."""
        assert unflow("text\n-- \nsig") == "text\n-- \nsig"

    def test_outlook_express_rule_is_not_flowed(self) -> None:
        """Outlook Express's "----- Original Message ----- " line is not glued to "From:"."""
        assert unflow("----- Original Message ----- \nFrom: <a@example.org>") == (
            "----- Original Message ----- \nFrom: <a@example.org>"
        )

    def test_parse_unflows_only_flowed_parts(self) -> None:
        """format=flowed text is unflowed; fixed text keeps its line breaks and spaces."""
        flowed = plain("utf-8; format=flowed; delsp=yes", b"a  \nb\n")
        fixed = plain("utf-8", b"a \nb\n")
        assert flowed.text == "a b\n"
        assert fixed.text == "a \nb\n"


ALTERNATIVE = b"""From: a@example.org
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8

Plain reply
--inner
Content-Type: text/html; charset=utf-8

<div>HTML reply</div>
--inner--
--outer
Content-Type: text/plain; charset=utf-8
Content-Disposition: attachment; filename="notes.txt"

Attached notes, not the reply
--outer
Content-Type: image/png; name="x.png"
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--outer--
"""


class TestStructure:
    def test_alternative_parts_and_attachments(self) -> None:
        """multipart/alternative gives text and html; attachments are not the body."""
        parsed = parse_message(ALTERNATIVE)
        assert parsed.text == "Plain reply"
        assert parsed.html == "<div>HTML reply</div>"

    def test_html_only(self) -> None:
        """An HTML-only message has html and no text."""
        parsed = parse_message(
            message("From: a@example.org", "Content-Type: text/html", body="<p>Hi</p>")
        )
        assert parsed.text is None
        assert parsed.html == "<p>Hi</p>"

    def test_text_only(self) -> None:
        """A plain message has text and no html."""
        parsed = parse_message(message("From: a@example.org", body="Hi\n"))
        assert parsed.text == "Hi\n"
        assert parsed.html is None

    def test_mailparser_logs_nothing(self, caplog: pytest.LogCaptureFixture) -> None:
        """mail-parser's logger stays quiet on odd but harmless input."""
        raw = message(
            "From: a@example.org",
            'Content-Type: multipart/mixed; boundary="b"',
            body="--b\nContent-Type: text/calendar\n\nBEGIN:VCALENDAR\n--b--\n",
        )
        with caplog.at_level(logging.DEBUG):
            parse_message(raw)
        assert not [record for record in caplog.records if record.name.startswith("mailparser")]

    def test_mailparser_hook_exists(self) -> None:
        """The mail-parser hook our decoding overrides exists (mail-parser >= 4.8)."""
        assert callable(getattr(mailparser.MailParser, "_decode_body_payload", None))


class TestMalformed:
    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"\x00\x00\x00",
            b"not a message at all",
            b"From: a@example.org\nContent-Type: multipart/alternative\n\n--x\nhello\n",
            b"From: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
            b"Content-Type: text/plain\n\ntruncated in the midd",
            b"From: a@example.org\nContent-Type: text/plain; charset=\n\nhi\n",
            b"From: a@example.org\nContent-Type: text/plain; charset*=''%ff%fe\n\nhi\n",
            b"From: a@example.org\nContent-Transfer-Encoding: base64\n\n!!!not base64@@@\n",
            b"From: a@example.org\nContent-Transfer-Encoding: quoted-printable\n\n=ZZ=\n=\n",
            b"From: =?utf-8?b?!!!?= <\x00>\nSubject: =?bogus?q?x?=\n\nhi\n",
            b"From \x80\x81\nContent-Type: text/html\n\n<div\x00><<<>>>",
        ],
    )
    def test_never_raises(self, raw: bytes) -> None:
        """Broken MIME yields a ParsedMessage, never an exception."""
        assert isinstance(parse_message(raw), ParsedMessage)

    def test_missing_close_boundary(self) -> None:
        """A multipart without its closing boundary still gives its text."""
        raw = message(
            "From: a@example.org",
            "Content-Type: multipart/alternative; boundary=b",
            body="--b\nContent-Type: text/plain\n\nStill here\n",
        )
        assert (parse_message(raw).text or "").strip() == "Still here"

    def test_deep_nesting(self) -> None:
        """Thousands of nested multiparts give no body and a defect, not a RecursionError."""
        depth = 3000
        body = "".join(
            f"--b{i}\nContent-Type: multipart/mixed; boundary=b{i + 1}\n\n" for i in range(depth)
        )
        raw = message(
            "From: a@example.org",
            "Subject: deep",
            "Content-Type: multipart/mixed; boundary=b0",
            body=body + f"--b{depth}\nContent-Type: text/plain\n\nhi\n",
        )
        parsed = parse_message(raw)
        assert parsed.subject == "deep"
        assert parsed.text is None
        assert parsed.defects

    def test_huge_line(self) -> None:
        """A 20 MB line without a newline parses, in bounded time (CPU time: a busy machine
        does not stretch it)."""
        started = time.process_time()
        parsed = parse_message(message("From: a@example.org", body=b"x" * 20_000_000))
        assert parsed.text is not None and len(parsed.text) == 20_000_000
        assert time.process_time() - started < 10

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=2000))
    def test_arbitrary_bytes(self, raw: bytes) -> None:
        """Any bytes at all parse without an exception."""
        assert isinstance(parse_message(raw), ParsedMessage)

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=500))
    def test_arbitrary_body_in_a_multipart(self, body: str) -> None:
        """Any body text inside a multipart parses without an exception."""
        raw = message(
            "From: a@example.org",
            "Content-Type: multipart/alternative; boundary=b",
            body=f"--b\nContent-Type: text/plain; format=flowed\n\n{body}\n--b--\n",
        )
        assert isinstance(parse_message(raw), ParsedMessage)
