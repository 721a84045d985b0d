"""Attribution lines that introduce a quote: "On <date>, <who> wrote:" and its relatives."""

from __future__ import annotations

import functools
import re

from service.extraction.rules import LINE_CAP, is_quoted, unquote

# How many physical lines an attribution may be wrapped over ("On …, Name <\naddr> wrote:").
ATTRIBUTION_MAX_LINES = 5
ATTRIBUTION_MAX_CHARS = 400

# Verbs clients put at the end of "On <date>, <who> wrote:" in the languages we know of
# (Gmail, Outlook, Apple Mail, Thunderbird, Yahoo and webmail forms).
_WROTE_WORDS = (
    r"wrote|writes|sent|a\s+écrit|a\s+ecrit|schrieb|schreef|geschreven|verzond|escribió|escribio"
    r"|escreveu|escribiu|skrev|skrifaði|napisał\(a\)|napisała|napisał|napisal|написал\(а\)"  # noqa: RUF001
    r"|написала|написал|пишет|пише|написав|ha\s+scritto|scrisse|kirjoitti|írta|yazdı|έγραψε"  # noqa: RUF001
    r"|rašė|napsal|napísal|a\s+scris|napisao|je\s+napisal|wrote\s+on|đã\s+viết|kirjutas"
    r"|rakstīja|rašo|piše|написа|pisze|va\s+escriure|ha\s+escrit|menulis|geschrieben"
    r"|כתב|كتب|लिखा|نوشت"
)
# Scripts written without spaces: these verbs follow a digit or a letter directly.
_WROTE_WORDS_UNSPACED = r"写道|寫道|작성|のメッセージ|のメール|쓴\s?글|เขียนว่า"
# "napsal(a)", "написав(ла)", "כתב/ה": a gender ending some clients add to the verb.
_GENDER = r"(?:\(\w{1,3}\)|/\w{1,2})?"
_WROTE_AT_END = re.compile(
    rf"(?:{_WROTE_WORDS}|{_WROTE_WORDS_UNSPACED}){_GENDER}(?:\s+[^\s:]{{1,40}})?$", re.IGNORECASE
)
# A piece of every verb above: a line holding none of them ends in no verb.
_WROTE_HINTS = (
    "wrot", "writ", "sent", "crit", "schr", "gesc", "verz", "escr", "skr", "napi", "napsal",
    "napísal", "напи", "пише", "scri", "kirj", "írta", "yazd", "έγρα", "raš", "rašo",
    "viết", "rakst", "piše", "pisz", "menul", "כתב", "كتب", "लिखा", "نوشت", "写道",
    "寫道", "작성", "のメ", "쓴", "เขียน",
)  # fmt: skip
# The verb and one word after it ("skrev Bob", "napisał(a)") fit in this many characters.
_WROTE_TAIL = 70
_WROTE_INSIDE = re.compile(
    rf"(?<!\w)(?:{_WROTE_WORDS}){_GENDER}(?!\w)|{_WROTE_WORDS_UNSPACED}", re.IGNORECASE
)
# Webmail (Horde, IMP) opens quotes with "Quoting Bob <bob@example.org>:" and translations.
_QUOTING = re.compile(
    r"^(?:quoting|zitat\s+von|citando|citation\s+de|cytuję|citaat\s+van)\s.{1,200}[:\uff1a]$",
    re.IGNORECASE,
)

