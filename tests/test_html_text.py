"""HTML replies: quotes cut by client structure, then rendered as clean plain text."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.extraction.html_text import HtmlReply, html_to_reply_text
from service.extraction.marker import MARKER_HTML_ID

QUOTED = "Ann Author commented on Shipping replyd"


def reply_of(html: str) -> str:
    """The reply text of an HTML part."""
    return html_to_reply_text(html).text


class TestQuoteStructures:
    def test_gmail_quote(self) -> None:
        """Gmail's gmail_quote div goes, with the gmail_attr line inside it."""
        result = html_to_reply_text(
            '<div dir="ltr">Thanks!</div><br><div class="gmail_quote">'
            '<div dir="ltr" class="gmail_attr">On Tue, Mar 12, 2024 at 9:41 AM Ann '
            '&lt;<a href="mailto:ann@example.org">ann@example.org</a>&gt; wrote:<br></div>'
            f'<blockquote class="gmail_quote">{QUOTED}</blockquote></div>'
        )
        assert result == HtmlReply(
            text="Thanks!",
            elided="On Tue, Mar 12, 2024 at 9:41 AM Ann <ann@example.org> wrote:\n\n" + QUOTED,
            found_quote=True,
        )

    def test_gmail_quote_container(self) -> None:
        """Gmail's 2024 gmail_quote_container class is recognised on its own."""
        html = f'<div>Yes.</div><div class="gmail_quote_container">{QUOTED}</div>'
        assert reply_of(html) == "Yes."

    def test_gmail_attr_alone(self) -> None:
        """A gmail_attr line outside a gmail_quote div is cut too."""
        html = '<div>Yes.</div><div class="gmail_attr">On Mon, Ann wrote:</div>'
        assert reply_of(html) == "Yes."

    def test_outlook_div_rply_fwd_msg_cuts_what_follows(self) -> None:
        """Outlook's divRplyFwdMsg header block and the quoted siblings after it go."""
        html = (
            '<div>Works for me.</div><hr style="display:inline-block;width:98%">'
            '<div id="divRplyFwdMsg"><b>From:</b> Ann<br><b>Sent:</b> Tuesday</div>'
            f"<div>{QUOTED}</div>"
        )
        result = html_to_reply_text(html)
        assert result.text == "Works for me."
        assert QUOTED in result.elided and "From: Ann" in result.elided

    def test_outlook_appendonsend(self) -> None:
        """Outlook's empty appendonsend marker starts the cut."""
        html = f'<div>OK</div><div id="appendonsend"></div><hr><div>{QUOTED}</div>'
        assert reply_of(html) == "OK"

    def test_outlook_border_top_header(self) -> None:
        """Outlook desktop's top-bordered From:/Sent: block and the rest of the body go."""
        html = (
            "<div class=WordSection1><p class=MsoNormal>Noted.<o:p></o:p></p>"
            "<div><div style='border:none;border-top:solid #E1E1E1 1.0pt;"
            "padding:3.0pt 0cm 0cm 0cm'>"
            "<p class=MsoNormal><b>From:</b> Ann<br><b>Sent:</b> Tuesday</p></div></div>"
            f"<p class=MsoNormal>{QUOTED}</p></div>"
        )
        assert reply_of(html) == "Noted."

    def test_border_top_without_header_is_kept(self) -> None:
        """A top-bordered div that does not open a From: block is the person's content."""
        html = "<div>Intro</div><div style='border-top:solid #ccc 1px'>My table</div>"
        assert html_to_reply_text(html) == HtmlReply("Intro\nMy table", "", False)

    def test_apple_cite_with_attribution_above(self) -> None:
        """Apple Mail's blockquote type=cite goes with the "On ... wrote:" line above it."""
        html = (
            "<div>Agreed.</div><div><br><div>On Mar 12, 2024, at 9:41 AM, Ann "
            '&lt;<a href="mailto:ann@example.org">ann@example.org</a>&gt; wrote:</div>'
            f'<br class="Apple-interchange-newline"><blockquote type="cite">{QUOTED}'
            "</blockquote></div>"
        )
        result = html_to_reply_text(html)
        assert result.text == "Agreed."
        assert result.elided.startswith("On Mar 12, 2024, at 9:41 AM, Ann <ann@example.org>")

    def test_ios_attribution_in_its_own_blockquote(self) -> None:
        """iOS Mail's two cite blockquotes (attribution, then quote) both go."""
        html = (
            '<div dir="ltr">Yes</div><div dir="ltr">Sent from my iPhone</div><div dir="ltr"><br>'
            '<blockquote type="cite">On 12 Mar 2024, Ann wrote:<br><br></blockquote></div>'
            f'<blockquote type="cite"><div dir="ltr">{QUOTED}</div></blockquote>'
        )
        assert reply_of(html) == "Yes\nSent from my iPhone"

    def test_thunderbird(self) -> None:
        """Thunderbird's moz-cite-prefix line and its blockquote go."""
        html = (
            "<p>Thanks,<br>Karl<br></p>"
            '<div class="moz-cite-prefix">On 3/12/24 9:41 AM, Ann wrote:<br></div>'
            f'<blockquote type="cite" cite="mid:x@example.org">{QUOTED}</blockquote><br>'
        )
        assert reply_of(html) == "Thanks,\nKarl"

    def test_yahoo(self) -> None:
        """Yahoo's yahoo_quoted div goes."""
        html = f'<div>Me too</div><div id="yahoo_quoted_123" class="yahoo_quoted">{QUOTED}</div>'
        assert reply_of(html) == "Me too"

    def test_protonmail(self) -> None:
        """Proton Mail's protonmail_quote div goes."""
        html = f'<div>Sure</div><div class="protonmail_quote">On Tue, Ann wrote:<br>{QUOTED}</div>'
        assert reply_of(html) == "Sure"

    def test_generic_trailing_blockquote(self) -> None:
        """A plain blockquote at the end goes with the attribution line above it."""
        html = (
            "<p>Reply</p>On Tue, Sep 8, 2009 at 11:48 AM, wrote:<br>"
            f"<blockquote>{QUOTED}</blockquote>"
        )
        result = html_to_reply_text(html)
        assert result.text == "Reply"
        assert result.elided == f"On Tue, Sep 8, 2009 at 11:48 AM, wrote:\n{QUOTED}"

    def test_blockquote_followed_by_text_is_kept(self) -> None:
        """A blockquote the person wrote below is their own quotation, not the thread."""
        html = "<p>He said</p><blockquote>something wise</blockquote><p>and I agree.</p>"
        assert html_to_reply_text(html).found_quote is False

    def test_gmail_indent_is_kept(self) -> None:
        """Gmail's indent button makes a borderless blockquote: the person's own text."""
        html = (
            '<div>Look:</div><blockquote style="margin:0 0 0 40px;border:none;padding:0px">'
            "indented</blockquote>"
        )
        assert reply_of(html) == "Look:\n\nindented"

    def test_marker_cuts_to_the_end(self) -> None:
        """Our marker element and everything after it go, whatever the client did."""
        html = (
            "<div>Great post</div><div><div>-------- Original message --------</div>"
            f'<div id="{MARKER_HTML_ID}">##- Reply above this line to comment -##</div>'
            f"<p>{QUOTED}</p></div><div>trailing</div>"
        )
        result = html_to_reply_text(html)
        assert result.text == "Great post"  # the Samsung-style rule above it opens the quote
        assert QUOTED in result.elided and "trailing" in result.elided

    @pytest.mark.parametrize("prefix", ["x_", "m_-4417620935287361125", "yiv8472615930"])
    def test_marker_with_client_prefixed_id(self, prefix: str) -> None:
        """Outlook (x_), Gmail (m_...) and Yahoo (yiv...) prefix quoted ids; still found."""
        html = f'<div>Hi</div><div id="{prefix}{MARKER_HTML_ID}">marker</div><p>{QUOTED}</p>'
        assert reply_of(html) == "Hi"

    def test_text_below_a_contained_quote_is_kept(self) -> None:
        """Bottom-posted text after a Gmail quote stays the reply."""
        html = f'<div class="gmail_quote">{QUOTED}</div><div>My answer below.</div>'
        assert reply_of(html) == "My answer below."

    def test_no_quote(self) -> None:
        """Without any quote structure the whole text is the reply and nothing is elided."""
        assert html_to_reply_text("<p>Just this.</p>") == HtmlReply("Just this.", "", False)

    def test_prose_ending_in_colon_above_quote_is_kept(self) -> None:
        """Only an attribution line is taken from above a quote, not the person's own line."""
        html = f'<div>Two things:</div><div class="gmail_quote">{QUOTED}</div>'
        assert reply_of(html) == "Two things:"


