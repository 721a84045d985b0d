"""Which post, comment and person an inbound reply belongs to: by token, else by threading."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.identity.addresses import AddressBook, Keyring, ReplyTarget
from service.inbound.parse import ParsedMessage
from service.store.models import OutboundEmail

MAX_THREAD_IDS = 50  # of In-Reply-To and References looked at; a real thread needs one


@dataclass(frozen=True)
class Route:
    """A routing decision: a target, or the reason there is none."""

    target: ReplyTarget | None
    reason: str = ""
    via: str = "token"


def route_reply(
    session: Session,
    book: AddressBook,
    keyring: Keyring,
    verified: ReplyTarget | None,
    message: ParsedMessage,
    *,
    authenticated: bool = False,
) -> Route:
    """Route by the target the reply address's token names (`verified`, as the address book
    verified it); without one, by the notification replied to, when its Message-ID carries
    our signature. A threading header proves nothing by itself: anyone can write one, and
    the ids of old notifications (`<comment-C.to-P@...>`) could be guessed. Those route only
    when `authenticated` (our MTA saw the From domain pass DMARC), and only to a notification
    that really went to the From address."""
    if verified is not None:
        return Route(verified)
    # Newest first: In-Reply-To names the message answered; References end with it too.
    candidates = [*message.in_reply_to, *reversed(message.references)][:MAX_THREAD_IDS]
    for message_id in candidates:
        target = book.thread_target(message_id, keyring)
        if target is not None:
            return Route(target, via="thread")
    if authenticated and candidates:
        sent = session.scalars(
            select(OutboundEmail).where(
                OutboundEmail.message_id.in_(candidates),
                OutboundEmail.kind.in_(("notification", "new_post")),
                OutboundEmail.recipient == message.from_address,
            )
        ).all()
        by_id = {row.message_id: row for row in sent}
        for message_id in candidates:
            row = by_id.get(message_id)
            if row is not None and row.post_id is not None and row.recipient_id is not None:
                target = ReplyTarget(row.post_id, row.comment_id, row.recipient_id)
                return Route(target, via="authenticated thread")
    return Route(
        None,
        reason="no valid reply address, and In-Reply-To/References name no notification we signed",
    )
