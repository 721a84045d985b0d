"""Real-client reply fixtures: each .eml must yield exactly the comment in its .expected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.extraction.extract import extract_reply
from service.inbound.parse import ParsedMessage, parse_message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "emails"
EMAILS = sorted(FIXTURES.glob("*.eml"))

# Text that only ever appears in the quoted notification, its header block or a client
# footer: none of it may reach a comment.
QUOTE_ONLY = (
    "Reply above this line",
    "commented on",
    "view it on the web",
    "Unsubscribe",
    "has left a new comment",
    "Posted by",
    "wrote:",
    "a écrit",
    "schrieb",
    "escribió",
    "Original Message",
    "From:",
    "Sent:",
    "Reply to this email",
    "You get this because you follow",
    "reply+",
)
# Localized markers of our own notifications, which also show that a message quotes one.
MARKER_PHRASES = ("Antworten Sie oberhalb dieser Zeile", "Répondez au-dessus de cette ligne")
# A footer line a phone or an app adds (a sentence that starts the same way is the reply).
FOOTER_LINE = re.compile(r"^(?:Sent (?:from|with) [\w ]{1,40}|Get Outlook for \w+)\.?$", re.M)

# Fixtures for each kind of mail issue 22 names: the kind, and fixtures that show it.
KINDS = {
    "bottom-posted reply": [
        "thunderbird_bottom_posted", "mutt_bottom_posted", "gmail_bottom_posted_german",
    ],
    "inline answers": ["gmail_inline_answers", "apple_mail_inline_answers", "mutt_inline_answers"],
    "attributions, separators and header blocks in other languages": [
        "gmail_finnish", "gmail_polish", "gmail_czech", "gmail_turkish", "gmail_japanese",
        "gmail_chinese", "gmail_korean", "gmail_russian", "gmail_portuguese", "gmail_catalan",
        "gmail_arabic", "gmail_hebrew", "outlook_german_original_message",
        "outlook_french_html_only", "samsung_spanish_original_message", "thunderbird_polish",
        "thunderbird_hungarian", "yandex_russian", "zoho_dash_framed",
        "equals_framed_original_message", "horde_message_from", "gmx_html_only",
    ],
    "client HTML quote and signature blocks": [
        "outlook_web_signature_block", "outlook_mac_reference_container",
        "protonmail_signature_block", "thunderbird_moz_signature", "gmail_signature_html_only",
        "ios_mail_custom_signature", "outlook_android_mobile_signature", "yahoo_android_signature",
        "samsung_html_composer_signature", "zoho_dash_framed", "gmx_html_only", "yandex_russian",
    ],
    "other systems' reply-above markers": ["helpdesk_marker_relay", "project_tool_marker_german"],
    "mailing-list footers": [
        "mailman_footer_bottom_posted", "mailman3_footer", "google_groups_footer",
    ],
    "a 'Sent from' sentence that is the reply": [
        "iphone_sent_from_sentence", "one_line_mentions_device",
    ],
    "broken MIME": [
        "broken_boundary_mismatch", "broken_multipart_without_boundary",
        "broken_utf8_labelled_windows_1251", "broken_windows_1251_labelled_utf8",
        "broken_base64_label_on_plain_text", "broken_raw_mime_under_text_plain",
        "broken_html_label_on_plain_text", "outlook_express_mislabelled_cp1252",
    ],
    "quoted lines that lost their '>'": [
        "rewrapped_quote_bottom_posted", "rewrapped_quote_inline_answers",
    ],
}  # fmt: skip


def parsed(path: Path) -> ParsedMessage:
    """The fixture parsed as the pipeline parses it."""
    return parse_message(path.read_bytes())


def expected(path: Path) -> str:
    """The comment text the fixture must yield."""
    return path.with_suffix(".expected").read_text(encoding="utf-8").strip()


def quoted_lines(message: ParsedMessage) -> list[str]:
    """The substantial ">"-quoted lines of the text part, without their quote marks."""
    lines = (message.text or "").split("\n")
    return [
        stripped
        for line in lines
        if line.startswith(">") and len(stripped := line.lstrip("> \ufeff").strip()) >= 12
    ]


def words(text: str) -> str:
    """The words of a text, one space apart (punctuation and layout dropped)."""
    return " ".join(re.findall(r"\w+", text))


def test_there_are_enough_fixtures() -> None:
    """The fixture set covers the clients it claims to (about twenty messages)."""
    assert len(EMAILS) >= 18
    for path in EMAILS:
        assert path.with_suffix(".expected").is_file(), path.name


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_fixtures(kind: str) -> None:
    """Each kind of mail issue 22 names has whole-message fixtures of its own."""
    names = {path.stem for path in EMAILS}
    assert len(KINDS[kind]) >= 2
    assert set(KINDS[kind]) <= names, set(KINDS[kind]) - names


def is_inline(path: Path) -> bool:
    """Whether the fixture answers between quoted lines (its comment keeps "> " lines)."""
    return "inline_answers" in path.stem


@pytest.mark.parametrize("path", EMAILS, ids=lambda path: path.stem)
class TestFixture:
    def test_extracts_expected_reply(self, path: Path) -> None:
        """The extracted comment is exactly what the person typed."""
        message = parsed(path)
        assert extract_reply(message.text, message.html).reply.strip() == expected(path)

    def test_extraction_leaves_no_residue_and_keeps_what_it_cut(self, path: Path) -> None:
        """What extraction keeps of the message is non-empty and carries none of the quoted
        thread, its header block or a client footer; the quoted thread is in what it cut."""
        message = parsed(path)
        result = extract_reply(message.text, message.html)
        comment = result.reply.strip()
        assert comment
        body = (message.text or "") + (message.html or "")
        # The check below is only meaningful if the message really quotes something.
        assert any(phrase in body for phrase in (*QUOTE_ONLY[:6], *MARKER_PHRASES))
        for phrase in QUOTE_ONLY:
            assert phrase not in comment, phrase
        assert not FOOTER_LINE.search(comment)
        if is_inline(path):
            # Answers keep the quoted lines they answer, and nothing else of the quote.
            quotes = re.findall(r"^> ?(.*)$", comment, re.MULTILINE)
            answers = [line for line in comment.split("\n") if line and not line.startswith(">")]
            assert len(quotes) >= 2 and len(answers) >= 2
            return
        quoted = quoted_lines(message)
        for line in quoted:
            assert line not in comment, line
        assert not re.search(r"^>", comment, re.MULTILINE)
        # Word for word: the cut part may come from the HTML part, without the text's quotes.
        cut = words(result.elided)
        assert cut
        # Where the cut part comes from the HTML, a line of the text's quote may be worded a
        # little differently there (a link's text and address): most lines must be found.
        found = [line for line in quoted if words(line) in cut]
        assert len(found) >= len(quoted) * 3 // 4, [line for line in quoted if line not in found]

    def test_is_a_well_formed_reply(self, path: Path) -> None:
        """Each fixture is a reply to a reply address, with sender, id and a body."""
        message = parsed(path)
        assert message.from_address and "@" in message.from_address
        assert message.message_id and message.message_id.startswith("<")
        assert re.match(r"(?i)re:", message.subject)
        assert re.search(r"reply\+[a-z0-9]+@replies\.example\.org", message.header("to"))
        assert message.in_reply_to
        assert message.text is not None or message.html is not None
        assert "\ufffd" not in (message.text or "") + (message.html or "")
