"""Which post, comment and person an inbound reply belongs to: by token, else by threading."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.identity.addresses import ReplyTarget
from service.inbound.parse import ParsedMessage
from service.store.models import OutboundEmail


@dataclass(frozen=True)
class Route:
    """A routing decision: a target, or the reason there is none."""

    target: ReplyTarget | None
    reason: str = ""
    via: str = "token"


def route_reply(session: Session, verified: ReplyTarget | None, message: ParsedMessage) -> Route:
    """Route by the target the reply address's token names (`verified`, as the address book
    verified it); without one, by the notification replied to."""
    if verified is not None:
        return Route(verified)
    # Newest first: In-Reply-To names the message answered; References end with it too.
    candidates = [*message.in_reply_to, *reversed(message.references)]
    if candidates:
        sent = session.scalars(
            select(OutboundEmail).where(OutboundEmail.message_id.in_(candidates[:50]))
        ).all()
        by_id = {row.message_id: row for row in sent}
        for message_id in candidates:
            row = by_id.get(message_id)
            if row is not None and row.post_id is not None and row.recipient_id is not None:
                return Route(
                    ReplyTarget(row.post_id, row.comment_id, row.recipient_id), via="thread"
                )
    return Route(
        None,
        reason="no valid reply address, and In-Reply-To/References name no notification we sent",
    )