class TestRendering:
    def test_blocks_and_breaks(self) -> None:
        """Divs are lines, <br> breaks, an empty <div><br></div> is a blank line."""
        html = "<div>Hi,</div><div><br></div><div>line one<br>line two<br></div><div>end</div>"
        assert reply_of(html) == "Hi,\n\nline one\nline two\nend"

    def test_paragraphs_are_separated(self) -> None:
        """Paragraphs get a blank line between them, like a browser's margins."""
        assert reply_of("<p>One</p><p>Two</p>") == "One\n\nTwo"

    def test_outlook_paragraphs_are_single_spaced(self) -> None:
        """Outlook's zero-margin MsoNormal paragraphs are lines; an &nbsp; one is blank."""
        html = (
            "<p class=MsoNormal>One<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
            "<p class=MsoNormal>Two</p><p class=MsoNormal>Three</p>"
        )
        assert reply_of(html) == "One\n\nTwo\nThree"

    def test_lists(self) -> None:
        """Unordered items are "- item", ordered ones numbered, nested ones indented."""
        html = "<ul><li>one</li><li>two<ol><li>first</li><li>second</li></ol></li></ul><p>after</p>"
        assert reply_of(html) == "- one\n- two\n  1. first\n  2. second\n\nafter"

    def test_links(self) -> None:
        """A link keeps its URL when the text differs, and is not doubled when the same."""
        html = (
            '<div>See <a href="https://example.org/post">the post</a>, '
            '<a href="https://example.org/">example.org</a>, '
            '<a href="mailto:ann@example.org">Ann</a> and '
            '<a href="mailto:bo@example.org">bo@example.org</a>.</div>'
        )
        assert reply_of(html) == (
            "See the post (https://example.org/post), example.org, Ann (ann@example.org) "
            "and bo@example.org."
        )

    def test_outlook_safelinks_are_unwrapped(self) -> None:
        """An Outlook safelinks URL shows the address it wraps."""
        html = (
            '<a href="https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2F'
            'example.org%2Fa&amp;data=05%7C01">the docs</a>'
        )
        assert reply_of(html) == "the docs (https://example.org/a)"

    def test_non_web_links_show_only_text(self) -> None:
        """javascript:, cid: and in-page links show their text only."""
        html = (
            '<a href="javascript:void(0)">click</a> <a href="#top">top</a> <a href="cid:x">img</a>'
        )
        assert reply_of(html) == "click top img"

    def test_invisible_content_is_dropped(self) -> None:
        """Head, script, style, comments and display:none content are not text."""
        html = (
            "<html><head><title>T</title><style>p{color:red}</style></head><body>"
            "<script>alert(1)</script><!-- note --><span style='display:none'>preheader</span>"
            "<div hidden>hidden</div>Visible</body></html>"
        )
        assert reply_of(html) == "Visible"

    def test_entities_and_whitespace(self) -> None:
        """Entities decode; runs of white space collapse as in a browser."""
        html = "<div>  Caf&eacute;\n\n   &amp;   &#8220;tea&#8221;  </div>"
        assert reply_of(html) == "Café & \u201ctea\u201d"

    def test_inline_elements_do_not_break_words(self) -> None:
        """Inline tags join their text without adding spaces or lines."""
        assert reply_of("<div>un<b>believ</b><i>able</i> <span>day</span></div>") == (
            "unbelievable day"
        )

    def test_preformatted(self) -> None:
        """<pre> keeps its spaces and line breaks."""
        assert (
            reply_of("<p>code:</p><pre>  a = 1\n    b = 2</pre>") == "code:\n\n  a = 1\n    b = 2"
        )

    def test_table_cells(self) -> None:
        """Table rows are lines, cells are separated by a space."""
        html = "<table><tr><td>Ann</td><td>Author</td></tr><tr><td>Bo</td></tr></table>"
        assert reply_of(html) == "Ann Author\nBo"

    def test_signature_separator_keeps_its_space(self) -> None:
        """The "-- " line keeps its trailing space, so signature rules still see it."""
        html = '<div>Bye<br><div><br></div>-- <br><div class="gmail_signature">Glen</div></div>'
        assert html_to_reply_text(html, quotes_only=True).text == "Bye\n\n-- \nGlen"
        assert reply_of(html) == "Bye\n\n-- "  # the gmail_signature block itself is cut

    def test_emoji_images_keep_their_character(self) -> None:
        """Gmail's emoji images render as the emoji they stand for; other images vanish."""
        html = (
            '<div>Nice <img data-emoji="\U0001f44d" alt="\U0001f44d" src="x.png">'
            '<img src="y.png" alt="logo"></div>'
        )
        assert reply_of(html) == "Nice \U0001f44d"

    def test_several_documents(self) -> None:
        """HTML parts joined one after the other (around an attachment) are all read."""
        html = (
            "<html><body><div>First</div></body></html>\n<html><head><title>x</title></head>"
            f'<body><div>Second</div><blockquote type="cite">{QUOTED}</blockquote></body></html>'
        )
        assert html_to_reply_text(html) == HtmlReply("First\nSecond", QUOTED, True)

    @pytest.mark.parametrize(
        "html",
        ["", "   ", "<!-- only a comment -->", "\x00\x00", "<<<>>>", "</div></div>", "\ue000"],
    )
    def test_empty_or_garbage(self, html: str) -> None:
        """Empty or broken HTML gives empty text, never an exception."""
        result = html_to_reply_text(html)
        assert result.found_quote is False
        assert result.text.strip("<>") == ""

    def test_encoding_declaration_is_ignored(self) -> None:
        """A <meta charset> or XML declaration in an already decoded part changes nothing."""
        html = (
            '<?xml version="1.0" encoding="iso-8859-1"?><html><head>'
            '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
            "</head><body>Grüße \u2013 José</body></html>"
        )
        assert reply_of(html) == "Grüße \u2013 José"


