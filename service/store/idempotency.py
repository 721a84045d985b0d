"""Requests made with an Idempotency-Key, remembered a day: a retry gets the first answer again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.store.models import IdempotencyKey

KEEP_FOR = timedelta(hours=24)
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Answer:
    """What a request was answered: its HTTP status and JSON body."""

    status: int
    body: str


class KeyReused(Exception):
    """The key was already used, within the day, for a different request."""


def request_fingerprint(*parts: str) -> str:
    """A digest of what a request asks (method, path, canonical body), to tell retries from
    new requests that reuse a key."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def recall(session: Session, key: str, fingerprint: str, now: datetime) -> Answer | None:
    """The answer a request with this key got within the day; KeyReused if that request was
    a different one; None when the key is new (or its day is over)."""
    row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == key))
    if row is None:
        return None
    if row.created_at <= now - KEEP_FOR:
        session.delete(row)
        session.flush()
        return None
    if row.fingerprint != fingerprint:
        raise KeyReused(key)
    return Answer(row.status, row.response)


def remember(session: Session, key: str, fingerprint: str, answer: Answer, now: datetime) -> None:
    """Keep the answer for the key, in the transaction that made it (and drop keys whose day
    is over, so the table holds one day of requests)."""
    forget_expired(session, now)
    session.add(
        IdempotencyKey(
            key=key,
            fingerprint=fingerprint,
            status=answer.status,
            response=answer.body,
            created_at=now,
        )
    )
    session.flush()


def forget_expired(session: Session, now: datetime) -> int:
    """Delete keys older than a day; how many."""
    result = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at <= now - KEEP_FOR)
    )
    return int(getattr(result, "rowcount", 0) or 0)
