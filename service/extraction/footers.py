"""Footers below a reply: "Sent from my …" lines, mailing-list footers and disclaimers."""

from __future__ import annotations

import re

from service.extraction.rules import cap

# "Sent from my iPhone" and its relatives, on a line of their own, in the languages phones
# and mail apps write them.
_MOBILE_FOOTER = re.compile(
    r"^[(<\[]*+\s*+(?:"
    r"sent\s+(?:from|via|with|using|by|on)\b.{0,80}"
    r"|get\s+outlook\s+for\b.{0,80}"
    r"|from\s+my\s+(?:iphone|ipad|android|mobile|samsung|galaxy|blackberry|phone)\b.{0,40}"
    r"|\S.{0,30}\s+from\s+mobile"
    r"|via\s+mobile|sent\s+from\s+mobile"
    r"|envoyé\s+(?:de|depuis|à\s+partir\s+de|avec)\s.{0,60}"
    r"|enviado\s+(?:desde|de|do|com|a\s+partir\s+do)\s.{0,60}|enviat\s+des\s.{0,60}"
    r"|inviato\s+(?:da|dal|dalla|con)\s.{0,60}"
    r"|von\s+meinem\s.{0,60}gesendet\.?"
    r"|diese\s+nachricht\s+wurde\s+von\s+meinem\s.{0,80}gesendet\.?"
    r"|gesendet\s+(?:von|mit|vom)\s.{0,60}"
    r"|(?:verzonden|verstuurd)\s+(?:met|vanaf|van(?:af)?\s+mijn|via)\s.{0,60}"
    r"|sendt\s+fra\s.{0,60}|skickat\s+från\s.{0,60}|lähetetty\s.{0,60}"
    r"|odesláno\s+z\s.{0,60}|odoslané\s+z\s.{0,60}|\S{1,30}\s+gönderildi"
    r"|wysłane\s+z\s.{0,60}|wysłano\s+z\s.{0,60}|trimis\s+de\s+pe\s.{0,60}"
    r"|отправлено\s+(?:с|из)\s.{0,60}|надіслано\s+з\s.{0,60}|στάλθηκε\s+από\s.{0,60}"  # noqa: RUF001
    r"|poslano\s+(?:s|sa|iz)\s.{0,60}|elküldve\s.{0,60}|\S{1,30}\s+küldve"
    r"|gửi\s+từ\s.{0,60}|dikirim\s+dari\s.{0,60}|ส่งจาก\s?.{0,60}|נשלח\s?מ.{0,60}"
    r"|تم\s+الإرسال\s+من\s.{0,60}|أرسلت\s+من\s.{0,60}|.{0,40}से\s+भेजा\s+गया"
    r"|從我的\s?\S.{0,30}傳送|从我的\s?\S.{0,30}发送|发自我的\s?\S.{0,30}|来自我的\s?\S.{0,30}"
    r"|\S{1,20}から送信|\S{1,20}에서\s?보냄"
    r"|(?:télécharger|obtenir|obtener|scarica|baixe|obter|pobierz|получить)\s.{0,30}outlook.{0,40}"
    r"|outlook\s+(?:für|voor|pour|para|per)\s+(?:ios|android).{0,20}"
    r")\s*[)>\]]*\s*$",
    re.IGNORECASE,
)

