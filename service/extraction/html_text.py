"""Cuts the quoted thread out of an HTML reply by mail-client structure, then renders clean text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import lxml.html
from lxml import etree

from service.extraction.marker import MARKER_HTML_ID


@dataclass(frozen=True)
class HtmlReply:
    """The reply text of an HTML part, the text cut from it, and whether a quote was found."""

    text: str
    elided: str
    found_quote: bool


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

# fmt: off
# Subtrees a browser does not show as text.
_SKIPPED_TAGS = frozenset(
    {
        "head", "script", "style", "title", "meta", "link", "noscript", "template", "object",
        "embed", "iframe", "svg", "math", "xml", "select", "textarea", "button",
    }
)
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
        "details", "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure",
        "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "html",
        "li", "main", "menu", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody",
        "tfoot", "thead", "tr", "ul",
    }
)
# fmt: on
# Block tags with a vertical margin in a browser's default style: a blank line around them.
_SPACED_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "dl", "table", "ul", "ol"}
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_PRE_STYLE = re.compile(r"white-space\s*:\s*pre", re.IGNORECASE)
_NO_MARGIN_STYLE = re.compile(r"margin(?:-bottom)?\s*:\s*0(?:[a-z]{1,3}|%)?\s*(?:;|$)", re.I)
_COLLAPSIBLE = re.compile(r"[ \t\n\r\f]+")
# Private-use characters stand for the cut points while the text is rendered.
_CUT_MARK = "\ue000"
# Zero-width characters, and the C0 controls XML cannot hold: lxml refuses to move text
# containing them from one element to another.
_INVISIBLE = re.compile("[\u200b\ufeff\ue000\ue001\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DOCUMENT_END = re.compile(r"</\s*(?:body|html)\s*>", re.IGNORECASE)
_MAX_ATTRIBUTION_LOOKBACK = 3  # lines above a cut point searched for an attribution
_BOUNDED_TEXT = 400  # characters of an element read when recognising a header block


def html_to_reply_text(html: str) -> HtmlReply:
    """Cut the quoted thread from an HTML reply by client structure; return it as plain text."""
    root = _parse(html)
    if root is None:
        return HtmlReply(text="", elided="", found_quote=False)
    cuts = _cut_quotes(root)
    text = _render(root)
    if not cuts:
        return HtmlReply(text=_tidy(text), elided="", found_quote=False)
    reply, attributions = _remove_attributions(text)
    elided = [
        "\n".join([*attributions.get(index, []), _tidy(_render(cut))]).strip()
        for index, cut in enumerate(cuts)
    ]
    return HtmlReply(
        text=_tidy(reply),
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


# --- finding and cutting the quote --------------------------------------------------------


def _classes(element: etree._Element) -> set[str]:
    return set((element.get("class") or "").split())


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
        and _HEADER_BLOCK_START.match(_COLLAPSIBLE.sub(" ", _bounded_text(element)))
    ):
        return _TO_END
    if _classes(element) & _CONTAINED_CLASSES or element_id.startswith("yahoo_quoted"):
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
            if isinstance(sibling.tag, str) and sibling.tag in _SKIPPED_TAGS:
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


def _cut_quotes(root: etree._Element) -> list[etree._Element]:
    """Cut every recognised quote out of the tree; return the cut parts in document order."""
    contained, to_end = _find_quote_starts(root)
    if not contained and to_end is None:
        generic = _trailing_blockquote(root)
        contained = [generic] if generic is not None else []
    cuts = [_cut_contained(element, index) for index, element in enumerate(contained)]
    if to_end is not None:
        cuts.append(_cut_to_end(to_end, len(cuts)))
    return cuts


def _remove_attributions(text: str) -> tuple[str, dict[int, list[str]]]:
    """Drop cut marks, and the "On ... wrote:" line right above each (kept per cut)."""
    lines: list[str] = []
    attributions: dict[int, list[str]] = {}
    for line in text.split("\n"):
        if not line.startswith(_CUT_MARK):
            lines.append(line)
            continue
        index = int(line[len(_CUT_MARK) :] or 0)
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


# --- rendering ----------------------------------------------------------------------------


class _TextBuilder:
    """Lines of text built the way a browser lays out blocks, line breaks and white space."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current: list[str] = []
        self.has_content = False  # the current line holds something (an &nbsp; counts)
        self.blank_before_next = False
        self.link_text: list[str] | None = None

    def _open_line(self) -> None:
        if not self.has_content and self.blank_before_next and self.lines and self.lines[-1]:
            self.lines.append("")
        self.blank_before_next = False

    def text(self, value: str) -> None:
        value = _COLLAPSIBLE.sub(" ", value)
        if not value:
            return
        if not self.has_content or (self.current and self.current[-1].endswith(" ")):
            value = value.lstrip(" ")
            if not value:
                return
        self._open_line()
        self.current.append(value)
        self.has_content = True
        if self.link_text is not None:
            self.link_text.append(value)

    def prefix(self, value: str) -> None:
        """Start a line with a list bullet (kept verbatim, indentation included)."""
        self._open_line()
        self.current.append(value)
        self.has_content = True

    def preformatted(self, value: str) -> None:
        for number, piece in enumerate(value.replace("\r\n", "\n").split("\n")):
            if number:
                self.line_break()
            if piece:
                self._open_line()
                self.current.append(piece)
                self.has_content = True

    def line_break(self) -> None:
        self._open_line()
        self.lines.append("".join(self.current))
        self.current = []
        self.has_content = False

    def block(self, *, spaced: bool = False) -> None:
        if self.has_content:
            self.line_break()
        if spaced:
            self.blank_before_next = True

    def raw_line(self, value: str) -> None:
        self.block()
        self.lines.append(value)
        self.blank_before_next = False

    def result(self) -> str:
        self.block()
        return "\n".join(self.lines)


