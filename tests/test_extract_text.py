"""Plain-text reply extraction: quotes, attributions, forwards and signatures are cut."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from service.extraction.extract import Extraction, extract_body, extract_reply
from service.extraction.marker import MARKER_TEXT, MARKER_TEXTS

ROOT = Path(__file__).resolve().parent.parent


def reply_of(body: str, *, quotes_only: bool = False) -> str:
    """The reply extracted from a dedented plain-text body."""
    return extract_body(textwrap.dedent(body).lstrip("\n"), quotes_only=quotes_only).reply


class TestMarker:
    """Our own "reply above this line" marker is the first and most precise cut."""

    def test_cut_at_marker(self) -> None:
        """Everything from the marker line down is cut."""
        body = f"Lovely piece.\n\n{MARKER_TEXT}\nPat commented on your post:\nIt was fine."
        result = extract_body(body)
        assert result.reply == "Lovely piece."
        assert MARKER_TEXT in result.elided

    @pytest.mark.parametrize("marker", MARKER_TEXTS)
    def test_quoted_marker_with_attribution(self, marker: str) -> None:
        """A quoted, localized marker cuts, and the attribution above it goes too."""
        body = (
            "Ich stimme zu.\n\nAm 03.03.2026 um 10:00 schrieb Blog <blog@example.org>:\n"
            f">   {marker}  \n> Pat hat kommentiert\n"
        )
        assert extract_body(body).reply == "Ich stimme zu."


class TestAttributions:
    """Attribution lines in many languages and shapes start the quoted thread."""

    @pytest.mark.parametrize(
        "attribution",
        [
            "On Tue, Mar 3, 2026 at 10:00 AM Bob Smith <bob@example.org> wrote:",
            "On Tue, Sep 8, 2009 at 11:48 AM, wrote:",
            "Le mar. 3 mars 2026 à 10:00, Bob <bob@example.org> a écrit :",
            "Am Di., 3. März 2026 um 10:00 Uhr schrieb Bob <bob@example.org>:",
            "El mar., 3 mar. 2026 a las 10:00, Bob (<bob@example.org>) escribió:",
            "Em ter., 3 de mar. de 2026 às 10:00, Bob <bob@example.org> escreveu:",
            "Den tis 3 mars 2026 kl 10:00 skrev Bob <bob@example.org>:",
            "Op di 3 mrt 2026 om 10:00 schreef Bob <bob@example.org>:",
            "Il giorno mar 3 mar 2026 alle ore 10:00 Bob <bob@example.org> ha scritto:",
            "W dniu 3.03.2026 o 10:00 Bob <bob@example.org> napisał:",
            "Bob Smith <bob@example.org> wrote:",
            "At 3/3/2026 10:00 AM, you wrote:",
            "2026-03-03 10:00 GMT+01:00 Bob Smith <bob@example.org>:",
            "вт, 3 мар. 2026 г. в 10:00, Bob Smith <bob@example.org>:",  # noqa: RUF001
            "Bob <bob@example.org> 于2026年3月3日周二 10:00写道\uff1a",
            "Quoting Bob <bob@example.org>:",
        ],
    )
    def test_top_posted_reply(self, attribution: str) -> None:
        """Text above an attribution is the reply; the attribution and quote are cut."""
        body = f"Sounds right to me.\n\n{attribution}\n\n> Earlier message\n> second line\n"
        assert extract_body(body).reply == "Sounds right to me."

    def test_attribution_wrapped_over_lines(self) -> None:
        """An attribution wrapped by the client over two lines is recognised whole."""
        body = """
            Works for me.

            On Tue, Mar 3, 2026 at 10:00 AM Bob Smith <
            bob@example.org> wrote:

            > old
        """
        assert reply_of(body) == "Works for me."

    def test_attribution_then_unquoted_thread(self) -> None:
        """A client that does not prefix the quote with ">" still has it cut."""
        body = """
            Agreed.

            On 3 Mar 2026 10:00, "Bob" <bob@example.org> wrote:

            The old message, not quoted with markers.
        """
        assert reply_of(body) == "Agreed."

    def test_message_starting_with_attribution_keeps_text(self) -> None:
        """When the attribution is the first line, the unquoted text below is kept."""
        body = """
            On Tue, Sep 8, 2009 at 11:48 AM, wrote:

            I typed this below the attribution.
        """
        assert reply_of(body) == "I typed this below the attribution."

    def test_bottom_posted_reply(self) -> None:
        """Text below an opening attribution and quote is the reply."""
        body = """
            On Tue, Mar 3, 2026 at 10:00 AM, Bob <bob@example.org> wrote:
            > What do you think?

            I think it is fine.
        """
        assert reply_of(body) == "I think it is fine."

    def test_prose_ending_in_wrote_is_kept(self) -> None:
        """ "Here is what you wrote:" followed by the person's own text is not a quote header."""
        body = "Thanks.\n\nHere is what you wrote:\n\nthe list is fine"
        assert extract_body(body).reply == body

    def test_greeting_before_inline_answer(self) -> None:
        """A one-word greeting above an attributed quote makes the quote an inline one."""
        body = "Hi\n\nBob wrote:\n> q\n\nmy answer\n"
        assert extract_body(body).reply == "Hi\n\n> q\n\nmy answer"

    def test_attribution_glued_to_reply_line(self) -> None:
        """An attribution a client appended to the reply's last line is split off."""
        body = "ok then On Tue, Mar 3, 2026 at 10:00 AM, bob@example.org wrote:\n> Hi\n"
        assert extract_body(body).reply == "ok then"

    def test_only_a_quote_is_empty(self) -> None:
        """A message that is nothing but quoted thread has an empty reply."""
        body = "On Tue, Mar 3, 2026, Bob <bob@example.org> wrote:\n> a\n> b\n"
        result = extract_body(body)
        assert result.reply == ""
        assert "> a" in result.elided