HTML_PIECES = st.sampled_from(
    [
        "<div>",
        "</div>",
        "<p>",
        "</p>",
        "<br>",
        "<blockquote>",
        "</blockquote>",
        '<blockquote type="cite">',
        '<div class="gmail_quote">',
        '<div id="divRplyFwdMsg">',
        f'<div id="{MARKER_HTML_ID}">',
        "<ul><li>",
        "</li></ul>",
        '<a href="http://x.org">',
        "</a>",
        "<pre>",
        "</pre>",
        "<table><tr><td>",
        "On Tue, Ann wrote:",
        "text",
        " ",
        "\n",
        "&nbsp;",
        "&amp;",
        "<",
        ">",
        "\x00",
        "\ue000",
        "<!--",
        "-->",
        "</html>",
    ]
)


class TestArbitraryInput:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(HTML_PIECES, max_size=60).map("".join))
    def test_tag_soup_never_raises(self, html: str) -> None:
        """Any mix of tags, quote markers and stray characters converts without an error."""
        result = html_to_reply_text(html)
        assert "\ue000" not in result.text and "\x00" not in result.text

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=300))
    def test_any_text_never_raises(self, html: str) -> None:
        """Any string at all converts without an error."""
        assert isinstance(html_to_reply_text(html), HtmlReply)


