"""Signatures, mobile footers, list footers and contact blocks below the reply."""

from __future__ import annotations

from service.extraction import footers, rules

# Separator rules (dashes, underscores) only start a signature when this little follows them.
_RULE_SIGNATURE_MAX_LINES = 20
_RULE_SIGNATURE_MAX_WIDTH = 100
# Below "-- " or a mobile footer, more than this many lines is more than a signature.
_DELIMITED_SIGNATURE_MAX_LINES = 40


def drop_signature(lines: list[str], span: list[int]) -> list[int]:
    """Drop the signature, mobile footer, list footer or disclaimer below the reply."""
    own = [i for i in span if not rules.is_blank(lines[i])]
    if not own:
        return span
    cut = signature_start(lines, span, own)
    if cut is not None:
        span = [i for i in span if i < cut]
    cut = _contact_block_start(lines, span)
    if cut is not None:
        span = [i for i in span if i < cut]
    return span


def signature_start(lines: list[str], span: list[int], own: list[int]) -> int | None:
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
        if footers.is_mobile_footer(line) and _short_tail(lines, span[pos + 1 :], "--"):
            return _footer_with_name(lines, span, pos)
        if i == first:
            continue
        if rules.is_signature_delimiter(line) and _short_tail(lines, span[pos + 1 :], line):
            return i
        if footers.is_list_footer(line):
            return i
        if footers.is_disclaimer(line) and pos > 0 and rules.is_blank(lines[span[pos - 1]]):
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
    return len(text) <= 2 or any(rules.is_contact(t) or footers.is_list_footer(t) for t in text)


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


def has_own_text(lines: list[str], span: list[int]) -> bool:
    """Whether the span holds unquoted text other than a mobile footer or a delimiter."""
    return any(
        not rules.is_blank(lines[i])
        and not rules.is_quoted(lines[i])
        and not footers.is_mobile_footer(lines[i])
        and not rules.is_signature_delimiter(lines[i])
        for i in span
    )
