"""Finds and cuts the quoted original and the signature in HTML by each mail client's markup."""

from __future__ import annotations

import re
from collections.abc import Iterator

import lxml.html
from lxml import etree

from service.extraction import headers
from service.extraction.html_render import (
    ATTRIBUTION_ATTRIBUTE,
    COLLAPSIBLE,
    QUOTE_ATTRIBUTE,
    SKIPPED_TAGS,
    classes,
)
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
        "zmail_extra",  # Zoho Mail
        "tutanota_quote",
        "iosymail",  # Yahoo Mail for iOS
    }
)
_CONTAINED_IDS = frozenset({"zmail_extra", "iosymail", "isReplyContent", "isForwardContent"})
# Attribution holders: inside a quote container, above its blockquote.
_ATTRIBUTION_CLASSES = frozenset({"gmail_attr", "moz-cite-prefix"})
_TO_END_IDS = frozenset(
    {
        MARKER_HTML_ID,
        "divRplyFwdMsg",  # Outlook on the web, desktop and mobile
        "appendonsend",
        "mail-editor-reference-message-container",  # Outlook for Mac, the new Outlook
        "OLK_SRC_BODY_SECTION",  # Outlook for Mac 2011-2016
        "zwchr",  # Zimbra's rule above the quoted mail
        "stopSpelling",  # Hotmail and Outlook Express
    }
)
_TO_END_CLASSES = frozenset({"OutlookMessageHeader"})

# Signature blocks by client: Gmail, Thunderbird, Proton, Outlook on the web and mobile, Apple
# Mail on iOS, Samsung Email, Yahoo for Android, Zoho.
_SIGNATURE_CLASSES = frozenset(
    {
        "gmail_signature",
        "moz-signature",
        "protonmail_signature_block",
        "ms-outlook-mobile-signature",
        "yahoo-signature",
        "zmail_signature_below",
    }
)
_SIGNATURE_IDS = frozenset(
    {
        "Signature",
        "signature",
        "AppleMailSignature",
        "ms-outlook-mobile-signature",
        "composer_signature",
        "ymail_android_signature",
        "Zm-_Id_-Sgn",
    }
)
# Lines of text an element may have and still be a bare "-----Original Message-----" rule.
_SEPARATOR_MAX_CHARS = 120

# Outlook desktop (Word HTML) opens the quoted mail with a div carrying only a top border,
# e.g. style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in".
_OUTLOOK_BORDER = re.compile(r"border-top\s*:[^;]*\bsolid\b", re.IGNORECASE)

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


def _element_id(element: etree._Element) -> str:
    # Outlook on the web prefixes the ids of quoted mail with "x_"; Gmail with "m_<digits>".
    return (element.get("id") or "").removeprefix("x_")


def _quote_kind(element: etree._Element) -> str | None:
    element_id = _element_id(element)
    names = classes(element)
    # Gmail prefixes the ids of quoted mail ("m_-4417...replyd-reply-above").
    if element_id in _TO_END_IDS or element_id.endswith(MARKER_HTML_ID):
        return _TO_END
    if names & _TO_END_CLASSES:
        return _TO_END
    if element.tag in ("div", "p") and _starts_quoted_mail(element):
        return _TO_END
    if (
        names & _CONTAINED_CLASSES
        or element_id in _CONTAINED_IDS
        or element_id.startswith("yahoo_quoted")
        or any(name.endswith("yahoo_quoted") for name in names)  # "ydp…yahoo_quoted"
        or element.get("name") == "quote"  # GMX and Web.de
    ):
        return _CONTAINED
    if element.tag == "blockquote" and (element.get("type") or "").lower() == "cite":
        return _CONTAINED  # Apple Mail, iOS Mail, Thunderbird
    return None


def _starts_quoted_mail(element: etree._Element) -> bool:
    """Whether a div opens the quoted mail: Outlook's bordered header block, or a bare
    "-----Original Message-----" rule (Samsung Email, QQ Mail and others)."""
    text = COLLAPSIBLE.sub(" ", _bounded_text(element)).strip()
    if _OUTLOOK_BORDER.search(element.get("style") or ""):
        field = headers.header_field(text)
        return field is not None and headers.is_from_field(field)
    return len(text) <= _SEPARATOR_MAX_CHARS and headers.is_original_message(text)


def is_signature(element: etree._Element) -> bool:
    """Whether an element is a client's signature block."""
    return (
        bool(classes(element) & _SIGNATURE_CLASSES)
        or _element_id(element) in _SIGNATURE_IDS
        or element.get("data-smartmail") == "gmail_signature"
    )


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


