"""Cuts the quoted thread out of an HTML reply by mail-client structure, then renders clean text."""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html
from lxml import etree

from service.extraction.html_quotes import cut_quotes
from service.extraction.html_render import CUT_MARK, render, tidy


@dataclass(frozen=True)
class HtmlReply:
    """The reply text of an HTML part, the text cut from it, and whether a quote was found."""

    text: str
    elided: str
    found_quote: bool


# A line that introduces a quote ("On <date>, <someone> wrote:" in the usual languages).
_ATTRIBUTION = re.compile(
    r"""^(?:
        .{0,300}\b(?:wrote|writes|schrieb|escribió|escreveu|scrisse|schreef|skrev|
                    napisał|napsal|kirjoitti|írta|написал[аи]?|yazd\u0131|έγραψε)\b.{0,200}
      | .{0,300}\ba\s+écrit\s*
      | .{0,300}(?:写道|寫道)
    )\s*[:\uff1a]\s*$""",
    re.IGNORECASE | re.VERBOSE,
)

# Zero-width characters, and the C0 controls XML cannot hold: lxml refuses to move text
# containing them from one element to another.
_INVISIBLE = re.compile("[\u200b\ufeff\ue000\ue001\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DOCUMENT_END = re.compile(r"</\s*(?:body|html)\s*>", re.IGNORECASE)
_MAX_ATTRIBUTION_LOOKBACK = 3  # lines above a cut point searched for an attribution


def html_to_reply_text(html: str) -> HtmlReply:
    """Cut the quoted thread from an HTML reply by client structure; return it as plain text."""
    root = _parse(html)
    if root is None:
        return HtmlReply(text="", elided="", found_quote=False)
    cuts = cut_quotes(root)
    text = render(root)
    if not cuts:
        return HtmlReply(text=tidy(text), elided="", found_quote=False)
    reply, attributions = _remove_attributions(text)
    elided = [
        "\n".join([*attributions.get(index, []), tidy(render(cut))]).strip()
        for index, cut in enumerate(cuts)
    ]
    return HtmlReply(
        text=tidy(reply),
        elided="\n\n".join(part for part in elided if part),
        found_quote=True,
    )


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


def _remove_attributions(text: str) -> tuple[str, dict[int, list[str]]]:
    """Drop cut marks, and the "On ... wrote:" line right above each (kept per cut)."""
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
        if (
            position >= 0
            and len(lines) - position <= _MAX_ATTRIBUTION_LOOKBACK + 1
            and _ATTRIBUTION.match(lines[position].strip())
        ):
            attributions[index] = [lines[position].strip()]
            del lines[position:]
    return "\n".join(lines), attributions
