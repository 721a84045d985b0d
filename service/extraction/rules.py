"""Line patterns that recognise quoted thread, attribution lines and signatures in a reply."""

from __future__ import annotations

import functools
import re

# Every pattern here is applied to one line cut to this many characters, so a hostile
# megabyte-long line costs no more than an ordinary one.
LINE_CAP = 1000

# How many physical lines an attribution may be wrapped over ("On …, Name <\naddr> wrote:").
ATTRIBUTION_MAX_LINES = 5
ATTRIBUTION_MAX_CHARS = 400

# Verbs clients put at the end of "On <date>, <who> wrote:" in the languages we know of.
_WROTE_WORDS = (
    r"wrote|writes|sent|a\s+écrit|a\s+ecrit|schrieb|schreef|geschreven|verzond|escribió|escribio"
    r"|escreveu|escribiu|skrev|skrifaði|napisał\(a\)|napisała|napisał|napisal|написал\(а\)"  # noqa: RUF001
    r"|написала|написал|пише|написав|ha\s+scritto|scrisse|kirjoitti|írta|yazdı|έγραψε|rašė"  # noqa: RUF001
    r"|napsal|a\s+scris|napisao|je\s+napisal|wrote\s+on|đã\s+viết|kirjutas|rakstīja"
    r"|rašo|piše|написа"
)
# Scripts written without spaces: these verbs follow a digit or a letter directly.
_WROTE_WORDS_UNSPACED = r"写道|寫道|작성|のメッセージ"
_WROTE_AT_END = re.compile(
    rf"(?:{_WROTE_WORDS}|{_WROTE_WORDS_UNSPACED})(?:\s+[^\s:]{{1,40}})?$", re.IGNORECASE
)
# The verb and one word after it ("skrev Bob", "napisał(a)") fit in this many characters.
_WROTE_TAIL = 70
_WROTE_INSIDE = re.compile(
    rf"(?<!\w)(?:{_WROTE_WORDS})(?!\w)|{_WROTE_WORDS_UNSPACED}", re.IGNORECASE
)
# Webmail (Horde, IMP) opens quotes with "Quoting Bob <bob@example.org>:" and translations.
_QUOTING = re.compile(
    r"^(?:quoting|zitat\s+von|citando|citation\s+de|cytuję|citaat\s+van)\s.{1,200}[:\uff1a]$",
    re.IGNORECASE,
)