# Openers after which an attribution may be wrapped over several lines; Gmail in many
# languages opens with a short weekday and the day ("ti 12.", "wt., 12", "вт, 12").
_STRONG_OPENER = re.compile(
    r"^(?:[-=]{2,}\s*)?(?:(?:on|le|am|el|em|op|den|på|w\s+dniu|dnia|il|at|quoting|citando"
    r"|zitat\s+von|στις|vào|pe|dne|dňa|às|pada|في|在|בתאריך)\s|\d"
    r"|[^\W\d]{1,5}[.,]{0,2}\s+\d{1,2}\b.{0,40}\b(?:19|20)\d\d\b)",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
_ENDS_WITH_ADDRESS_COLON = re.compile(r"<[^<>\s]+@[^<>\s]+>\s*[:\uff1a]$")
_ADDRESS_COLON_LINE = re.compile(r"^[^<>\s]+@[^<>\s]+>\s*[:\uff1a]$")
_BRACKETED_ADDRESS = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_ADDRESS = re.compile(r"\S@[\w-]+\.\w|<\s*$")

# Attributions with a date and an address but no verb: "2014-10-17 11:28 GMT+03:00 Bob <\nbob@x>:"
# or "2013/7/20 sam via Meta <info@example.org>".
_DATE_ADDRESS_ATTRIBUTION = re.compile(
    r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b.{0,200}(?:\S@\S|GMT[+-]\d)|"
    r"^\d{1,2}[./]\d{1,2}[./]\d{2,4}\b.{0,200}\S@\S.{0,200}[:>]$",
)


@functools.lru_cache(maxsize=4096)
def ends_with_wrote(text: str) -> int | None:
    """Where a "wrote"-like verb ending the text starts (trailing ":" and dashes ignored).

    Cached: an attribution window looks at each line several times.
    """
    tail = text.rstrip(" \t:\uff1a-")
    window = max(0, len(tail) - _WROTE_TAIL)
    # The verb search tries every position of the window; most lines hold no verb at all.
    lowered = tail[window:].lower()
    if not any(hint in lowered for hint in _WROTE_HINTS):
        return None
    m = _WROTE_AT_END.search(tail, window)
    return None if m is None else m.start()


def attribution_end(lines: list[str], start: int, *, strict: bool = True) -> int | None:
    """End index of an attribution ("On …, X wrote:") starting at ``start``, or None.

    The attribution may be wrapped over a few lines; a date-and-address form without a verb
    counts too. ``strict`` asks for a date, an address or "you" in it; a bare "Bob wrote:"
    only counts where a quote block follows it.
    """
    head = unquote(lines[start])
    if not head or len(head) > ATTRIBUTION_MAX_CHARS:
        return None
    # The address may be on the next line ("… Bob <\nbob@example.com>:").
    if _DATE_ADDRESS_ATTRIBUTION.match(head) and (
        _BRACKETED_ADDRESS.search(head) or head.endswith((":", ">", "<")) or "GMT" in head
    ):
        end = start + 1
        if not head.endswith((":", ">")) and start + 1 < len(lines):
            nxt = unquote(lines[start + 1])
            if nxt.endswith((":", ">")) and "@" in nxt and len(nxt) < 120:
                end = start + 2
        return end
    if _QUOTING.match(head):
        return start + 1
    # Gmail in several languages writes "<date>, Name <address>:" with no verb at all.
    if _DIGIT.search(head):
        if _ENDS_WITH_ADDRESS_COLON.search(head):
            return start + 1
        if head.endswith("<") and start + 1 < len(lines):
            nxt = unquote(lines[start + 1])
            if len(nxt) < 120 and _ADDRESS_COLON_LINE.match(nxt):
                return start + 2
    # Only a head that itself looks like the start of an attribution may wrap onto more lines;
    # otherwise the last line of a paragraph would swallow the attribution below it.
    wraps = _STRONG_OPENER.match(head) is not None or _ADDRESS.search(head) is not None
    may_skip_blank = _STRONG_OPENER.match(head) is not None and re.search(r"\d", head) is not None
    joined = ""
    for j in range(start, min(len(lines), start + ATTRIBUTION_MAX_LINES)):
        if j > start and not wraps:
            return None
        part = unquote(lines[j])
        if not part and not may_skip_blank:
            return None
        # Only a short quoted tail ("> wrote:", ">:") may continue the attribution; some
        # clients quote the last line of a wrapped attribution.
        if (
            j > start
            and is_quoted(lines[j])
            and ends_with_wrote(part) is None
            and not (len(part) <= 40 and part.endswith(":"))
        ):
            return None
        joined = f"{joined} {part}".strip()
        if len(joined) > ATTRIBUTION_MAX_CHARS:
            return None
        if not part:
            continue
        if ends_with_wrote(part) is not None or (
            part.endswith((":", "\uff1a")) and _WROTE_INSIDE.search(joined)
        ):
            if _WROTE_INSIDE.search(joined) and _attribution_shape(joined, strict):
                return j + 1
            return None
        if j > start and len(part) > 100:
            return None
    return None


def _attribution_shape(joined: str, strict: bool) -> bool:
    """Whether a candidate attribution carries what one does: an address, or an opener and a date.

    Prose such as "Here is what you wrote:" has neither; it only counts as an attribution
    (non-strict) when a quote block follows it.
    """
    if "@" in joined or (_STRONG_OPENER.match(joined) and _DIGIT.search(joined)):
        return True
    return not strict and len(joined) <= 120


# Where an attribution glued onto the reply's last line may start: a capitalised opener
# after a space or dashes ("ok On Wed, …", "reply--- On Wed, …").
_GLUED_OPENER = re.compile(r"(?<![^\s-])(?:On|Le|Am|El|Em|Op|Den)\s")
_GLUED_MAX_CHARS = 250


def split_glued_attribution(line: str) -> tuple[str, str] | None:
    """Split "reply On <date>, X wrote:" into the reply and the attribution, or None."""
    if is_quoted(line) or len(line) > LINE_CAP:
        return None
    end = ends_with_wrote(line)
    if end is None:
        return None
    for m in _GLUED_OPENER.finditer(line, max(0, end - _GLUED_MAX_CHARS)):
        reply = line[: m.start()].rstrip(" -")
        attribution = line[m.start() :].strip()
        if reply.strip() and re.search(r"\d", attribution):
            return reply, attribution
    return None
