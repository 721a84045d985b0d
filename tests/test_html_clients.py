"""HTML markup of each mail client's quote and signature blocks, and HTML inline answers and
bottom-posted replies."""

from __future__ import annotations

import pytest

from service.extraction.extract import extract_reply
from service.extraction.html_text import html_to_reply_text

QUOTED = "The quoted original message."
ATTR = "On Tue, Mar 12, 2024 at 9:41 AM Ann &lt;ann@example.org&gt; wrote:"


@pytest.mark.parametrize(
    "signature",
    [
        '<div class="gmail_signature" data-smartmail="gmail_signature">Ann Smith<br>Editor</div>',
        '<div data-smartmail="gmail_signature">Ann Smith<br>Editor</div>',
        '<div id="Signature"><div>Ann Smith</div><div>Editor</div></div>',
        '<div id="x_Signature"><div>Ann Smith</div></div>',
        '<pre class="moz-signature" cols="72">-- \nAnn Smith</pre>',
        '<div class="protonmail_signature_block"><div>Ann Smith</div>Sent with Proton Mail</div>',
        '<div id="AppleMailSignature" dir="ltr">Ann, typing on glass</div>',
        '<div id="ms-outlook-mobile-signature">Get Outlook for iOS</div>',
        '<div id="composer_signature"><div>Sent from my Galaxy</div></div>',
        '<div id="ymail_android_signature"><a href="https://x.example">Sent from Yahoo</a></div>',
        '<div id="Zm-_Id_-Sgn" data-sigid="1"><div>Ann Smith</div></div>',
    ],
)
def test_client_signature_blocks_are_cut(signature: str) -> None:
    """Each client's signature block goes, whatever it says; quotes_only keeps it."""
    html = f"<div>Thanks, that works.</div>{signature}"
    result = html_to_reply_text(html)
    assert result.text == "Thanks, that works."
    assert "Ann" in result.elided or "Sent" in result.elided or "Get" in result.elided
    assert "Thanks, that works." in html_to_reply_text(html, quotes_only=True).text
    assert html_to_reply_text(html, quotes_only=True).text != "Thanks, that works."


def test_signature_holding_everything_is_the_reply() -> None:
    """A client that put the whole reply inside its signature block does not lose it."""
    html = '<div id="AppleMailSignature">Thanks, that works.</div>'
    assert html_to_reply_text(html).text == "Thanks, that works."


@pytest.mark.parametrize(
    "quote",
    [
        f'<div class="zmail_extra"><div>---- On Tue, 12 Mar 2024 Ann wrote ----</div>'
        f'<blockquote style="margin:0">{QUOTED}</blockquote></div>',
        f'<div id="zmail_extra"><blockquote>{QUOTED}</blockquote></div>',
        f'<div name="quote"><div><b>Gesendet:</b> Dienstag</div><div name="quoted-content">'
        f"{QUOTED}</div></div>",
        f'<div id="mail-editor-reference-message-container"><div>{QUOTED}</div></div>',
        f'<span id="OLK_SRC_BODY_SECTION"><div>{QUOTED}</div></span>',
        f'<div id="x_divRplyFwdMsg"><b>From:</b> Ann</div><div>{QUOTED}</div>',
        f'<hr id="stopSpelling"><div>{QUOTED}</div>',
        f'<div class="OutlookMessageHeader"><b>From:</b> Ann</div><div>{QUOTED}</div>',
        f'<blockquote id="iosymail"><div>{QUOTED}</div></blockquote>',
        f'<div class="tutanota_quote"><blockquote>{QUOTED}</blockquote></div>',
        f'<div class="ydp8f2a1b3cyahoo_quoted"><div>{QUOTED}</div></div>',
        f"<div>-------- Original message --------</div><div>From: Ann</div><div>{QUOTED}</div>",
        f"<div>------------------&nbsp;原始邮件&nbsp;------------------</div><div>{QUOTED}</div>",
        f'<div style="border:none;border-top:solid #E1E1E1 1.0pt"><p><b>Von:</b> Ann</p>'
        f"<p><b>Gesendet:</b> Dienstag</p></div><div>{QUOTED}</div>",
    ],
)
def test_client_quote_markup_is_cut(quote: str) -> None:
    """Each client's quoted original is cut by its markup, whatever its text says."""
    result = html_to_reply_text(f"<div>Sounds good.</div>{quote}")
    assert result.found_quote
    assert result.text == "Sounds good."
    assert QUOTED in result.elided


