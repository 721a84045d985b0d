"""An exported comment's HTML as the plain text replyd stores for every comment."""

from __future__ import annotations

import re

import lxml.html
from lxml import etree

from service.controls import strip_controls
from service.extraction.html_render import QUOTE_ATTRIBUTE, QUOTE_MARK, render, tidy

_LINE_END = re.compile(r"\r\n?|\n")


def comment_text(html: str, *, newlines_are_breaks: bool) -> str:
    """The text a reader saw of an exported comment: paragraphs and line breaks kept, links
    with their addresses, quotes marked with "> ", entities decoded, markup gone.

    WordPress stores what the commenter typed, line breaks included, and turns them into
    <br> and <p> only when showing it (`newlines_are_breaks`); Disqus stores finished HTML.
    """
    if newlines_are_breaks:
        html = _LINE_END.sub("<br>\n", html)
    if not html.strip():
        return ""
    # The HTML parser neither fetches nor expands anything but HTML's own entities.
    parser = lxml.html.HTMLParser(
        encoding="utf-8", no_network=True, remove_comments=True, remove_pis=True
    )
    try:
        root = lxml.html.fragment_fromstring(
            html.encode("utf-8", "replace"), create_parent="div", parser=parser
        )
    except (etree.ParserError, ValueError):
        return tidy(strip_controls(html))
    for quote in root.iter("blockquote"):
        quote.set(QUOTE_ATTRIBUTE, "")  # shown as "> " lines, as a quote in a reply is
    text = render(root).replace(QUOTE_MARK, "> ")
    return tidy(strip_controls(text))
