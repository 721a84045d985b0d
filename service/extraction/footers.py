"""Footers below a reply: "Sent from my …" lines, mailing-list footers and disclaimers."""

from __future__ import annotations

import re

from service.extraction.rules import cap

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
