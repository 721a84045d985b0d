"""Cuts quoted thread and signature from a reply, keeping what the person typed (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from service.extraction import rules as rules
from service.extraction.marker import MARKER_TEXTS
from service.extraction.talon_compat import talon_reply

# Bounds how often a message that opens with quoted thread is re-examined below that thread.
_MAX_LEADING_SKIPS = 20

# How far below a talon cut we look for quoted lines before trusting that cut.
_TALON_CONFIRM_LINES = 8

# Separator rules (dashes, underscores) only start a signature when this little follows them.
_RULE_SIGNATURE_MAX_LINES = 20
_RULE_SIGNATURE_MAX_WIDTH = 100
# Below "-- " or a mobile footer, more than this many lines is more than a signature.
_DELIMITED_SIGNATURE_MAX_LINES = 40

_MARKERS = tuple(m.lower() for m in MARKER_TEXTS)
# Cheap test before lower-casing a line: each marker's first two characters, as typed.
_MARKER_HEADS = tuple({m[:2] for m in MARKER_TEXTS})


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
    has_text = bool(text and text.strip())
    if html and html.strip():
        from service.extraction.html_text import (
            html_to_reply_text,  # deferred: text-only mail skips lxml
        )

        converted = html_to_reply_text(html)
        if converted.found_quote or not has_text:
            inner = extract_body(converted.text, quotes_only=quotes_only)
            return Extraction(inner.reply, _join_elided(converted.elided, inner.elided))
    return extract_body(text or "", quotes_only=quotes_only)


def extract_body(text: str, *, quotes_only: bool = False) -> Extraction:
    """Extract the reply from a plain-text body; ``quotes_only`` keeps signatures."""
    # Layers, most precise first: our marker and the thread headers a fast line scan finds
    # (which bound everything later to the reply's size), quote blocks and their attributions,
    # talon for splitters we do not know (trusted only when quoted lines follow its cut), and
    # last the signature rules.
    lines = _split_glued_attributions(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    keep = [False] * len(lines)
    begin, end = _thread_free_span(lines, quotes_only)
    span = _without_trailing_quote(lines, list(range(begin, end)))
    span = _drop_quote_blocks(lines, span)
    span = _confirm_with_talon(lines, span)
    if not quotes_only:
        unsigned = _drop_signature(lines, span)
        # Never silently empty: if only a "signature" is left, it is what the person wrote.
        if any(not rules.is_blank(lines[i]) for i in unsigned) or not _has_own_text(lines, span):
            span = unsigned
    for i in span:
        keep[i] = True
    reply = _strip_blank_edges([lines[i] for i in span])
    elided = _elided_text(lines, keep)
    return Extraction(reply="\n".join(reply).strip("\n"), elided=elided)


def _split_glued_attributions(lines: list[str]) -> list[str]:
    """Put an attribution glued to the end of a text line ("ok On …, X wrote:") on its own.

    Only done when quoted lines follow, so prose that merely mentions a date and "wrote"
    stays whole.
    """
    out: list[str] = []
    for i, line in enumerate(lines):
        nxt = _next_nonblank(lines, i + 1, min(len(lines), i + 3))
        if nxt is not None and rules.is_quoted(lines[nxt]):
            parts = rules.split_glued_attribution(line)
            if parts is not None:
                out.extend(parts)
                continue
        out.append(line)
    return out


def _thread_free_span(lines: list[str], quotes_only: bool) -> tuple[int, int]:
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
    """Index of the first line holding our "reply above this line" marker, or len(lines).

    Quoting prefixes and surrounding spaces do not matter: the marker is found inside the line.
    """
    for i, line in enumerate(lines):
        if any(head in line for head in _MARKER_HEADS) and any(
            marker in line.lower() for marker in _MARKERS
        ):
            return i
    return len(lines)


def _without_trailing_quote(lines: list[str], span: list[int]) -> list[int]:
    """Drop a long quoted run at the very end at once, so a deep thread costs one pass.

    Three or more quoted lines below the last unquoted line are cut by the quote-block rules
    anyway; cutting them here keeps the later passes proportional to the reply.
    """
    last_text = None
    quoted = 0
    for pos in range(len(span) - 1, -1, -1):
        line = lines[span[pos]]
        if rules.is_blank(line):
            continue
        if not rules.is_quoted(line):
            last_text = pos
            break
        quoted += 1
    if quoted < 3:
        return span
    return [] if last_text is None else span[: last_text + 1]


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
        if rules.is_forward(line):
            if quotes_only:
                return None
            return i, _skip_headers(lines, i + 1, end)
        if rules.is_quoted(line):
            continue
        if rules.is_original_message(line):
            return i, _skip_headers(lines, i + 1, end)
        block_end = rules.header_block_end(lines, i)
        if block_end is not None:
            return i, min(block_end, end)
        attribution = rules.attribution_end(lines, i, strict=True)
        if attribution is not None and attribution <= end:
            nxt = _next_nonblank(lines, attribution, end)
            if nxt is not None and not rules.is_quoted(lines[nxt]):
                return i, attribution
    return None


def _skip_headers(lines: list[str], start: int, end: int) -> int:
    """Index just past the header fields that follow a forward or original-message line."""
    i = start
    while i < end and rules.is_blank(lines[i]):
        i += 1
    block_end = rules.header_block_end(lines, i) if i < end else None
    return min(block_end, end) if block_end is not None else start


def _back_over_rules(lines: list[str], floor: int, start: int) -> int:
    """Move a cut up over the separator rules and blank lines that introduce it."""
    while start > floor and (rules.is_blank(lines[start - 1]) or rules.is_rule(lines[start - 1])):
        start -= 1
    return start


def _next_nonblank(lines: list[str], start: int, end: int) -> int | None:
    """Index of the first non-blank line in [start, end), or None."""
    for i in range(start, end):
        if not rules.is_blank(lines[i]):
            return i
    return None


class _QuoteBlock(NamedTuple):
    """A run of quoted lines and the attribution above it (head == first when there is none)."""

    head: int
    first: int
    last: int
    attributed: bool


def _drop_quote_blocks(lines: list[str], span: list[int]) -> list[int]:
    """Drop quote blocks above or below the reply and the attributions that introduce them.

    A quote block between two pieces of the person's text is an inline answer: it stays, only
    its attribution goes. A lone short quote with no attribution is kept, as talon does,
    since people type "> " for emphasis too.
    """
    blocks = _quote_blocks(lines, span)
    if not blocks:
        return span
    hi = span[-1] + 1
    quoted_count = sum(1 for i in span if rules.is_quoted(lines[i]))
    if not any(block.attributed for block in blocks) and quoted_count < 3:
        return span
    heads = {i for block in blocks for i in range(block.head, block.first)}
    inside = {i for block in blocks for i in range(block.first, block.last)}
    own = [i for i in span if not rules.is_blank(lines[i])]
    signature = _signature_start(lines, span, own) if own else None
    # Only substantive text below a quote makes it an inline answer; a sign-off, a name or a
    # signature under the thread does not.
    text_at = [
        i
        for i in span
        if not rules.is_blank(lines[i])
        and not rules.is_quoted(lines[i])
        and i not in heads
        and i not in inside
        and (signature is None or i < signature)
    ]
    answers = [
        i for i in text_at if not rules.is_sign_off(lines[i]) and not rules.is_name_like(lines[i])
    ]
    drop: set[int] = set()
    for block in blocks:
        before = bool(text_at) and text_at[0] < block.head
        after = bool(answers) and answers[-1] >= block.last
        if not after or (not before and block.attributed):
            # Whole block, above or below the reply, with the blank lines that set it apart.
            stop = block.last
            while stop < hi and rules.is_blank(lines[stop]):
                stop += 1
            drop.update(range(block.head, stop))
        else:
            # Inline answer: keep the quote, drop the attribution.
            drop.update(range(block.head, block.first))
    return [i for i in span if i not in drop]


def _quote_blocks(lines: list[str], span: list[int]) -> list[_QuoteBlock]:
    """The quote blocks in a contiguous span, each with the attribution that introduces it."""
    blocks: list[_QuoteBlock] = []
    if not span:
        return blocks
    lo, hi = span[0], span[-1] + 1
    i = lo
    pending: int | None = None  # start of an attribution waiting for its quote block
    while i < hi:
        line = lines[i]
        if rules.is_blank(line):
            i += 1
            continue
        if rules.is_quoted(line):
            first, last, j = i, i + 1, i + 1
            while j < hi and (
                rules.is_quoted(lines[j])
                or rules.is_blank(lines[j])
                or _continues_quoted_link(lines, j)
            ):
                if not rules.is_blank(lines[j]):
                    last = j + 1
                j += 1
            # An attribution quoted along with the thread ("> On …, X wrote:") counts too.
            attributed = pending is not None or rules.attribution_end(lines, first) is not None
            head = pending if pending is not None else first
            blocks.append(_QuoteBlock(head, first, last, attributed))
            pending = None
            i = last
            continue
        attribution = rules.attribution_end(lines, i, strict=False)
        if attribution is not None:
            nxt = _next_nonblank(lines, attribution, hi)
            if nxt is None:
                # An attribution left over at the end (its quote was cut at our marker).
                blocks.append(_QuoteBlock(i, attribution, attribution, True))
                i = attribution
                continue
            if rules.is_quoted(lines[nxt]):
                pending = i
                i = attribution
                continue
        pending = None
        i += 1
    return blocks


def _continues_quoted_link(lines: list[str], i: int) -> bool:
    """Whether an unquoted line is the wrapped tail of a link in the quoted line above it."""
    return (
        i > 0
        and rules.is_quoted(lines[i - 1])
        and (rules.opens_paren_link(lines[i - 1]) or rules.is_link_only(lines[i]))
    )


def _confirm_with_talon(lines: list[str], span: list[int]) -> list[int]:
    """Let talon cut at a splitter our rules do not know, if quoted lines follow that cut.

    talon only sees what our rules kept, which is small, so its superlinear cases stay cheap;
    its cut is taken only where it falls on a line boundary with quoted lines just below.
    """
    if not span or not any(rules.is_quoted(lines[i]) for i in span):
        return span
    body = "\n".join(lines[i] for i in span)
    reply = talon_reply(body)
    if reply is None:
        return span
    reply = reply.strip()
    stripped = body.lstrip()
    if not reply or len(reply) >= len(stripped.rstrip()) or not stripped.startswith(reply):
        return span
    cut = len(body) - len(stripped) + len(reply)
    rest = body[cut:]
    if rest.split("\n", 1)[0].strip():
        return span  # talon cut inside a line: not a cut we can map back
    k = body.count("\n", 0, cut) + 1
    tail = [i for i in span[k:] if not rules.is_blank(lines[i])][:_TALON_CONFIRM_LINES]
    if (
        tail
        and not rules.is_quoted(lines[tail[0]])
        and any(rules.is_quoted(lines[i]) for i in tail)
    ):
        return span[:k]
    return span


def _drop_signature(lines: list[str], span: list[int]) -> list[int]:
    """Drop the signature, mobile footer, list footer or disclaimer below the reply."""
    own = [i for i in span if not rules.is_blank(lines[i])]
    if not own:
        return span
    cut = _signature_start(lines, span, own)
    if cut is not None:
        span = [i for i in span if i < cut]
    cut = _contact_block_start(lines, span)
    if cut is not None:
        span = [i for i in span if i < cut]
    return span


def _signature_start(lines: list[str], span: list[int], own: list[int]) -> int | None:
    """Index where a delimited signature or a footer starts, or None.

    Only the last lines can start one (a longer "signature" is a letter), which also keeps
    the tail checks below bounded.
    """
    first = own[0]
    nonblank = [pos for pos, i in enumerate(span) if not rules.is_blank(lines[i])]
    earliest = nonblank[-(_DELIMITED_SIGNATURE_MAX_LINES + 1) :][:1] or [0]
    for pos in range(earliest[0], len(span)):
        i = span[pos]
        line = lines[i]
        if rules.is_quoted(line) or rules.is_blank(line):
            continue
        if rules.is_mobile_footer(line) and _short_tail(lines, span[pos + 1 :], "--"):
            return _footer_with_name(lines, span, pos)
        if i == first:
            continue
        if rules.is_signature_delimiter(line) and _short_tail(lines, span[pos + 1 :], line):
            return i
        if rules.is_list_footer(line):
            return i
        if rules.is_disclaimer(line) and pos > 0 and rules.is_blank(lines[span[pos - 1]]):
            return i
    return None


def _short_tail(lines: list[str], tail: list[int], delimiter: str) -> bool:
    """Whether what follows a delimiter is small enough to be a signature."""
    text = [lines[i] for i in tail if not rules.is_blank(lines[i])]
    if delimiter.strip() in ("--", "—"):
        # The standard "-- " delimiter needs no further evidence, short of a whole letter.
        return len(text) <= _DELIMITED_SIGNATURE_MAX_LINES
    if len(text) > _RULE_SIGNATURE_MAX_LINES or any(
        len(t) > _RULE_SIGNATURE_MAX_WIDTH for t in text
    ):
        return False
    # A rule is also a Markdown horizontal line: below it a signature carries contact details
    # or is a line or two at most.
    return len(text) <= 2 or any(rules.is_contact(t) or rules.is_list_footer(t) for t in text)


def _footer_with_name(lines: list[str], span: list[int], pos: int) -> int:
    """Start of a mobile footer, taking along a lone name line directly above it.

    "Ann Smith\nvia mobile" is one footer; "Thanks,\nAnn\nSent from my iPhone" keeps "Ann".
    """
    i = span[pos]
    if pos < 3:
        return i
    above, gap, before = span[pos - 1], span[pos - 2], span[pos - 3]
    if (
        not rules.is_blank(lines[above])
        and rules.is_name_like(lines[above])
        and rules.is_blank(lines[gap])
        and not rules.is_blank(lines[before])
        and not rules.is_sign_off(lines[before])
        and not rules.is_name_like(lines[before])
    ):
        return above
    return i


def _contact_block_start(lines: list[str], span: list[int]) -> int | None:
    """Start of a trailing block of contact details (name, address, phone, URL), or None.

    A closing such as "Thanks," and the name under it stay; the contact lines go.
    """
    paragraphs: list[list[int]] = []
    current: list[int] = []
    for i in span:
        if rules.is_blank(lines[i]):
            if current:
                paragraphs.append(current)
                current = []
        else:
            current.append(i)
    if current:
        paragraphs.append(current)
    if len(paragraphs) < 2:
        return None
    last = paragraphs[-1]
    if not 2 <= len(last) <= 10:
        return None
    texts = [lines[i].strip() for i in last]
    if any(len(t) > 60 or rules.is_quoted(lines[i]) for t, i in zip(texts, last, strict=True)):
        return None
    contacts = sum(1 for t in texts if rules.is_contact(t))
    # A list of links ends many replies; a signature has an address or a phone number too.
    if contacts < 2 or not any(rules.is_personal_contact(t) for t in texts):
        return None
    if any(t.endswith((":", "?")) for t in texts):
        return None
    if rules.is_sign_off(texts[0]):
        keep = 2 if len(texts) > 2 and rules.is_name_like(texts[1]) else 1
        return last[keep] if keep < len(last) else None
    return last[0]


def _has_own_text(lines: list[str], span: list[int]) -> bool:
    """Whether the span holds unquoted text other than a mobile footer or a delimiter."""
    return any(
        not rules.is_blank(lines[i])
        and not rules.is_quoted(lines[i])
        and not rules.is_mobile_footer(lines[i])
        and not rules.is_signature_delimiter(lines[i])
        for i in span
    )


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
