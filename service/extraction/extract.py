"""Cuts quoted thread and signature from a reply, keeping what the person typed (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.extraction import rules
from service.extraction.quotes import (
    confirm_with_talon,
    drop_quote_blocks,
    restore_lost_quote_marks,
    without_trailing_quote,
)
from service.extraction.signature import drop_signature, has_own_text
from service.extraction.thread import split_glued_attributions, thread_free_span

# Any tag or comment: an "HTML" part without one is plain text under the wrong label.
_MARKUP = re.compile(r"<(?:[A-Za-z][\w:-]*|/[A-Za-z][\w:-]*|!--|!doctype)[\s>/]", re.IGNORECASE)


@dataclass(frozen=True)
class Extraction:
    """The reply a person typed, and what was cut from around it."""

    reply: str
    elided: str


def extract_reply(
    text: str | None, html: str | None = None, *, quotes_only: bool = False
) -> Extraction:
    """Extract the reply from a message's text and HTML parts.

    The HTML part wins when its client structure shows where the quote starts (more precise
    than any text rule); otherwise the text part is used, and the HTML part only without one.
    Text rules (signatures, leftover attributions) run on whichever text is chosen.
    """
    if html and html.strip() and not _MARKUP.search(html):
        # Labelled HTML but holding plain text (old clients, broken forwarders): read as text.
        text, html = (text if text and text.strip() else html), None
    has_text = bool(text and text.strip())
    if html and html.strip():
        from service.extraction.html_text import (
            html_to_reply_text,  # deferred: text-only mail skips lxml
        )

        converted = html_to_reply_text(html, quotes_only=quotes_only)
        if converted.found_quote or not has_text:
            inner = extract_body(converted.text, quotes_only=quotes_only)
            if inner.reply.strip() or not has_text:
                return Extraction(inner.reply, _join_elided(converted.elided, inner.elided))
            # Never silently empty: the text part may still hold what the HTML part lost.
    return extract_body(text or "", quotes_only=quotes_only)


def extract_body(text: str, *, quotes_only: bool = False) -> Extraction:
    """Extract the reply from a plain-text body; ``quotes_only`` keeps signatures."""
    # Layers, most precise first: our marker and the thread headers a fast line scan finds
    # (which bound everything later to the reply's size), quote blocks and their attributions,
    # talon for splitters we do not know (trusted only when quoted lines follow its cut), and
    # last the signature rules.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = restore_lost_quote_marks(split_glued_attributions(lines))
    keep = [False] * len(lines)
    begin, end = thread_free_span(lines, quotes_only)
    span = without_trailing_quote(lines, list(range(begin, end)))
    span = drop_quote_blocks(lines, span)
    span = confirm_with_talon(lines, span)
    if not quotes_only:
        unsigned = drop_signature(lines, span)
        # Never silently empty: if only a "signature" is left, it is what the person wrote.
        if any(not rules.is_blank(lines[i]) for i in unsigned) or not has_own_text(lines, span):
            span = unsigned
    for i in span:
        keep[i] = True
    reply = _strip_blank_edges([lines[i] for i in span])
    elided = _elided_text(lines, keep)
    return Extraction(reply="\n".join(reply).strip("\n"), elided=elided)


def _strip_blank_edges(lines: list[str]) -> list[str]:
    """Drop blank (or tracking-character-only) lines at both ends, and trailing spaces."""
    start, stop = 0, len(lines)
    while start < stop and rules.is_blank(lines[start]):
        start += 1
    while stop > start and rules.is_blank(lines[stop - 1]):
        stop -= 1
    return [line.rstrip() for line in lines[start:stop]]


def _elided_text(lines: list[str], keep: list[bool]) -> str:
    """The lines that were cut, one run per paragraph."""
    runs: list[str] = []
    current: list[str] = []
    for line, kept in zip(lines, keep, strict=True):
        if kept:
            if current:
                runs.append("\n".join(current).strip("\n"))
                current = []
        else:
            current.append(line)
    if current:
        runs.append("\n".join(current).strip("\n"))
    return "\n\n".join(run for run in runs if run.strip())


def _join_elided(*parts: str) -> str:
    """Join what several layers cut, in order, skipping empty parts."""
    return "\n\n".join(part.strip("\n") for part in parts if part.strip())