class TestHeaderBlocks:
    """Outlook header blocks and original-message separators cut everything below."""

    @pytest.mark.parametrize(
        "block",
        [
            "From: Bob <bob@example.org>\nSent: Tuesday, March 3, 2026 10:00\nTo: Ann\nSubject: Re",
            "*From:* Bob <bob@example.org>\n*Sent:* Tuesday, March 3, 2026\n*To:* Ann",
            "Von: Bob <bob@example.org>\nGesendet: Dienstag, 3. März 2026 10:00\nAn: Ann",
            "De : Bob <bob@example.org>\nEnvoyé : mardi 3 mars 2026 10:00\nÀ : Ann",
            "Da: Bob <bob@example.org>\nInviato: martedì 3 marzo 2026 10:00\nA: Ann",
            "Fra: Bob <bob@example.org>\nSendt: 3. marts 2026 10:00\nTil: Ann",
            "-----Original Message-----\nFrom: Bob <bob@example.org>",
            "-----Ursprüngliche Nachricht-----",
            "-----Mensaje original-----\nDe: Bob",
        ],
    )
    def test_block_cuts_to_end(self, block: str) -> None:
        """The reply is what stands above the block."""
        body = f"See my notes.\n\n{block}\n\nThe earlier message.\nMore of it."
        assert extract_body(body).reply == "See my notes."

    def test_underscore_rule_above_block_goes_too(self) -> None:
        """The underscore rule Outlook draws above the header block is cut with it."""
        body = "Yes.\n________________________________\nFrom: Bob\nSent: today\n\nold"
        assert extract_body(body).reply == "Yes."

    def test_single_date_field_is_not_a_block(self) -> None:
        """A lone "Date:" line in the reply is content, not a header block."""
        body = "Invitation:\n\nDate: Friday 6 March\nTime: 10:00\nPlace: the hall"
        assert extract_body(body, quotes_only=True).reply == body