def cut_signatures(root: etree._Element) -> list[etree._Element]:
    """Take every client signature block out of the tree (outside quotes); return them."""
    found: list[etree._Element] = []
    for element, skip in _elements_in_order(root):
        if _quote_kind(element) is not None:
            skip[0] = True
        elif is_signature(element):
            found.append(element)
            skip[0] = True
    for element in found:
        _detach(element)
    return found


def _detach(element: etree._Element) -> None:
    """Take an element out of its tree, leaving the text that followed it in place."""
    parent = element.getparent()
    if parent is None:
        return
    tail, element.tail = element.tail, None
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def quote_starts(root: etree._Element) -> tuple[list[etree._Element], etree._Element | None]:
    """The quotes to cut: outermost contained quotes (or, when the client left no structure,
    the outermost plain blockquotes) and the first cut-to-the-end element."""
    contained, to_end = _find_quote_starts(root)
    if not contained and to_end is None:
        contained = _plain_blockquotes(root)
    return contained, to_end


def _plain_blockquotes(root: etree._Element) -> list[etree._Element]:
    """Outermost blockquotes that quote (Gmail's "indent" blockquote has no border)."""
    found: list[etree._Element] = []
    for element, skip in _elements_in_order(root):
        if element.tag == "blockquote":
            skip[0] = True
            style = (element.get("style") or "").replace(" ", "").lower()
            # Gmail's "indent" button makes <blockquote style="margin:0 0 0 40px;border:none">.
            if "border:none" not in style:
                found.append(element)
    return found


def mark_quotes(quotes: list[etree._Element]) -> None:
    """Flag the quote and attribution elements so the renderer marks their lines.

    Inside a container (Gmail's gmail_quote div) its blockquotes are the quote and its
    gmail_attr the attribution; the person's answers between them stay unmarked. Blockquotes
    nested in a quote are flagged too, so deeper levels get deeper marks.
    """
    for quote in quotes:
        if classes(quote) & _ATTRIBUTION_CLASSES:
            quote.set(ATTRIBUTION_ATTRIBUTE, "")
            continue
        inner = quote.tag == "blockquote"
        for element, skip in _elements_in_order(quote):
            if element.tag == "blockquote":
                element.set(QUOTE_ATTRIBUTE, "")
                inner = True
            elif not inner and classes(element) & _ATTRIBUTION_CLASSES:
                element.set(ATTRIBUTION_ATTRIBUTE, "")
                skip[0] = True
        if not inner:
            quote.set(QUOTE_ATTRIBUTE, "")


def text_after_quotes(root: etree._Element, quotes: list[etree._Element]) -> bool:
    """Whether any visible text comes after the first of the quotes, outside all of them.

    One walk that skips the quotes' subtrees: when it finds nothing, the reply is above the
    quotes and the costlier marked rendering is not needed.
    """
    inside = set(quotes)
    seen = False
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if element in inside:
                seen = True
                # A container (Gmail's gmail_quote div) may hold answers between its quotes.
                if tag == "blockquote" or element.find(".//blockquote") is None:
                    walker.skip_subtree()
            elif _not_own_text(element, tag):
                walker.skip_subtree()
            elif seen and (element.text or "").strip():
                return True
        elif seen and element is not root and (element.tail or "").strip():
            return True
    return False


def _not_own_text(element: etree._Element, tag: str) -> bool:
    """Whether an element's text is not the person's: a quote, an attribution, or unseen."""
    return (
        not tag
        or tag == "blockquote"
        or tag.lower() in SKIPPED_TAGS
        or bool(classes(element) & _ATTRIBUTION_CLASSES)
    )


def unmark_quotes(quotes: list[etree._Element]) -> None:
    """Remove the flags mark_quotes set."""
    for quote in quotes:
        for element in quote.iter():
            if isinstance(element.tag, str):
                element.attrib.pop(QUOTE_ATTRIBUTE, None)
                element.attrib.pop(ATTRIBUTION_ATTRIBUTE, None)


def cut_to_end(element: etree._Element, index: int) -> etree._Element:
    """Cut the element and all that follows it in document order; return the cut part."""
    return _cut_to_end(element, index)


def cut_contained(elements: list[etree._Element]) -> list[etree._Element]:
    """Replace each contained quote by a cut mark numbered by its position; return them."""
    return [_cut_contained(element, index) for index, element in enumerate(elements)]
