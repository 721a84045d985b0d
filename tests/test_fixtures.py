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
    "Sent from my",
    "Sent with",
    "reply+",
)


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
        assert any(phrase in body for phrase in QUOTE_ONLY[:6])
        for phrase in QUOTE_ONLY:
            assert phrase not in comment, phrase
        quoted = quoted_lines(message)
        for line in quoted:
            assert line not in comment, line
        assert not re.search(r"^>", comment, re.MULTILINE)
        # Word for word: the cut part may come from the HTML part, without the text's quotes.
        cut = words(result.elided)
        assert cut
        for line in quoted:
            assert words(line) in cut, line

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
