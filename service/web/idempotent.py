"""Idempotency-Key on the HTTP side: read the header, answer a retry as its first request was."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request

from service.store.idempotency import MAX_KEY_CHARS, Answer, KeyReused, recall, request_fingerprint
from service.web.context import ApiError


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key and what the request asks, to recognise its retries."""

    key: str
    fingerprint: str


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key header (bare, or as a quoted structured-field string)."""
    return checked_key(request.headers.get("idempotency-key"))


def checked_key(raw: str | None) -> str | None:
    """An idempotency key as given (header or form field), checked; None when there is none."""
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_KEY_CHARS or any(not "!" <= ch <= "~" for ch in key):
        raise ApiError(
            400,
            f"the Idempotency-Key header must be 1 to {MAX_KEY_CHARS} visible ASCII characters, "
            "e.g. a UUID",
        )
    return key


def retry_identity(key: str | None, slug: str, data: dict[str, Any]) -> Idempotency | None:
    """What recognises retries of a comment request on post `slug` with this body."""
    if key is None:
        return None
    asked = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return Idempotency(key, request_fingerprint("POST", slug, asked))


def answered_before(
    session: Session, idempotency: Idempotency | None, now: datetime
) -> Answer | None:
    """The answer an earlier request with this key got; a 422 ApiError if that request was
    another one; None when there was none."""
    if idempotency is None:
        return None
    try:
        return recall(session, idempotency.key, idempotency.fingerprint, now)
    except KeyReused:
        raise ApiError(
            422,
            "this Idempotency-Key was already used for another request (another post "
            "or body); send a new key with each new comment",
        ) from None


def json_text(value: Any) -> str:
    """JSON as the API writes it (as Starlette's JSONResponse does)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