class TestBounds:
    """Deep and wide HTML is cut in bounded time. The bounds are on this process's CPU time,
    which other processes on a busy machine do not stretch as they stretch wall-clock time."""

    def test_gmail_thread_1000_levels_deep(self) -> None:
        """A Gmail thread nested 1000 levels deep is cut correctly and quickly."""
        depth = 1000
        html = (
            '<div dir="ltr">Top reply</div><br>'
            + "".join(
                f'<div class="gmail_quote"><div class="gmail_attr">On day {i}, P{i} wrote:<br>'
                f'</div><blockquote class="gmail_quote">Level {i} text<br>'
                for i in range(depth)
            )
            + "</blockquote></div>" * depth
            + "<div>Ann Author</div>"
        )
        started = time.process_time()
        result = html_to_reply_text(html)
        elapsed = time.process_time() - started
        assert result.text == "Top reply\n\nAnn Author"
        assert result.found_quote
        assert "Level 0 text" in result.elided and f"Level {depth - 1} text" in result.elided
        assert elapsed < 1.0

    def test_plain_blockquotes_1000_levels_deep(self) -> None:
        """1000 nested plain blockquotes under a reply are cut as one trailing quote."""
        depth = 1000
        html = "<div>Reply</div>" + "<blockquote>q " * depth + "</blockquote>" * depth
        started = time.process_time()
        assert reply_of(html) == "Reply"
        assert time.process_time() - started < 1.0

    def test_many_sibling_quotes_are_linear(self) -> None:
        """Twenty thousand sibling cite blockquotes are cut in linear time."""
        html = "<div>Reply</div>" + '<blockquote type="cite">q</blockquote>' * 20_000
        started = time.process_time()
        assert reply_of(html) == "Reply"
        assert time.process_time() - started < 3.0

    def test_large_flat_message(self) -> None:
        """A megabyte-sized reply renders in bounded time."""
        html = "<div>" + "word " * 200_000 + "</div>" + "<p>para</p>" * 20_000
        started = time.process_time()
        text = reply_of(html)
        assert text.startswith("word word") and text.endswith("para")
        assert time.process_time() - started < 3.0


def test_control_characters_do_not_break_the_cut() -> None:
    """C0 control bytes (found by fuzzing) are dropped, not allowed to crash lxml."""
    html = (
        '<div>Good\x01 idea</div><div class="gmail_quote">On Mon, Ann wrote:'
        "<blockquote>old</blockquote></div>\x01"
    )
    result = html_to_reply_text(html)
    assert result.found_quote and result.text == "Good idea" and "old" in result.elided