# English "Sent from/with/via …" footers name a device or an app: after the verb come
# product names, device words and linking words, then at most an apology for brevity.
# Anything else makes the line a sentence the person wrote ("Sent by post yesterday, …").
_SENT_HEAD = re.compile(
    r"^[(<\[]*\s*(?:sent\s+(?:from|via|with|using|by|on)|from\s+my|get\s+outlook\s+for)\s+",
    re.IGNORECASE,
)
_APOLOGY = re.compile(
    r"[,;.\-\u2013\u2014(]*\s*(?:please\s+)?(?:excuse|pardon|forgive|sorry\s+for|apologies\s+for)\b.*$",
    re.IGNORECASE,
)
_DEVICE_WORDS = frozenset(
    [
        "my",
        "the",
        "a",
        "an",
        "of",
        "for",
        "on",
        "and",
        "with",
        "using",
        "via",
        "in",
        "from",
        "device",
        "phone",
        "mobile",
        "smartphone",
        "tablet",
        "cell",
        "cellphone",
        "handheld",
        "handy",
        "app",
        "application",
        "mail",
        "email",
        "e-mail",
        "client",
        "network",
        "wireless",
        "secure",
        "encrypted",
        "edition",
        "touch",
        "watch",
        "computer",
        "laptop",
        "desktop",
        "pc",
        "mac",
        "iphone",
        "ipad",
        "android",
        "galaxy",
        "blackberry",
        "outlook",
        "gmail",
        "yahoo",
        "proton",
        "protonmail",
        "aol",
        "samsung",
        "huawei",
        "pixel",
        "ios",
        "ipados",
        "macos",
        "watchos",
        "windows",
        "ipod",
    ]
)
_WORD = re.compile(r"[\w&'\u2019+.-]+")
# Links and bracketed addresses after the app's name ("Sent from Outlook<https://…>").
_LINK = re.compile(r"<[^>]*>?|\S+://\S*|\S+\.(?:com|net|org|io|me|app)\b\S*")


def is_mobile_footer(line: str) -> bool:
    """Whether a line is a "Sent from my iPhone"-style footer (not a sentence about sending)."""
    text = cap(line).strip()
    if len(text) > 120 or _MOBILE_FOOTER.match(text) is None:
        return False
    head = _SENT_HEAD.match(text)
    if head is None:
        return len(text.split()) <= 14
    rest = _LINK.sub(" ", _APOLOGY.sub("", text[head.end() :]))
    for word in _WORD.findall(rest):
        bare = word.strip(".'\u2019-")
        if not bare or bare[0].isupper() or bare[0].isdigit() or bare.lower() in _DEVICE_WORDS:
            continue
        return False
    return True


# Mailing-list and group footers that start the trailing block (Mailman 2 and 3, Google
# Groups in several languages, groups.io, LISTSERV, GitHub and Discourse notifications).
_LIST_FOOTER = re.compile(
    r"^(?:you\s+received\s+this\s+(?:message|email)\s+because\s+you\s+are\s+subscribed"
    r"|to\s+unsubscribe\s+from\s+this\s+(?:group|list|mailing\s+list)"
    r"|--\s*you\s+received\s+this\s+message"
    r"|mailing\s+list$|\S+\s+mailing\s+list(?:\s+--\s+\S+@\S+)?\s*$|unsubscribe:\s|list-unsubscribe"
    r"|to\s+unsubscribe\s+send\s+an\s+e-?mail\s+to|to\s+manage\s+your\s+subscription"
    r"|manage\s+your\s+subscription|groups\.io\s+links:|-=-=-=-=-=-="
    r"|reply\s+to\s+this\s+email\s+directly(?:,|\s+or)\s+view\s+it\s+on"
    r"|you\s+are\s+receiving\s+this\s+because\s+you"
    r"|visit\s+topic\s+or\s+reply\s+to\s+this\s+email"
    r"|sie\s+erhalten\s+diese\s+nachricht,?\s+(?:da|weil)\s+sie\s+.{0,40}(?:google|gruppe)"
    r"|vous\s+recevez\s+ce\s+message\s+car\s+vous\s+êtes\s+abonné"
    r"|(?:recibiste|has\s+recibido)\s+este\s+mensaje\s+porque\s+estás\s+suscrito"
    r"|você\s+recebeu\s+(?:essa|esta)\s+mensagem\s+porque\s+está\s+inscrito"
    r"|hai\s+ricevuto\s+questo\s+messaggio\s+perché\s+sei\s+iscritto"
    r"|je\s+hebt\s+dit\s+bericht\s+ontvangen\s+omdat\s+je\s+(?:bent\s+)?geabonneerd)",
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


def is_list_footer(line: str) -> bool:
    """Whether a line opens a mailing-list footer."""
    return _LIST_FOOTER.match(cap(line).strip()) is not None


def is_disclaimer(line: str) -> bool:
    """Whether a line opens a legal disclaimer."""
    return _DISCLAIMER.match(cap(line)) is not None
