"""Quoted header blocks ("From: … Sent: …"), "Original Message" rules and forward openers."""

from __future__ import annotations

import re

from service.extraction.rules import cap, is_blank

# "From:"-style fields of a quoted header block, in the languages Outlook, Apple Mail,
# Samsung Email, GMX/Web.de and webmail write them.
_FROM_FIELDS = (
    r"from|von|de|de\s+la|da|fra|från|van|od|от|від|lähettäjä|feladó|kimden|afzender|remitente"
    r"|expéditeur|mittente|frá|saatja|nuo|发件人|寄件者|差出人|보낸\s?사람|من|מאת|από|šalje|từ"
    r"|dari|จาก|प्रेषक|فرستنده"
)
# Date-like fields, which some clients put first (GMX and Web.de open with "Gesendet:").
_SENT_FIELDS = (
    r"sent|date|gesendet|datum|data|fecha|envoyé|envoye|enviado|enviado\s+el|enviada|inviato"
    r"|verzonden|skickat|sendt|wysłano|odesláno|odoslané|отправлено|надіслано|lähetetty"
    r"|elküldve|gönderildi|gönderilme\s+tarihi|trimis|enviat|στάλθηκε|poslano|đã\s+gửi"
    r"|dikirim|发送时间|寄件日期|送信日時|日付|보낸\s?날짜|تاريخ\s+الإرسال|נשלח|ส่ง|भेजा\s+गया"
    r"|时间|日期|päivämäärä|dátum|дата|ημερομηνία"
)
_OTHER_FIELDS = (
    r"to|cc|bcc|subject|reply-to|an|betreff|à|a|objet|pour|sujet|oggetto|risposta|til|emne|kopi"
    r"|till|ämne|kopia|aan|onderwerp|para|asunto|assunto|do|temat|кому|тема|vastaanottaja|aihe"
    r"|kopio|címzett|tárgy|másolat|kime|konu|bilgi|收件人|主题|抄送|收件者|主旨|副本|宛先|件名"
    r"|komu|předmět|predmet|kópia|către|subiect|per\s+a|assumpte|προς|θέμα|κοιν|prima|đến"
    r"|chủ\s+đề|kepada|perihal|ถึง|เรื่อง|प्रति|विषय|إلى|الموضوع|אל|נושא|받는\s?사람|제목|참조"
    r"|копия|копія|mottaker|kopie"
)
_FIELD = re.compile(
    rf"^[>\s]*+\*{{0,2}}(?P<name>{_FROM_FIELDS}|{_SENT_FIELDS}|{_OTHER_FIELDS})\s*\*{{0,2}}"
    r"\s*[:\uff1a]\s*\*{0,2}",
    re.IGNORECASE,
)
_FROM_FIELD = re.compile(rf"^(?:{_FROM_FIELDS}|{_SENT_FIELDS})$", re.IGNORECASE)

# "-----Original Message-----" and its translations (Outlook, Samsung Email, Zimbra, Horde,
# QQ Mail), framed by dashes, equals signs or underscores; "----- Message from X -----".
_ORIGINAL_TEXT = (
    r"original\s+message|reply\s+message|ursprüngliche\s+nachricht|originalnachricht"
    r"|ursprüngliche\s+mail|antwort\s+nachricht|message\s+d'origine|message\s+original"
    r"|mensaje\s+original|messaggio\s+originale|oprindelig\s+meddelelse|oprindelig\s+besked"
    r"|opprinnelig\s+melding|ursprungligt\s+meddelande|oorspronkelijk\s+bericht"
    r"|origineel\s+bericht|mensagem\s+original|wiadomość\s+oryginalna|oryginalna\s+wiadomość"
    r"|исходное\s+сообщение|оригинальное\s+сообщение|початкове\s+повідомлення"
    r"|оригінальне\s+повідомлення|alkuperäinen\s+viesti|eredeti\s+üzenet|původní\s+zpráva"
    r"|pôvodná\s+správa|mesaj\s+original|mesajul\s+original|özgün\s+ileti|orijinal\s+mesaj"
    r"|orijinal\s+ileti|αρχικό\s+μήνυμα|元のメッセージ|原始邮件|原始郵件|邮件原件|원본\s?메시지"
    r"|الرسالة\s+الأصلية|הודעה\s+מקורית|missatge\s+original|izvorna\s+poruka"
    r"|originalna\s+poruka|thư\s+gốc|pesan\s+asli|ข้อความต้นฉบับ|मूल\s+संदेश|original"
    r"|(?:message\s+from|nachricht\s+von|message\s+de|mensaje\s+de|messaggio\s+da"
    r"|bericht\s+van|mensagem\s+de|wiadomość\s+od|сообщение\s+от|meddelande\s+från)\s.{1,120}?"
)
_ORIGINAL_MESSAGE = re.compile(
    rf"^[>\s*]*+[-=_]{{2,}}\s*(?:{_ORIGINAL_TEXT})\s*[-=_]{{2,}}[\s*]*$",
    re.IGNORECASE,
)

# Forwarded-message openers: "---------- Forwarded message ---------", "Begin forwarded message:".
_FORWARD = re.compile(
    r"^[>\s*]*+(?:[-=]{2,}\s*(?:forwarded\s+message|weitergeleitete\s+nachricht|message\s+transféré"
    r"|mensaje\s+reenviado|messaggio\s+inoltrato|vidarebefordrat\s+meddelande"
    r"|videresendt\s+(?:melding|meddelelse)|doorgestuurd\s+bericht|mensagem\s+encaminhada"
    r"|wiadomość\s+przekazana|przekazana\s+wiadomość|пересылаемое\s+сообщение"
    r"|пересланное\s+сообщение|välitetty\s+viesti|přeposlaná\s+zpráva|továbbított\s+üzenet"
    r"|iletilen\s+ileti|προωθημένο\s+μήνυμα|転送されたメッセージ|转发的邮件|전달된\s?메시지"
    r"|missatge\s+reenviat|mesaj\s+redirecționat|proslijeđena\s+poruka|pesan\s+terusan)\s*[-=]{2,}"
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


def is_from_field(name: str) -> bool:
    """Whether a field name (as header_field returns it) can open a quoted header block."""
    return _FROM_FIELD.match(name.strip("*")) is not None


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
