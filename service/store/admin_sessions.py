"""Operator sessions: opened at login, checked on each admin request, ended at logout or expiry."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from service.store.models import AdminSession

IDLE_LIMIT = timedelta(hours=12)  # an unattended browser stops being the operator overnight
LIFETIME = timedelta(days=7)  # and no session outlives a week, however busy
# Each admin request would otherwise write; a minute's precision is plenty for a 12-hour limit.
TOUCH_AFTER = timedelta(minutes=1)
MAX_COOKIE_CHARS = 100


@dataclass(frozen=True)
class OpenedSession:
    """A new session: the cookie value for the browser, the CSRF value for its forms."""

    cookie: str
    csrf: str


@dataclass(frozen=True)
class LiveSession:
    """A session a request presented, still valid."""

    id: int
    csrf: str
    stale: bool  # last seen more than TOUCH_AFTER ago: touch it


def _id_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def token_tag(api_token: str) -> str:
    """A mark of the API token a session was opened with (derived, so not the token itself)."""
    return hmac.new(api_token.encode(), b"replyd admin session", hashlib.sha256).hexdigest()


def open_session(session: Session, api_token: str, now: datetime) -> OpenedSession:
    """Start an operator session (and clear out expired ones); the caller sets the cookie."""
    end_expired(session, now)
    opened = OpenedSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    session.add(
        AdminSession(
            id_hash=_id_hash(opened.cookie),
            csrf=opened.csrf,
            token_tag=token_tag(api_token),
            created_at=now,
            last_seen_at=now,
        )
    )
    return opened


def find_session(
    session: Session, cookie: str | None, api_token: str, now: datetime
) -> LiveSession | None:
    """The live session a cookie names: None when unknown, idle too long, too old, or opened
    with another API token."""
    if not cookie or len(cookie) > MAX_COOKIE_CHARS:
        return None
    row = session.scalar(select(AdminSession).where(AdminSession.id_hash == _id_hash(cookie)))
    if row is None:
        return None
    if not hmac.compare_digest(row.token_tag, token_tag(api_token)):
        return None
    if now - row.last_seen_at > IDLE_LIMIT or now - row.created_at > LIFETIME:
        return None
    return LiveSession(row.id, row.csrf, stale=now - row.last_seen_at > TOUCH_AFTER)


def touch(session: Session, session_id: int, now: datetime) -> None:
    """Record that a session was used now (its idle limit starts again)."""
    session.execute(
        update(AdminSession).where(AdminSession.id == session_id).values(last_seen_at=now)
    )


def end_session(session: Session, cookie: str | None) -> bool:
    """End the session a cookie names (logout); whether there was one."""
    if not cookie or len(cookie) > MAX_COOKIE_CHARS:
        return False
    result = session.execute(delete(AdminSession).where(AdminSession.id_hash == _id_hash(cookie)))
    return bool(getattr(result, "rowcount", 0))


def end_expired(session: Session, now: datetime) -> int:
    """Delete sessions past their idle limit or lifetime; how many."""
    result = session.execute(
        delete(AdminSession).where(
            or_(
                AdminSession.last_seen_at < now - IDLE_LIMIT,
                AdminSession.created_at < now - LIFETIME,
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