def _link_target(href: str) -> str:
    href = href.strip()
    parts = urlsplit(href)
    if parts.hostname and parts.hostname.endswith("safelinks.protection.outlook.com"):
        # Outlook rewrites every link to its scanner; the real address is in ?url=.
        original = parse_qs(parts.query).get("url")
        if original:
            return original[0]
    return href


def _same_link(text: str, href: str) -> bool:
    def normal(value: str) -> str:
        value = value.strip().lower()
        value = re.sub(r"^(?:https?://|mailto:|ftp://)", "", value)
        value = re.sub(r"^www\.", "", value)
        return value.rstrip("/")

    return normal(text) == normal(href)


def _link_suffix(href: str, text: str) -> str:
    target = _link_target(href)
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https", "ftp", "mailto") or not text.strip():
        return ""
    if _same_link(text, target):
        return ""
    shown = target[len("mailto:") :] if scheme == "mailto" else target
    return f" ({shown})"


def _is_spaced(element: etree._Element) -> bool:
    if element.tag not in _SPACED_TAGS:
        return False
    if element.tag == "p":
        # Outlook writes each line as <p class=MsoNormal> with a zero margin.
        if any(name.startswith("Mso") for name in _classes(element)):
            return False
        if _NO_MARGIN_STYLE.search(element.get("style") or ""):
            return False
    return True


def _is_hidden(element: etree._Element, tag: str) -> bool:
    return (
        not tag
        or tag in _SKIPPED_TAGS
        or element.get("hidden") is not None
        or bool(_HIDDEN_STYLE.search(element.get("style") or ""))
    )


def _render(root: etree._Element) -> str:
    """Plain text of an element tree: blocks on their own lines, lists, links with URLs."""
    out = _TextBuilder()
    preformatted = 0
    lists: list[list[int]] = []  # per open list: [is_ordered, next number]
    links: list[tuple[str, int]] = []  # (href, position in link-text buffer)
    closers: list[tuple[etree._Element, str]] = []
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""
        tag = tag.lower()
        hidden = _is_hidden(element, tag)
        if event == "start":
            style = element.get("style") or ""
            if hidden:
                walker.skip_subtree()  # its "end" event still comes, and emits its tail
                continue
            if tag == "replyd-cut":
                out.raw_line(_CUT_MARK + (element.get("index") or "0"))
            elif tag == "br":
                out.line_break()
            elif tag == "img":
                if element.get("data-emoji") and element.get("alt"):
                    out.text(element.get("alt") or "")
            elif tag in _BLOCK_TAGS:
                out.block(spaced=_is_spaced(element) and not (tag in ("ul", "ol") and lists))
                if tag in ("ul", "ol", "menu", "dir"):
                    lists.append([tag == "ol", 1])
                elif tag == "li":
                    depth = max(len(lists) - 1, 0)
                    ordered, number = lists[-1] if lists else [False, 1]
                    if lists:
                        lists[-1][1] += 1
                    out.prefix("  " * depth + (f"{number}. " if ordered else "- "))
            if tag == "pre" or _PRE_STYLE.search(style):
                preformatted += 1
                closers.append((element, "pre"))
            if tag == "a" and element.get("href"):
                if out.link_text is None:
                    out.link_text = []
                links.append((element.get("href") or "", len(out.link_text)))
                closers.append((element, "a"))
            if element.text:
                _emit(out, element.text, preformatted)
        elif hidden:
            if element is not root and element.tail:
                _emit(out, element.tail, preformatted)
        else:
            while closers and closers[-1][0] is element:
                _, kind = closers.pop()
                if kind == "pre":
                    preformatted -= 1
                elif kind == "a":
                    href, start = links.pop()
                    text = "".join((out.link_text or [])[start:])
                    if not links:
                        out.link_text = None
                    suffix = _link_suffix(href, text)
                    if suffix:
                        out.text(suffix)
            if tag in ("ul", "ol", "menu", "dir") and lists:
                lists.pop()
            if tag in _BLOCK_TAGS:
                out.block(spaced=_is_spaced(element) and not (tag in ("ul", "ol") and lists))
            elif tag in ("td", "th"):
                out.text(" ")
            if element is not root and element.tail:
                _emit(out, element.tail, preformatted)
    return out.result()


def _emit(out: _TextBuilder, value: str, preformatted: int) -> None:
    if preformatted:
        out.preformatted(value)
    else:
        out.text(value)


def _tidy_line(line: str) -> str:
    line = line.replace("\u00a0", " ")
    # "-- " is the signature separator; its trailing space is what makes it one.
    return "-- " if line.startswith("-- ") and not line[3:].strip() else line.rstrip()


def _tidy(text: str) -> str:
    """Plain spaces for no-break spaces, at most one blank line in a row, no outer blank lines."""
    lines = [_tidy_line(line) for line in text.split("\n")]
    tidy: list[str] = []
    for line in lines:
        if not line and (not tidy or not tidy[-1]):
            continue
        tidy.append(line)
    return "\n".join(tidy).strip("\n")
