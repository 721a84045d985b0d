"""Quoted header blocks ("From: … Sent: …"), "Original Message" rules and forward openers."""

from __future__ import annotations

import re

from service.extraction.rules import cap, is_blank

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
