"""Cuts quoted thread and signature from a reply, keeping what the person typed (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Extraction:
    """The reply a person typed, and what was cut from around it."""

    reply: str
    elided: str


def extract_reply(text: str | None, html: str | None = None, *, quotes_only: bool = False) -> Extraction:
    """Extract the reply from a message's text part (preferred) or HTML part."""
    body = text if text is not None else (html or "")
    from talon import quotations  # deferred: importing talon costs about a second

    reply = quotations.extract_from_plain(body)
    return Extraction(reply=reply.strip(), elided=body[len(reply):].strip())