# Openers after which an attribution may be wrapped over several lines.
_STRONG_OPENER = re.compile(
    r"^(?:-{2,}\s*)?(?:(?:on|le|am|el|em|op|den|på|w\s+dniu|dnia|il|at|quoting|citando"
    r"|zitat\s+von|στις|vào)\s|\d)",
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

# "From:"-style fields of a quoted header block, in the languages Outlook and webmail use.
_FROM_FIELDS = (
    r"from|von|de|da|fra|från|van|od|от|lähettäjä|feladó|kimden|afzender|remitente|expéditeur"
    r"|mittente|frá|saatja|nuo|发件人|寄件者|差出人"
)
_OTHER_FIELDS = (
    r"sent|date|to|cc|bcc|subject|reply-to|gesendet|datum|an|betreff|envoyé|envoye|à|a|objet"
    r"|pour|sujet|inviato|data|oggetto|risposta|sendt|til|emne|kopi|skickat|till|ämne|kopia"
    r"|verzonden|aan|onderwerp|enviado|enviada|para|asunto|assunto|fecha|wysłano|do|temat"
    r"|отправлено|дата|кому|тема|lähetetty|vastaanottaja|aihe|elküldve|címzett|tárgy"
    r"|gönderildi|kime|konu|发送时间|收件人|主题|日付|宛先|件名|odesláno|komu|předmět"
)
_FIELD = re.compile(
    rf"^[>\s]*+\*{{0,2}}(?P<name>{_FROM_FIELDS}|{_OTHER_FIELDS})\s*\*{{0,2}}\s*[:\uff1a]\s*\*{{0,2}}",
    re.IGNORECASE,
)
_FROM_FIELD = re.compile(rf"^(?:{_FROM_FIELDS}|date|datum|data|fecha|sent)$", re.IGNORECASE)

# "-----Original Message-----" and its translations; "---- Reply Message ----".
_ORIGINAL_MESSAGE = re.compile(
    r"^[>\s*]*+-{2,}\s*(?:original\s+message|reply\s+message|ursprüngliche\s+nachricht"
    r"|antwort\s+nachricht|message\s+d'origine|message\s+original|mensaje\s+original"
    r"|messaggio\s+originale|oprindelig\s+meddelelse|opprinnelig\s+melding"
    r"|ursprungligt\s+meddelande|oorspronkelijk\s+bericht|origineel\s+bericht"
    r"|mensagem\s+original|wiadomość\s+oryginalna|исходное\s+сообщение|alkuperäinen\s+viesti"
    r"|eredeti\s+üzenet|původní\s+zpráva|original)\s*-{2,}[\s*]*$",
    re.IGNORECASE,
)

# Forwarded-message openers: "---------- Forwarded message ---------", "Begin forwarded message:".
_FORWARD = re.compile(
    r"^[>\s*]*+(?:-{2,}\s*(?:forwarded\s+message|weitergeleitete\s+nachricht|message\s+transféré"
    r"|mensaje\s+reenviado|messaggio\s+inoltrato|vidarebefordrat\s+meddelande"
    r"|videresendt\s+(?:melding|meddelelse)|doorgestuurd\s+bericht|mensagem\s+encaminhada"
    r"|wiadomość\s+przekazana|пересылаемое\s+сообщение|välitetty\s+viesti)\s*-{2,}"
    r"|(?:begin\s+forwarded\s+message|forwarded\s+message|début\s+du\s+message\s+réexpédié"
    r"|inizio\s+messaggio\s+inoltrato|anfang\s+der\s+weitergeleiteten\s+nachricht"
    r"|comienzo\s+del\s+mensaje\s+reenviado|início\s+da\s+mensagem\s+reencaminhada"
    r"|doorgestuurd\s+bericht)\s*[:\uff1a]?)[\s*]*$",
    re.IGNORECASE,
)

# A quoted line: "> text", ">text", or a supercite prefix such as "C> " / "Richard> ".
_QUOTE_PREFIX = re.compile(r"^(?:\s*>)+")
_QUOTED = re.compile(r"^(?:>|[ \t]{1,3}>|[A-Za-z]{1,10}>(?:\s|$))")

# Separator lines that carry no text: underscores, dashes, or a mix with spaces and asterisks.
_RULE = re.compile(r"^[\s*]*+(?:_{3,}|-{3,}|={3,})[\s*]*$")
_SIGNATURE_DELIMITER = re.compile(r"^(?:--|-- |—|_{3,}|-{4,})\s*$")

# Invisible or tracking characters some clients leave on a line of their own (U+1427 is a
# Gmail add-on read tracker).
_JUNK_CHARS = " \t\n\r\f\v\xa0\u1427\u200b\u200c\u200d\u2060\ufeff"

# "Sent from my iPhone" and its relatives, on a line of their own.
_MOBILE_FOOTER = re.compile(
    r"^[(<\[]*+\s*+(?:"
    r"sent\s+(?:from|via|with|using|by)\b.{0,80}"
    r"|get\s+outlook\s+for\b.{0,80}"
    r"|from\s+my\s+(?:iphone|ipad|android|mobile|samsung|galaxy|blackberry|phone)\b.{0,40}"
    r"|\S.{0,30}\s+from\s+mobile"
    r"|via\s+mobile|sent\s+from\s+mobile"
    r"|envoyé\s+(?:de|depuis|à\s+partir\s+de)\s.{0,60}"
    r"|enviado\s+(?:desde|de|do|com|a\s+partir\s+do)\s.{0,60}"
    r"|inviato\s+(?:da|dal|dalla|con)\s.{0,60}"
    r"|von\s+meinem\s.{0,60}gesendet\.?"
    r"|diese\s+nachricht\s+wurde\s+von\s+meinem\s.{0,80}gesendet\.?"
    r"|gesendet\s+(?:von|mit|vom)\s.{0,60}"
    r"|(?:verzonden|verstuurd)\s+(?:met|vanaf|van(?:af)?\s+mijn|via)\s.{0,60}"
    r"|sendt\s+fra\s.{0,60}|skickat\s+från\s.{0,60}|lähetetty\s.{0,60}"
    r"|odesláno\s+z\s.{0,60}|\S{1,30}\s+gönderildi|wysłane\s+z\s.{0,60}|отправлено\s+(?:с|из)\s.{0,60}|надіслано\s+з\s.{0,60}"  # noqa: RUF001
    r"|從我的\s?\S.{0,30}傳送|从我的\s?\S.{0,30}发送|发自我的\s?\S.{0,30}|\S{1,20}から送信"
    r")\s*[)>\]]*\s*$",
    re.IGNORECASE,
)

# Mailing-list footers that start the trailing block.
_LIST_FOOTER = re.compile(
    r"^(?:you\s+received\s+this\s+(?:message|email)\s+because\s+you\s+are\s+subscribed"
    r"|to\s+unsubscribe\s+from\s+this\s+group|--\s*you\s+received\s+this\s+message"
    r"|mailing\s+list$|\S+\s+mailing\s+list\s*$|unsubscribe:\s|list-unsubscribe)",
    re.IGNORECASE,
)

# Opening words of a legal disclaimer appended below the reply.
_DISCLAIMER = re.compile(
    r"^[\s*]*+(?:confidentiality\s+notice|disclaimer|important\s+notice|legal\s+notice"
    r"|this\s+(?:e-?mail|message|communication)(?:\s+message)?(?:\s+and\s+any"
    r"\s+(?:attachments?|files))?.{0,40}(?:confidential|privileged|intended\s+(?:solely|only))"
    r"|the\s+information\s+(?:contained\s+)?in\s+this\s+(?:e-?mail|message|communication)"
    r"|if\s+you\s+(?:are\s+not|have\s+received\s+this).{0,40}(?:intended|in\s+error)"
    r"|diese\s+e-?mail\s+(?:enthält|kann)\s+vertrauliche"
    r"|ce\s+(?:message|courriel|e-?mail)\s+(?:et\s+)?.{0,40}confidenti"
    r"|questo\s+messaggio.{0,60}(?:riservat|confidenzial))",
    re.IGNORECASE,
)

# One-line sign-offs that belong to the reply and are kept ("Thanks,", "Best regards", "-Glen").
_SIGN_OFF = re.compile(
    r"^[\s\-\u2013—/~]*+(?:thanks|thank\s+you|thx|cheers|regards|best|kind\s+regards|best\s+regards"
    r"|warm\s+regards|sincerely|yours|greetings|love|ciao|merci|cordialement|gruß|grüße"
    r"|viele\s+grüße|mit\s+freundlichen\s+grüßen|saludos|obrigado|obrigada|grazie|groeten"
    r"|mvh|hilsen|pozdrawiam|с\s+уважением|спасибо)\b.{0,40}$",  # noqa: RUF001
    re.IGNORECASE,
)

# Lines that look like contact details in a signature block.
_CONTACT = re.compile(
    r"[\w.+-]+@[\w-]+\.[\w.-]+|(?:https?://|www\.)\S+|\+?\(?\d{2,4}\)?[\s./-]?\d{2,4}[\s./-]\d{3,5}"
    r"|^\s*(?:tel|phone|mobile|mobil|cell|fax|skype|t|f|m|p|e)\s*[.:]\s*\S",
    re.IGNORECASE,
)

_PERSONAL_CONTACT = re.compile(
    r"[\w.+-]+@[\w-]+\.[\w.-]+|\+?\(?\d{2,4}\)?[\s./-]?\d{2,4}[\s./-]\d{3,5}"
)

_NAME_LIKE = re.compile(r"^[A-ZÀ-Þ][\w'\u2019.-]*(?:\s+[A-ZÀ-Þ][\w'\u2019.-]*){0,3}$")


@functools.lru_cache(maxsize=4096)
def ends_with_wrote(text: str) -> int | None:
    """Where a "wrote"-like verb ending the text starts (trailing ":" and dashes ignored).

    Cached: an attribution window looks at each line several times.
    """
    tail = text.rstrip(" \t:\uff1a-")
    m = _WROTE_AT_END.search(tail, max(0, len(tail) - _WROTE_TAIL))
    return None if m is None else m.start()


def cap(line: str) -> str:
    """Return the part of a line the patterns look at."""
    return line[:LINE_CAP]


def is_blank(line: str) -> bool:
    """Whether a line holds nothing visible (tracking characters count as nothing)."""
    return not line.strip(_JUNK_CHARS)


def is_quoted(line: str) -> bool:
    """Whether a line carries a quotation prefix such as "> "."""
    return _QUOTED.match(line) is not None


def unquote(line: str) -> str:
    """Strip quotation prefixes and surrounding whitespace from a line."""
    return _QUOTE_PREFIX.sub("", cap(line), count=1).strip()


def is_rule(line: str) -> bool:
    """Whether a line is a bare separator rule (underscores, dashes, equals signs)."""
    return _RULE.match(cap(line)) is not None


def is_original_message(line: str) -> bool:
    """Whether a line is "-----Original Message-----" or a translation of it."""
    return _ORIGINAL_MESSAGE.match(cap(line)) is not None


def is_forward(line: str) -> bool:
    """Whether a line opens a forwarded message."""
    return _FORWARD.match(cap(line)) is not None


def header_field(line: str) -> str | None:
    """The lower-cased field name if the line is a quoted-header field like "Sent: …"."""
    m = _FIELD.match(cap(line))
    return m.group("name").lower() if m else None


def header_block_end(lines: list[str], start: int) -> int | None:
    """End index of an Outlook-style header block starting at ``start``, or None if not one.

    A block needs a From- or Date-like field first and at least one more field within the next
    few lines; wrapped values and blank lines between fields are allowed (some clients
    double-space them).
    """
    first = header_field(lines[start])
    if first is None or not _FROM_FIELD.match(first.strip("*")):
        return None
    seen = {first}
    end = start + 1
    gap = 0
    i = start + 1
    while i < len(lines) and i < start + 16:
        field = header_field(lines[i])
        if field is not None:
            if field in seen:
                break  # a real header block names each field once
            seen.add(field)
            end = i + 1
            gap = 0
        elif is_blank(lines[i]) or len(lines[i]) < 120:
            gap += 1
            if gap > 3:
                break
        else:
            break
        i += 1
    return end if len(seen) >= 2 else None


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


def is_mobile_footer(line: str) -> bool:
    """Whether a line is a "Sent from my iPhone"-style footer."""
    text = cap(line).strip()
    return len(text) <= 120 and _MOBILE_FOOTER.match(text) is not None


def is_list_footer(line: str) -> bool:
    """Whether a line opens a mailing-list footer."""
    return _LIST_FOOTER.match(cap(line).strip()) is not None


def is_disclaimer(line: str) -> bool:
    """Whether a line opens a legal disclaimer."""
    return _DISCLAIMER.match(cap(line)) is not None


def is_signature_delimiter(line: str) -> bool:
    """Whether a line is a signature delimiter ("-- ", "--", a row of underscores)."""
    return _SIGNATURE_DELIMITER.match(cap(line)) is not None


def is_sign_off(line: str) -> bool:
    """Whether a line is a closing such as "Thanks," or "Best regards"."""
    return _SIGN_OFF.match(cap(line).strip()) is not None


def is_contact(line: str) -> bool:
    """Whether a line holds contact details: an address, a URL or a phone number."""
    return _CONTACT.search(cap(line)) is not None


def is_personal_contact(line: str) -> bool:
    """Whether a line holds an e-mail address or a phone number."""
    return _PERSONAL_CONTACT.search(cap(line)) is not None


def is_name_like(line: str) -> bool:
    """Whether a line could be just a person's name."""
    return _NAME_LIKE.match(cap(line).strip()) is not None


_LINK_ONLY = re.compile(r"^\s*[(<\[]?\s*(?:https?://|www\.|mailto:)\S*\s*[)>\]]?\s*>?\s*$")
_OPEN_PAREN_LINK = re.compile(r"\((?:https?://|mailto:)[^)]*$")


def is_link_only(line: str) -> bool:
    """Whether a line holds nothing but a link (clients wrap long quoted links this way)."""
    return _LINK_ONLY.match(cap(line)) is not None


def opens_paren_link(line: str) -> bool:
    """Whether a line ends inside a "(http://…" link that continues on the next line."""
    return _OPEN_PAREN_LINK.search(cap(line)) is not None


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
