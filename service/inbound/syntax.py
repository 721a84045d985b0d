"""SMTP syntax as the edge writes and reads it: enhanced status codes (RFC 3463) added to
aiosmtpd's own replies, and the usual <local@domain> path read without a full parser."""

from __future__ import annotations

import re

from service.inbound.edge import S552_TOO_BIG

# aiosmtpd's own refusals carry no enhanced status code (RFC 3463); these are added to them.
_ENHANCED_FOR = {
    "421": "4.3.2",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.3.1",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "550": "5.7.1",
    "553": "5.1.3",
    "554": "5.3.0",
    "555": "5.5.4",
}
_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")

# A path as nearly every client writes it: <local@domain>, both dot-atoms (RFC 5321 4.1.2),
# then nothing or parameters after a space. Anything else (quoted local parts, address
# literals, comments, source routes, the null path) goes to aiosmtpd's full parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_PATH = re.compile(
    rf"<((?:{_ATOM}(?:\.{_ATOM})*)@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
    # Parameters: printable ASCII without "(" (a comment), after spaces only.
    r"(?:\Z| +(?=[!-'*-~]))([ -'*-~]*)\Z"
)


def with_enhanced_code(reply: str, max_message_bytes: int) -> str:
    """A refusal line with an enhanced status code, as every reply of ours has."""
    code, _, text = reply.partition(" ")
    if code == "552" and text.startswith("Error"):
        return S552_TOO_BIG.format(limit=max_message_bytes)
    if code not in _ENHANCED_FOR or _ENHANCED.match(text.split(" ", 1)[0]):
        return reply
    return f"{code} {_ENHANCED_FOR[code]} {text}"
