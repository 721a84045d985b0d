"""One-time tokens of signed webhooks (Mailgun's), remembered while their signature counts as
fresh, so that a signed request captured and sent again is refused."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.store.models import IngressToken

MAX_TOKEN_CHARS = 200


def first_use(
    session_factory: sessionmaker[Session], token: str, now: datetime, keep: timedelta
) -> bool:
    """Record a token's use; False when it was used before (within `keep`). Tokens older than
    `keep` are forgotten: their signatures are refused as stale anyway."""
    try:
        with session_factory.begin() as session:
            session.execute(delete(IngressToken).where(IngressToken.seen_at < now - keep))
            if session.get(IngressToken, token) is not None:
                return False
            session.add(IngressToken(token=token, seen_at=now))
    except IntegrityError:  # the same token in another request at the same moment
        return False
    return True
