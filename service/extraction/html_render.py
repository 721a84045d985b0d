"""Renders an HTML element tree as the plain text a reader sees (blocks, lists, links, quotes)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from lxml import etree

# Subtrees a browser does not show as text.
SKIPPED_TAGS = frozenset(
    {
        "head",
        "script",
        "style",
        "title",
        "meta",
        "link",
        "noscript",
        "template",
        "object",
        "embed",
        "iframe",
        "svg",
        "math",
        "xml",
        "select",
        "textarea",
        "button",
    }
)
BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "html",
        "li",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
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
COLLAPSIBLE = re.compile(r"[ \t\n\r\f]+")
# Private-use characters stand for the cut points while the text is rendered, and open the
# lines of a quote and of an attribution when quotes are marked instead of cut.
CUT_MARK = "\ue000"
QUOTE_MARK = "\ue001"
ATTRIBUTION_MARK = "\ue002"
# Attributes set on elements to be rendered as quoted lines or as attribution lines.
QUOTE_ATTRIBUTE = "data-replyd-quote"
ATTRIBUTION_ATTRIBUTE = "data-replyd-attribution"


def classes(element: etree._Element) -> set[str]:
    """The element's class names."""
    return set((element.get("class") or "").split())


class _TextBuilder:
    """Lines of text built the way a browser lays out blocks, line breaks and white space."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current: list[str] = []
        self.has_content = False  # the current line holds something (an &nbsp; counts)
        self.blank_before_next = False
        self.link_text: list[str] | None = None
        self.quote_depth = 0  # marked quotes the current line is inside
        self.attribution_depth = 0
        self.line_mark = ""

    def _open_line(self) -> None:
        if not self.has_content:
            if self.blank_before_next and self.lines and self.lines[-1]:
                self.lines.append("")
            self.line_mark = (ATTRIBUTION_MARK if self.attribution_depth else "") + (
                QUOTE_MARK * self.quote_depth
            )
        self.blank_before_next = False

    def text(self, value: str) -> None:
        value = COLLAPSIBLE.sub(" ", value)
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
        self.lines.append(self.line_mark + "".join(self.current))
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
        if any(name.startswith("Mso") for name in classes(element)):
            return False
        if _NO_MARGIN_STYLE.search(element.get("style") or ""):
            return False
    return True


def _is_hidden(element: etree._Element, tag: str) -> bool:
    return (
        not tag
        or tag in SKIPPED_TAGS
        or element.get("hidden") is not None
        or bool(_HIDDEN_STYLE.search(element.get("style") or ""))
    )


def render(root: etree._Element) -> str:
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
                out.raw_line(CUT_MARK + (element.get("index") or "0"))
            elif tag == "br":
                out.line_break()
            elif tag == "img":
                if element.get("data-emoji") and element.get("alt"):
                    out.text(element.get("alt") or "")
            elif tag in BLOCK_TAGS:
                out.block(spaced=_is_spaced(element) and not (tag in ("ul", "ol") and lists))
                if element.get(QUOTE_ATTRIBUTE) is not None:
                    out.quote_depth += 1
                if element.get(ATTRIBUTION_ATTRIBUTE) is not None:
                    out.attribution_depth += 1
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
            if tag in BLOCK_TAGS:
                out.block(spaced=_is_spaced(element) and not (tag in ("ul", "ol") and lists))
                if element.get(QUOTE_ATTRIBUTE) is not None:
                    out.quote_depth -= 1
                if element.get(ATTRIBUTION_ATTRIBUTE) is not None:
                    out.attribution_depth -= 1
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


def tidy(text: str) -> str:
    """Plain spaces for no-break spaces, at most one blank line in a row, no outer blank lines."""
    lines = [_tidy_line(line) for line in text.split("\n")]
    tidy: list[str] = []
    for line in lines:
        if not line and (not tidy or not tidy[-1]):
            continue
        tidy.append(line)
    return "\n".join(tidy).strip("\n")
