"""Quote blocks in a reply: which go (above or below the reply) and which stay (inline answers)."""

from __future__ import annotations

from typing import NamedTuple

from service.extraction import rules
from service.extraction.attribution import attribution_end
from service.extraction.signature import signature_start
from service.extraction.talon_compat import talon_reply
from service.extraction.thread import is_marker_line, next_nonblank

# How far below a talon cut we look for quoted lines before trusting that cut.
_TALON_CONFIRM_LINES = 8

# A quoted line a client re-wrapped is long; its lost tail is shorter than a full line.
_WRAPPED_MIN_CHARS = 50
_LOST_TAIL_MAX_CHARS = 72
_SENTENCE_END = (".", "?", "!", ":", ";", ")", '"', "\u201d")
# One-word answers that look like a name to the sign-off rules.
_SHORT_ANSWERS = frozenset(
    {
        "yes", "no", "ok", "okay", "sure", "done", "agreed", "correct", "right", "exactly",
        "indeed", "ja", "nein", "oui", "non", "sí", "si", "sim", "não", "tak", "nie", "да", "нет",
    }
)  # fmt: skip
# Lines of a notification's heading ("Ann commented on “Post”:") below its marker.
_NOTIFICATION_HEADING_LINES = 3


def restore_lost_quote_marks(lines: list[str]) -> list[str]:
    """Give back the ">" a client dropped when it re-wrapped a long quoted line.

    The lost tail sits right below a long quoted line that stops mid-sentence, and either
    more quoted lines (or only quote) follow it or it goes on with a lower-case word; a
    person's answer follows a whole quoted sentence and starts one of its own.
    """
    count = len(lines)
    # quote_to_end[i]: from line i on there is nothing but quoted and blank lines.
    quote_to_end = [True] * (count + 1)
    for i in range(count - 1, -1, -1):
        quote_to_end[i] = quote_to_end[i + 1] and (
            rules.is_blank(lines[i]) or rules.is_quoted(lines[i])
        )
    out = list(lines)
    for i in range(1, count):
        line, above = lines[i], out[i - 1]
        if rules.is_blank(line) or rules.is_quoted(line) or not rules.is_quoted(above):
            continue
        text = rules.unquote(above)
        if (
            len(above) < _WRAPPED_MIN_CHARS
            or len(line) > _LOST_TAIL_MAX_CHARS
            or text.endswith(_SENTENCE_END)
            or not (
                (i + 1 < count and rules.is_quoted(lines[i + 1]))
                or quote_to_end[i + 1]
                or line[:1].islower()  # the sentence above goes on
            )
        ):
            continue
        prefix = above[: len(above) - len(above.lstrip("> \t"))]
        out[i] = (prefix if prefix.endswith(" ") else prefix + " ") + line.strip()
    return out


def without_trailing_quote(lines: list[str], span: list[int]) -> list[int]:
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


class _QuoteBlock(NamedTuple):
    """A run of quoted lines and the attribution above it (head == first when there is none)."""

    head: int
    first: int
    last: int
    attributed: bool


def drop_quote_blocks(lines: list[str], span: list[int]) -> list[int]:
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
    signature = signature_start(lines, span, own) if own else None
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
    # Between two quotes even "Yes." is an answer; below the last one it may be a name.
    last_quote = blocks[-1].head
    answers = [i for i in text_at if i < last_quote or is_answer(lines[i])]
    last_answer = answers[-1] if answers else -1
    answered = sum(1 for block in blocks if last_answer >= block.last)
    drop: set[int] = set()
    for block in blocks:
        before = bool(text_at) and text_at[0] < block.head
        after = last_answer >= block.last
        # One quote with the reply below it and nothing above is a bottom-posted reply; two
        # or more quotes each followed by text are inline answers, the first one included.
        bottom_posted = not before and block.attributed and answered == 1
        if not after or bottom_posted:
            # Whole block, above or below the reply, with the blank lines that set it apart.
            stop = block.last
            while stop < hi and rules.is_blank(lines[stop]):
                stop += 1
            drop.update(range(block.head, stop))
        else:
            # Inline answer: keep the quote, drop the attribution (but not the blank line
            # that sets the quote apart from text right above the attribution).
            stop = block.first
            if (
                block.head > span[0]
                and not rules.is_blank(lines[block.head - 1])
                and stop - 1 > block.head
                and rules.is_blank(lines[stop - 1])
            ):
                stop -= 1
            drop.update(range(block.head, stop))
    return [i for i in span if i not in drop]


def is_answer(line: str) -> bool:
    """Whether a line below a quote answers it, rather than signing the message off."""
    text = line.strip()
    if rules.is_sign_off(text):
        return False
    if rules.is_name_like(text):
        # "Yes.", "No!", "Agreed." answer; "Bob" or "Ann Smith" sign.
        return text.endswith((".", "!", "?")) or text.lower() in _SHORT_ANSWERS
    return True


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
            head = pending if pending is not None else first
            # An attribution quoted along with the thread ("> On …, X wrote:") counts too.
            quoted_attribution = attribution_end(lines, first)
            attributed = pending is not None or quoted_attribution is not None
            if quoted_attribution is not None:
                first = min(quoted_attribution, last)
                while first < last and not rules.unquote(lines[first]):
                    first += 1  # the quoted blank line below it
            heading_end = _notification_heading_end(lines, first, last)
            if heading_end is not None:
                first, attributed = heading_end, True
            blocks.append(_QuoteBlock(head, first, last, attributed))
            pending = None
            i = last
            continue
        attribution = attribution_end(lines, i, strict=False)
        if attribution is not None:
            nxt = next_nonblank(lines, attribution, hi)
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


def _notification_heading_end(lines: list[str], first: int, last: int) -> int | None:
    """Where the quoted text of a notification starts, below its marker and heading.

    A quoted notification opens with the marker, then a heading such as "Ann commented on
    “Post”:"; an inline answer keeps the quoted text below them, not them. None when the quote
    holds no marker near its top.
    """
    marker = next((i for i in range(first, min(last, first + 4)) if is_marker_line(lines[i])), None)
    if marker is None:
        return None
    i = marker + 1
    while i < last and not rules.unquote(lines[i]):
        i += 1
    heading = i
    while i < last and rules.unquote(lines[i]) and i - heading < _NOTIFICATION_HEADING_LINES:
        i += 1
    if i > heading and rules.unquote(lines[i - 1]).endswith(":"):
        while i < last and not rules.unquote(lines[i]):
            i += 1
        return i
    return heading


def _continues_quoted_link(lines: list[str], i: int) -> bool:
    """Whether an unquoted line is the wrapped tail of a link in the quoted line above it."""
    return (
        i > 0
        and rules.is_quoted(lines[i - 1])
        and (rules.opens_paren_link(lines[i - 1]) or rules.is_link_only(lines[i]))
    )


def confirm_with_talon(lines: list[str], span: list[int]) -> list[int]:
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