class TestForwards:
    """Forwarded messages: only the sender's own note above is the reply."""

    @pytest.mark.parametrize(
        "opener",
        [
            "---------- Forwarded message ---------",
            "Begin forwarded message:",
            "> Begin forwarded message:",
            "-------- Message transféré --------",
            "---------- Weitergeleitete Nachricht ----------",
        ],
    )
    def test_note_above_forward(self, opener: str) -> None:
        """The forwarded message is cut, the note kept."""
        body = f"Have a look at this.\n\n{opener}\nFrom: Bob <bob@example.org>\nSubject: x\n\nhi"
        assert extract_body(body).reply == "Have a look at this."

    def test_forward_without_note_keeps_forwarded_text(self) -> None:
        """With no note above, the forwarded text is what the person sent."""
        body = (
            "---------- Forwarded message ---------\nFrom: Bob <bob@example.org>\n"
            "Date: Tue, Mar 3, 2026\nSubject: x\nTo: ann@example.org\n\nThe text itself."
        )
        assert extract_body(body).reply == "The text itself."

    def test_quotes_only_keeps_forward(self) -> None:
        """In quotes-only mode a forward is kept whole, as talon does."""
        body = "FYI\n\n---------- Forwarded message ---------\nFrom: Bob\nSubject: x\n\nText"
        assert extract_body(body, quotes_only=True).reply == body


class TestSignatures:
    """Signatures, mobile footers, list footers and disclaimers are cut."""

    @pytest.mark.parametrize(
        "footer",
        [
            "Sent from my iPhone",
            "Sent from my Galaxy",
            "Sent from Outlook Mobile",
            "Get Outlook for Android",
            "Envoyé de mon iPad",
            "Von meinem iPhone gesendet",
            "Enviado desde mi Android",
            "Inviato da iPhone",
            "Sendt fra min iPad",
            "Verzonden met BlackBerry",
        ],
    )
    def test_mobile_footer(self, footer: str) -> None:
        """A "sent from my phone" line goes."""
        assert extract_body(f"On my way.\n\n{footer}\n").reply == "On my way."

    def test_dash_dash_signature(self) -> None:
        """The "-- " delimiter and all below it go."""
        body = "Good idea.\n\n-- \nBob Smith\nExample Corp\n+1 555 010 0000\n"
        result = extract_body(body)
        assert result.reply == "Good idea."
        assert "Example Corp" in result.elided

    def test_contact_block(self) -> None:
        """A trailing block of name, address and phone goes; the sign-off stays."""
        body = "Let us meet.\n\nThanks,\nBob Smith\nbob@example.org\n+1 555 010 0000\n"
        assert extract_body(body).reply == "Let us meet.\n\nThanks,\nBob Smith"

    def test_list_footer(self) -> None:
        """A mailing-list footer below the reply goes."""
        body = (
            "My answer.\n\n_______________________________________________\n"
            "announce mailing list\nannounce@lists.example.org\n"
            "https://lists.example.org/listinfo/announce\n"
        )
        assert extract_body(body).reply == "My answer."

    def test_disclaimer(self) -> None:
        """A legal disclaimer paragraph after the reply goes."""
        body = (
            "My answer.\n\nCONFIDENTIALITY NOTICE: This e-mail is confidential and intended "
            "solely for the addressee."
        )
        assert extract_body(body).reply == "My answer."

    def test_quotes_only_keeps_signature(self) -> None:
        """quotes_only cuts the thread but keeps the signature."""
        body = "Hello\n\nSent from my iPhone\n\nOn Apr 3, 2026, at 4:19 PM, bob wrote:\n> Hi\n"
        assert extract_body(body, quotes_only=True).reply == "Hello\n\nSent from my iPhone"


class TestKeepsWhatWasTyped:
    """The reply is never over-stripped."""

    @pytest.mark.parametrize(
        "body",
        [
            "Sounds good to me.\n\nB",
            "Sounds good to me.\n-Glen",
            "Sounds good to me.\n\nThanks, Ann",
            "Part one.\n\n----\n\nPart two has no contact details.\nLine two.\nThree.",
            "See these:\nhttps://example.org/a\nhttps://example.org/b",
            "On Monday we met.\nWe wrote a plan:\n\n- one\n- two",
            "We shipped it.\nSent on Monday to everyone, as planned.\nMore text.",
            "> Just one quoted line, typed for emphasis.\n\nAnd my own words.",
            "Code:\n```\n####\n# comment\n```\nDone.",
        ],
    )
    def test_kept_whole(self, body: str) -> None:
        """Text without quoted thread or signature comes back unchanged."""
        assert extract_body(body).reply == body

    def test_inline_answers_keep_quotes(self) -> None:
        """Answers between quoted lines keep those quotes; the attribution goes."""
        body = """
            Replies inline.

            On Tue, Mar 3, 2026, Bob <bob@example.org> wrote:
            > First question?

            First answer.

            > Second question?

            Second answer.

            > Trailing quote
            > nobody answered
        """
        assert reply_of(body) == (
            "Replies inline.\n\n> First question?\n\nFirst answer.\n\n"
            "> Second question?\n\nSecond answer."
        )

    def test_signature_only_is_not_emptied(self) -> None:
        """A short note that looks like a signature is still kept rather than lost."""
        assert extract_body("--\nsee attached").reply == "--\nsee attached"

    def test_empty_and_missing(self) -> None:
        """Empty or absent bodies give an empty reply."""
        assert extract_body("") == Extraction("", "")
        assert extract_reply(None) == Extraction("", "")

    def test_crlf_line_ends(self) -> None:
        """Windows line ends are handled like Unix ones."""
        body = "Fine.\r\n\r\nOn Tue, Mar 3, 2026, Bob <bob@example.org> wrote:\r\n> x\r\n"
        assert extract_body(body).reply == "Fine."


