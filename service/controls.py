"""Control characters: removed from text that came from outside, escaped on a terminal."""

from __future__ import annotations

import re

# C0 controls but tab and line feed, DEL, and the C1 controls (U+0080-U+009F): nothing a
# person types, and enough to break XML (the Atom feed), forge terminal output (ESC, CSI)
# or hide text. A carriage return alone is a line end from an old Mac client. U+FFFE and
# U+FFFF are no characters at all, and XML refuses them too.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")
_LINE_BREAKS = re.compile(r"\r\n?")
_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffe\uffff]+")
_NOT_PRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NOT_PRINTABLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def strip_controls(text: str) -> str:
    """Text without control characters; tab and newline kept, CR and CRLF made newlines."""
    return _CONTROLS.sub("", _LINE_BREAKS.sub("\n", text))


def strip_controls_line(text: str) -> str:
    """One line of text (a name, a subject, a title): control characters, tabs and line
    breaks become spaces, and runs of spaces one."""
    return " ".join(_ONE_LINE.sub(" ", text).split())


def escape_controls(text: str) -> str:
    """Text safe to print on a terminal: control characters (but newline and tab) shown as
    escapes like \\x1b, so stored text can never move the cursor or retitle the window."""
    return _NOT_PRINTABLE.sub(_escape, text)


def escape_controls_line(text: str) -> str:
    """One field of a line on a terminal (a name, a reason): as `escape_controls`, and its
    line breaks and tabs escaped too, so it cannot pose as further lines or columns."""
    return _NOT_PRINTABLE_LINE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