class TestInlineAnswers:
    def test_gmail_split_quote(self) -> None:
        """Answers typed inside Gmail's quote keep the quoted lines above them."""
        html = (
            f'<div class="gmail_quote"><div class="gmail_attr">{ATTR}</div>'
            '<blockquote class="gmail_quote">First question?</blockquote><div>One.</div>'
            '<blockquote class="gmail_quote">Second question?</blockquote><div>Two.</div>'
            '<blockquote class="gmail_quote">The rest.<br>More of it.</blockquote></div>'
        )
        reply = extract_reply(None, html).reply
        assert reply == "> First question?\n\nOne.\n\n> Second question?\n\nTwo."

    def test_apple_mail_split_blockquotes(self) -> None:
        """Apple Mail splits its blockquote type=cite around each answer."""
        html = (
            f'<div><blockquote type="cite"><div>{ATTR}</div><br><div>First?</div></blockquote>'
            'Yes.<br><blockquote type="cite"><div>Second?</div></blockquote>'
            "<div>No.</div></div>"
        )
        assert extract_reply("ignored", html).reply == "> First?\n\nYes.\n\n> Second?\n\nNo."

    def test_greeting_and_one_answer(self) -> None:
        """Text above and below one quote: the quote is what the text below answers."""
        html = (
            '<div>Hi Ann,</div><div class="gmail_quote"><div class="gmail_attr">'
            f'{ATTR}</div><blockquote class="gmail_quote">Question?</blockquote>'
            "<div>Answer.</div></div>"
        )
        assert extract_reply(None, html).reply == "Hi Ann,\n\n> Question?\n\nAnswer."

    def test_signature_below_quote_is_not_an_answer(self) -> None:
        """Gmail puts the signature below the quote: the reply stays top-posted."""
        html = (
            f'<div>Top reply.</div><div class="gmail_quote"><div class="gmail_attr">{ATTR}</div>'
            '<blockquote class="gmail_quote">Question?</blockquote></div>'
            '<br>-- <br><div class="gmail_signature">Ann Smith</div>'
        )
        assert extract_reply(None, html).reply == "Top reply."


def test_thunderbird_bottom_posted() -> None:
    """A reply below Thunderbird's quote is kept, the attribution and quote are cut."""
    html = (
        f'<div class="moz-cite-prefix">{ATTR}<br></div><blockquote type="cite">{QUOTED}'
        "</blockquote><p>My reply below.</p>"
    )
    result = extract_reply(None, html)
    assert result.reply == "My reply below."
    assert QUOTED in result.elided


def test_yandex_attribution_without_verb() -> None:
    """Yandex's "date, time, name <address>:" line above a plain blockquote is cut too."""
    html = (
        "<div>Да, согласен.</div><div> </div>"
        '<div>12.03.2024, 09:41, "Ann" &lt;ann@example.org&gt;:</div>'
        f"<blockquote>{QUOTED}</blockquote>"
    )
    assert extract_reply(None, html).reply == "Да, согласен."


def test_html_label_on_plain_text() -> None:
    """A "text/html" part without any markup is read as the plain text it is."""
    text = "Fine by me.\n\nOn Tue, Mar 12, 2024, Ann <ann@example.org> wrote:\n> old\n> older\n"
    assert extract_reply(None, text).reply == "Fine by me."