class TestExtractReply:
    """extract_reply picks the text or the HTML part."""

    def test_text_preferred_without_html_quote(self) -> None:
        """With no quote structure in the HTML, the text part is used."""
        text = "Fine.\n\nOn Tue, Mar 3, 2026, Bob <bob@example.org> wrote:\n> x\n"
        assert extract_reply(text, "<p>Fine.</p>").reply == "Fine."

    def test_html_only(self) -> None:
        """Without a text part, the HTML part is reduced to text and the text rules run."""
        html = "<p>Thanks for writing.</p><p>-- <br>Bob<br>+1 555 010 0000</p>"
        assert extract_reply(None, html).reply == "Thanks for writing."

    def test_html_quote_structure_wins(self) -> None:
        """A Gmail quote in the HTML part decides, and text rules still run on the result."""
        html = (
            "<div>Nice post!<br><br>Sent from my iPhone</div><div class=gmail_quote>"
            "<div class=gmail_attr>On Tue, Mar 3, 2026, Blog wrote:</div>"
            "<blockquote class=gmail_quote>old text</blockquote></div>"
        )
        result = extract_reply("Nice post!", html)
        assert result.reply == "Nice post!"
        assert "old text" in result.elided


class TestBounds:
    """Work stays linear on hostile input. The bounds are on this process's CPU time, which
    other processes on a busy machine do not stretch as they stretch wall-clock time."""

    def test_ten_thousand_quoted_lines(self) -> None:
        """A reply above a 10,000-line quote is extracted quickly."""
        body = "Short answer.\n\nOn Tue, Mar 3, 2026, Bob <bob@example.org> wrote:\n" + (
            "> quoted line with a link <http://example.org/x>\n" * 10_000
        )
        started = time.process_time()
        assert extract_body(body).reply == "Short answer."
        assert time.process_time() - started < 2.0

    def test_huge_single_line(self) -> None:
        """A megabyte on one line is returned without pathological slowness."""
        body = "word " * 200_000
        started = time.process_time()
        assert extract_body(body).reply == body.strip()
        assert time.process_time() - started < 2.0

    def test_interleaved_quotes(self) -> None:
        """Thousands of alternating quote and text lines stay fast."""
        body = "".join(f"> question {i}\nanswer {i}\n" for i in range(5_000))
        started = time.process_time()
        assert extract_body(body).reply.startswith("> question 0\nanswer 0")
        assert time.process_time() - started < 2.0


class TestTalonIsolation:
    """talon is imported lazily and never loads its scikit-learn signature model."""

    def test_no_sklearn_after_extraction(self) -> None:
        """In a fresh interpreter, extracting (with talon's help) never imports sklearn."""
        code = (
            "import sys\n"
            "from service.extraction.extract import extract_body\n"
            "assert 'talon' not in sys.modules, 'talon imported eagerly'\n"
            "extract_body('hi\\n\\nBob wrote:\\n> a\\n\\nmore\\n> b\\n')\n"
            "from service.extraction.talon_compat import talon_bruteforce\n"
            "talon_bruteforce()\n"
            "assert 'talon.quotations' in sys.modules\n"
            "assert not any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules)\n"
        )
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
