"""Where the quoted thread starts: our marker, quoted header blocks, attributions above text."""

from __future__ import annotations

from service.extraction import footers, headers, rules
from service.extraction.attribution import attribution_end, split_glued_attribution
from service.extraction.marker import MARKER_TEXTS, is_other_marker

# Bounds how often a message that opens with quoted thread is re-examined below that thread.
_MAX_LEADING_SKIPS = 20

_MARKERS = tuple(m.lower() for m in MARKER_TEXTS)
# Cheap test before lower-casing a line: each marker's first two characters, as typed.
_MARKER_HEADS = tuple({m[:2] for m in MARKER_TEXTS})
# Lines longer than this are prose, never another system's marker.
_OTHER_MARKER_SCAN = 200


def split_glued_attributions(lines: list[str]) -> list[str]:
    """Put an attribution glued to the end of a text line ("ok On …, X wrote:") on its own.

    Only done when quoted lines follow, so prose that merely mentions a date and "wrote"
    stays whole.
    """
    out: list[str] = []
    for i, line in enumerate(lines):
        # Most lines are quoted or blank, and neither can hold a glued attribution.
        if line[:1] != ">" and not rules.is_blank(line):
            parts = split_glued_attribution(line)
            nxt = next_nonblank(lines, i + 1, min(len(lines), i + 3)) if parts else None
            if parts is not None and nxt is not None and rules.is_quoted(lines[nxt]):
                out.extend(parts)
                continue
        out.append(line)
    return out


def thread_free_span(lines: list[str], quotes_only: bool) -> tuple[int, int]:
    """The [begin, end) range of lines above our marker and the first quoted-thread header.

    When the message opens with an attribution or header block followed by unquoted text,
    that text is what the person wrote (or forwarded without a note), so it is kept.
    """
    end = _marker_line(lines)
    begin = 0
    for _ in range(_MAX_LEADING_SKIPS):
        cut = _first_thread_header(lines, begin, end, quotes_only)
        if cut is None:
            return begin, end
        start, block_end = cut
        start = _back_over_rules(lines, begin, start)
        if any(not rules.is_blank(lines[i]) for i in range(begin, start)):
            return begin, start
        begin = block_end
    return begin, end


def _marker_line(lines: list[str]) -> int:
    """Index of the first line holding a "reply above this line" marker, or len(lines).

    Quoting prefixes and surrounding spaces do not matter: the marker is found inside the line.
    A quoted marker with the person's own text below its quote does not cut: that person
    wrote below the quote (bottom-posting) or between its lines (inline answers), and the
    quote-block rules drop the quoted notification around what they wrote.
    """
    for i, line in enumerate(lines):
        if is_marker_line(line):
            if rules.is_quoted(line) and _text_below_quote(lines, i):
                return len(lines)
            return i
    return len(lines)


def is_marker_line(line: str) -> bool:
    """Whether a line holds our marker or another system's "reply above this line"."""
    if any(head in line for head in _MARKER_HEADS) and any(
        marker in line.lower() for marker in _MARKERS
    ):
        return True
    return len(line) <= _OTHER_MARKER_SCAN and is_other_marker(line)


def _text_below_quote(lines: list[str], start: int) -> bool:
    """Whether unquoted text other than a footer follows the quote holding line ``start``."""
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if rules.is_blank(line) or rules.is_quoted(line):
            continue
        return not footers.is_mobile_footer(line) and not rules.is_signature_delimiter(line)
    return False


def _first_thread_header(
    lines: list[str], begin: int, end: int, quotes_only: bool
) -> tuple[int, int] | None:
    """(start, end) of the first structure below which everything is quoted thread.

    These are Outlook header blocks, "-----Original Message-----", forwarded-message openers
    (kept whole in ``quotes_only`` mode, as talon does) and attributions followed by unquoted
    text.
    """
    for i in range(begin, end):
        line = lines[i]
        if rules.is_blank(line):
            continue
        if headers.is_forward(line):
            if quotes_only:
                return None
            return i, _skip_headers(lines, i + 1, end)
        if rules.is_quoted(line):
            continue
        if headers.is_original_message(line):
            return i, _skip_headers(lines, i + 1, end)
        block_end = headers.header_block_end(lines, i)
        if block_end is not None:
            return i, min(block_end, end)
        attribution = attribution_end(lines, i, strict=True)
        if attribution is not None and attribution <= end:
            nxt = next_nonblank(lines, attribution, end)
            if nxt is not None and not rules.is_quoted(lines[nxt]):
                return i, attribution
    return None


def _skip_headers(lines: list[str], start: int, end: int) -> int:
    """Index just past the header fields that follow a forward or original-message line."""
    i = start
    while i < end and rules.is_blank(lines[i]):
        i += 1
    block_end = headers.header_block_end(lines, i) if i < end else None
    return min(block_end, end) if block_end is not None else start


def _back_over_rules(lines: list[str], floor: int, start: int) -> int:
    """Move a cut up over the separator rules and blank lines that introduce it."""
    while start > floor and (rules.is_blank(lines[start - 1]) or rules.is_rule(lines[start - 1])):
        start -= 1
    return start


def next_nonblank(lines: list[str], start: int, end: int) -> int | None:
    """Index of the first non-blank line in [start, end), or None."""
    for i in range(start, end):
        if not rules.is_blank(lines[i]):
            return i
    return None
