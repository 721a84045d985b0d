"""Finds and cuts the quoted original and the signature in HTML by each mail client's markup."""

from __future__ import annotations

import re
from collections.abc import Iterator

import lxml.html
from lxml import etree

from service.extraction.html_render import COLLAPSIBLE, SKIPPED_TAGS, classes
from service.extraction.marker import MARKER_HTML_ID

# How a quote-start element is cut: just that element (the quote is contained in it), or that
# element and everything after it in document order (Outlook puts the quoted mail in siblings).
_CONTAINED = "contained"
_TO_END = "to_end"

_CONTAINED_CLASSES = frozenset(
    {
        "gmail_quote",  # Gmail web and mobile: the attribution div and the quote blockquote
        "gmail_quote_container",
        "gmail_attr",
        "moz-cite-prefix",  # Thunderbird's "On ... wrote:" div above its blockquote
        "yahoo_quoted",
        "protonmail_quote",
    }
)
_TO_END_IDS = frozenset({MARKER_HTML_ID, "divRplyFwdMsg", "appendonsend"})

# Outlook desktop (Word HTML) opens the quoted mail with a div carrying only a top border,
# e.g. style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in".
_OUTLOOK_BORDER = re.compile(r"border-top\s*:[^;]*\bsolid\b", re.IGNORECASE)
_HEADER_BLOCK_START = re.compile(
    r"^\s*(?:from|von|de|da|van|fr[åa]n|fra|od|от|lähettäjä|feladó|kimden|差出人|发件人|寄件者)\s*:",
    re.IGNORECASE,
)

_BOUNDED_TEXT = 400  # characters of an element read when recognising a header block


def _bounded_text(element: etree._Element, limit: int = _BOUNDED_TEXT) -> str:
    """The first characters of an element's text, read without walking all of a big subtree."""
    collected: list[str] = []
    size = 0
    for piece in element.itertext():
        collected.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return "".join(collected)[:limit]


def _quote_kind(element: etree._Element) -> str | None:
    element_id = element.get("id") or ""
    # Gmail prefixes the ids of quoted mail ("m_-4417...replyd-reply-above").
    if element_id in _TO_END_IDS or element_id.endswith(MARKER_HTML_ID):
        return _TO_END
    if (
        element.tag == "div"
        and _OUTLOOK_BORDER.search(element.get("style") or "")
        and _HEADER_BLOCK_START.match(COLLAPSIBLE.sub(" ", _bounded_text(element)))
    ):
        return _TO_END
    if classes(element) & _CONTAINED_CLASSES or element_id.startswith("yahoo_quoted"):
        return _CONTAINED
    if element.tag == "blockquote" and (element.get("type") or "").lower() == "cite":
        return _CONTAINED  # Apple Mail, iOS Mail, Thunderbird
    return None


def _elements_in_order(root: etree._Element) -> Iterator[tuple[etree._Element, list[bool]]]:
    """Walk elements in document order; the caller sets flag[0] to skip an element's subtree."""
    stack = [root]
    while stack:
        element = stack.pop()
        if not isinstance(element.tag, str):
            continue
        skip = [False]
        yield element, skip
        if not skip[0]:
            stack.extend(reversed(element))


def _find_quote_starts(root: etree._Element) -> tuple[list[etree._Element], etree._Element | None]:
    """Outermost contained quotes in document order, and the first cut-to-the-end element."""
    contained: list[etree._Element] = []
    for element, skip in _elements_in_order(root):
        kind = _quote_kind(element)
        if kind == _TO_END:
            return contained, element
        if kind == _CONTAINED:
            contained.append(element)
            skip[0] = True  # nested quotes go with their outermost one
    return contained, None


def _trailing_blockquote(root: etree._Element) -> etree._Element | None:
    """The last outermost <blockquote> when no text follows it (a quote under the reply)."""
    last: etree._Element | None = None
    for element, skip in _elements_in_order(root):
        if element.tag == "blockquote":
            skip[0] = True
            style = (element.get("style") or "").replace(" ", "").lower()
            # Gmail's "indent" button makes <blockquote style="margin:0 0 0 40px;border:none">.
            if "border:none" not in style:
                last = element
    if last is None or _text_follows(last):
        return None
    return last


def _text_follows(element: etree._Element) -> bool:
    node: etree._Element | None = element
    while node is not None and node.getparent() is not None:
        if (node.tail or "").strip():
            return True
        for sibling in node.itersiblings():
            if isinstance(sibling.tag, str) and sibling.tag in SKIPPED_TAGS:
                continue
            if any(piece.strip() for piece in sibling.itertext()):
                return True
            if (sibling.tail or "").strip():
                return True
        node = node.getparent()
    return False


def _placeholder(index: int) -> etree._Element:
    mark = etree.Element("replyd-cut")
    mark.set("index", str(index))
    return mark


def _cut_contained(element: etree._Element, index: int) -> etree._Element:
    """Replace the element by a cut mark, keeping the text that follows it."""
    parent = element.getparent()
    mark = _placeholder(index)
    mark.tail, element.tail = element.tail, None
    if parent is None:
        return element
    parent.replace(element, mark)
    return element


def _cut_to_end(element: etree._Element, index: int) -> etree._Element:
    """Move the element and everything after it in document order into a detached holder."""
    holder = lxml.html.Element("div")
    element.addprevious(_placeholder(index))
    node = element
    parent = node.getparent()
    following = list(node.itersiblings())
    holder.append(node)  # moves it, with its tail
    for sibling in following:
        holder.append(sibling)
    node = parent
    while node is not None and node.getparent() is not None:
        above = node.getparent()
        if node.tail:
            _append_text(holder, node.tail)
            node.tail = None
        for sibling in list(node.itersiblings()):
            holder.append(sibling)
        node = above
    return holder


def _append_text(holder: etree._Element, text: str) -> None:
    if len(holder):
        last = holder[-1]
        last.tail = (last.tail or "") + text
    else:
        holder.text = (holder.text or "") + text


def cut_quotes(root: etree._Element) -> list[etree._Element]:
    """Cut every recognised quote out of the tree; return the cut parts in document order."""
    contained, to_end = _find_quote_starts(root)
    if not contained and to_end is None:
        generic = _trailing_blockquote(root)
        contained = [generic] if generic is not None else []
    cuts = [_cut_contained(element, index) for index, element in enumerate(contained)]
    if to_end is not None:
        cuts.append(_cut_to_end(to_end, len(cuts)))
    return cuts
