"""Line patterns that recognise quoted thread, attribution lines and signatures in a reply."""

from __future__ import annotations

import re

# Every pattern here is applied to one line cut to this many characters, so a hostile
# megabyte-long line costs no more than an ordinary one.
LINE_CAP = 1000

# A quoted line: "> text", ">text", or a supercite prefix such as "C> " / "Richard> ".
_QUOTE_PREFIX = re.compile(r"^(?:\s*>)+")
_QUOTED = re.compile(r"^(?:>|[ \t]{1,3}>|[A-Za-z]{1,10}>(?:\s|$))")

# Separator lines that carry no text: underscores, dashes, or a mix with spaces and asterisks.
_RULE = re.compile(r"^[\s*]*+(?:_{3,}|-{3,}|={3,})[\s*]*$")
_SIGNATURE_DELIMITER = re.compile(r"^(?:--|-- |—|_{3,}|-{4,})\s*$")

# Invisible or tracking characters some clients leave on a line of their own (U+1427 is a
# Gmail add-on read tracker).
_JUNK_CHARS = " \t\n\r\f\v\xa0\u1427\u200b\u200c\u200d\u2060\ufeff"

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
