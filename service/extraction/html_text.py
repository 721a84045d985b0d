"""Cuts the quoted thread out of an HTML reply by mail-client structure, then renders clean text."""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html
from lxml import etree

from service.extraction import footers, rules
from service.extraction.attribution import attribution_end
from service.extraction.html_quotes import (
    cut_contained,
    cut_signatures,
    cut_to_end,
    mark_quotes,
    quote_starts,
    text_after_quotes,
    unmark_quotes,
)
from service.extraction.html_render import (
    ATTRIBUTION_MARK,
    BLOCK_TAGS,
    CUT_MARK,
    QUOTE_MARK,
    render,
    tidy,
)
from service.extraction.quotes import is_answer


@dataclass(frozen=True)
class HtmlReply:
    """The reply text of an HTML part, the text cut from it, and whether a quote was found."""

    text: str
    elided: str
    found_quote: bool


# Zero-width characters, our private marks, and the C0 controls XML cannot hold: lxml refuses
# to move text containing them from one element to another.
_INVISIBLE = re.compile("[\u200b\ufeff\ue000-\ue002\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DOCUMENT_END = re.compile(r"</\s*(?:body|html)\s*>", re.IGNORECASE)
_MAX_ATTRIBUTION_LOOKBACK = 3  # lines above a cut point searched for an attribution
_MARKS = QUOTE_MARK + ATTRIBUTION_MARK


def html_to_reply_text(html: str, *, quotes_only: bool = False) -> HtmlReply:
    """Cut the quoted thread from an HTML reply by client structure; return it as plain text.

    Quotes with the person's text between them (inline answers) are kept as "> " lines for
    the text rules to sort out; ``quotes_only`` keeps the client's signature block.
    """
    root = _parse(html)
    if root is None:
        return HtmlReply(text="", elided="", found_quote=False)
    signatures = [] if quotes_only else cut_signatures(root)
    signed = [tidy(render(signature)) for signature in signatures]
    contained, to_end = quote_starts(root)
    tail: etree._Element | None = None
    if to_end is not None:
        tail = cut_to_end(to_end, len(contained))
    # Quote marks go on lines, so only quotes that are blocks can be marked.
    blocks = all(quote.tag in BLOCK_TAGS for quote in contained)
    if contained and blocks and text_after_quotes(root, contained):
        mark_quotes(contained)
        marked = render(root)
        answered, text_before = _answered_quotes(marked)
        interleaved = answered >= 2 or (answered == 1 and text_before)
        if interleaved and any(_structured(quote) for quote in contained):
            elided = [tidy(render(tail))] if tail is not None else []
            return HtmlReply(
                text=tidy(_as_quoted_text(marked)),
                elided=_join([*elided, *signed]),
                found_quote=True,
            )
        # No text between quotes: each quote is above (bottom-posting) or below the reply.
        # Bare blockquotes with text around them are the person's own quotations.
        unmark_quotes(contained)
        if interleaved:
            contained = []
    cuts = cut_contained(contained)
    if tail is not None:
        cuts.append(tail)
    text = render(root)
    if not cuts:
        if signatures and not tidy(text):
            return html_to_reply_text(html, quotes_only=True)  # the "signature" was the reply
        return HtmlReply(text=tidy(text), elided=_join(signed), found_quote=False)
    reply, attributions = _remove_attributions(text)
    elided = [
        "\n".join([*attributions.get(index, []), tidy(render(cut))]).strip()
        for index, cut in enumerate(cuts)
    ]
    return HtmlReply(text=tidy(reply), elided=_join([*elided, *signed]), found_quote=True)


def _structured(quote: etree._Element) -> bool:
    """Whether a quote element is a client's quote markup (not a bare blockquote)."""
    return quote.tag != "blockquote" or bool(quote.get("type") or quote.get("class"))


def _join(parts: list[str]) -> str:
    return "\n\n".join(part for part in parts if part)


def _parse(html: str) -> etree._Element | None:
    # libxml2 stops at </html>; a message with several HTML parts (Apple Mail puts one on
    # each side of an attachment) arrives here as documents one after the other.
    cleaned = _DOCUMENT_END.sub("", _INVISIBLE.sub("", html))
    if not cleaned.strip():
        return None
    # Bytes with an explicit encoding: a <meta charset> left in an already decoded part must
    # not re-decode it. huge_tree lifts libxml2's depth limit of 256 elements (past it the
    # rest of the document, including any text below the quote, would be dropped silently).
    parser = lxml.html.HTMLParser(
        encoding="utf-8", huge_tree=True, remove_comments=True, remove_pis=True
    )
    try:
        return lxml.html.document_fromstring(cleaned.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, ValueError):
        return None


def _is_own(lines: list[str], i: int) -> bool:
    """Whether a rendered line is text the person typed: not a quote, attribution, cut mark,
    signature delimiter, footer, sign-off or name."""
    line = lines[i]
    if not line.strip(_MARKS + " \t\xa0") or line.startswith((*_MARKS, CUT_MARK)):
        return False
    return not (rules.is_signature_delimiter(line) or footers.is_mobile_footer(line)) and is_answer(
        line
    )


def _answered_quotes(marked: str) -> tuple[int, bool]:
    """How many marked quotes have the person's text below them, and whether text comes
    before the first quote (an attribution right above a quote is not the person's text)."""
    lines = marked.split("\n")
    answered, text_before, seen_quote, open_quote = 0, False, False, False
    for i, line in enumerate(lines):
        if line.startswith(CUT_MARK):
            break
        if line.startswith(QUOTE_MARK):
            seen_quote = open_quote = True
            continue
        if not _is_own(lines, i):
            continue
        end = attribution_end(lines, i, strict=False)
        if end is not None and end < len(lines) and _next_is_quote(lines, end):
            continue
        if not seen_quote:
            text_before = True
        elif open_quote:
            answered += 1
            open_quote = False
    return answered, text_before


def _next_is_quote(lines: list[str], start: int) -> bool:
    for line in lines[start : start + 3]:
        if line.strip():
            return line.startswith(QUOTE_MARK)
    return False


def _as_quoted_text(marked: str) -> str:
    """The marked rendering as plain text: quote marks become "> ", the rest ends at a cut."""
    out: list[str] = []
    for line in marked.split("\n"):
        if line.startswith(CUT_MARK):
            break
        line = line.replace(ATTRIBUTION_MARK, "")
        depth = len(line) - len(line.lstrip(QUOTE_MARK))
        out.append(("> " * depth).rstrip() + (" " if depth and line[depth:] else "") + line[depth:])
    return "\n".join(out)


def _remove_attributions(text: str) -> tuple[str, dict[int, list[str]]]:
    """Drop cut marks, and the "On ... wrote:" lines right above each (kept per cut)."""
    lines: list[str] = []
    attributions: dict[int, list[str]] = {}
    for line in text.split("\n"):
        if not line.startswith(CUT_MARK):
            lines.append(line)
            continue
        index = int(line[len(CUT_MARK) :] or 0)
        position = len(lines) - 1
        while position >= 0 and not lines[position].strip():
            position -= 1
        # The attribution may be wrapped over a few lines; it ends right above the cut.
        for start in range(max(0, position - _MAX_ATTRIBUTION_LOOKBACK + 1), position + 1):
            if attribution_end(lines, start, strict=False) == position + 1:
                attributions[index] = [part.strip() for part in lines[start : position + 1]]
                del lines[start:]
                break
    return "\n".join(lines), attributions
