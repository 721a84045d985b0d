"""The moderation log: who changed a comment's status (or blocked someone), when, from where."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session

from service.store.models import ModerationEvent, utcnow

# Where a moderation action came from, as the log records it.
VIA = ("cli", "api", "admin", "mail", "inbound", "web")

_EVENT = insert(ModerationEvent)


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where: a moderator's address and "mail", the CLI's user, ..."""

    who: str
    via: str

    def __post_init__(self) -> None:
        if self.via not in VIA:
            raise ValueError(f"unknown moderation channel {self.via!r}")


def record_event(
    session: Session,
    actor: Actor,
    action: str,
    *,
    comment_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    note: str = "",
) -> None:
    """Add one line to the moderation log, in the caller's transaction."""
    session.connection().execute(
        _EVENT,
        {
            "created_at": utcnow(),
            "comment_id": comment_id,
            "action": action,
            "from_status": from_status,
            "to_status": to_status,
            "actor": actor.who[:320],
            "via": actor.via,
            "note": note,
        },
    )
