"""Whether the recipients of queued mail still want it, asked at the moment it is sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from service.store.models import BlogSubscription, Person, Subscription

# The kinds of mail someone receives because they follow something; other mail (a notice
# answering their own message) is sent whatever they follow.
FOLLOWED_KINDS = ("notification", "digest", "new_post")

# Built once: asked for every batch the outbox sends.
_PEOPLE = select(Person.id, Person.suspended_at).where(
    Person.id.in_(bindparam("ids", expanding=True))
)
_STOPPED = select(Subscription.post_id, Subscription.person_id).where(
    Subscription.person_id.in_(bindparam("ids", expanding=True)),
    Subscription.active.is_(False),
)
_TAKING_DIGESTS = (
    select(Subscription.person_id)
    .where(
        Subscription.person_id.in_(bindparam("ids", expanding=True)),
        Subscription.active.is_(True),
        Subscription.digest.is_not(None),
    )
    .union(
        select(BlogSubscription.person_id).where(
            BlogSubscription.person_id.in_(bindparam("ids", expanding=True)),
            BlogSubscription.active.is_(True),
            BlogSubscription.digest.is_not(None),
        )
    )
)
_FOLLOWING_BLOG = select(BlogSubscription.person_id).where(
    BlogSubscription.person_id.in_(bindparam("ids", expanding=True)),
    BlogSubscription.active.is_(True),
)

UNSUBSCRIBED = "cancelled: the recipient stopped following the post before it was sent"
NO_DIGESTS = "cancelled: the recipient stopped taking digests before it was sent"
NO_NEW_POSTS = "cancelled: the recipient stopped following the blog's new posts before it left"
SUSPENDED = "cancelled: mail to the recipient was suspended after bounces before it was sent"
GONE = "cancelled: the recipient was deleted before it was sent"


class Addressed(Protocol):
    """A queued message as far as this check needs it (an outbox Parcel)."""

    @property
    def id(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def recipient_id(self) -> int | None: ...

    @property
    def post_id(self) -> int | None: ...


def needs_asking(message: Addressed) -> bool:
    """Whether the message goes to someone because they follow something."""
    return message.kind in FOLLOWED_KINDS and message.recipient_id is not None


def unwanted(session: Session, messages: Sequence[Addressed]) -> dict[int, str]:
    """The messages whose recipient no longer wants them, by id, with the reason: suspended
    after bounces, a notification about a post they stopped following (by any of the ways to
    unsubscribe), a digest when they take none any more, a new post's mail when they no
    longer follow the blog. Three queries for a whole batch (four with new posts in it)."""
    asked = [m for m in messages if needs_asking(m)]
    if not asked:
        return {}
    ids = sorted({m.recipient_id for m in asked if m.recipient_id is not None})
    connection = session.connection()
    people = connection.execute(_PEOPLE, {"ids": ids})
    suspended = {row.id: row.suspended_at is not None for row in people}
    stopped = {(row.post_id, row.person_id) for row in connection.execute(_STOPPED, {"ids": ids})}
    digests: set[int] = set()
    if any(m.kind == "digest" for m in asked):
        digests = set(connection.execute(_TAKING_DIGESTS, {"ids": ids}).scalars())
    following_blog: set[int] = set()
    if any(m.kind == "new_post" for m in asked):
        following_blog = set(connection.execute(_FOLLOWING_BLOG, {"ids": ids}).scalars())
    reasons: dict[int, str] = {}
    for message in asked:
        person = message.recipient_id
        if person not in suspended:
            reasons[message.id] = GONE
        elif suspended[person]:
            reasons[message.id] = SUSPENDED
        elif message.kind == "notification" and (message.post_id, person) in stopped:
            reasons[message.id] = UNSUBSCRIBED
        elif message.kind == "digest" and person not in digests:
            reasons[message.id] = NO_DIGESTS
        elif message.kind == "new_post" and person not in following_blog:
            reasons[message.id] = NO_NEW_POSTS
    return reasons
