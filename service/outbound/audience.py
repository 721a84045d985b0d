"""Who follows a post and hears of its new comments: its author, commenters and subscribers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from service.store.models import Comment, Person, Post, Subscription
from service.store.visibility import PUBLISHED


class Reader(NamedTuple):
    """Enough of a person to send them a notification."""

    id: int
    email: str
    display_name: str


class Following(NamedTuple):
    """One subscription row of a post: who, whether it is on, and whether as a digest."""

    person_id: int
    active: bool
    digest: str | None


# Statements on the publishing path are built once, with bound parameters: building and
# hashing a statement costs several times more than SQLite takes to run it.
_SUBSCRIPTIONS = select(
    Subscription.post_id, Subscription.person_id, Subscription.active, Subscription.digest
).where(Subscription.post_id.in_(bindparam("post_ids", expanding=True)))
# Only published comments make their writer a follower: a held one does once approved.
# Imported comments (`replyd import`) make nobody one: years-old commenters never asked.
_COMMENTERS = (
    select(Comment.post_id, Comment.author_id)
    .where(
        Comment.post_id.in_(bindparam("post_ids", expanding=True)),
        PUBLISHED,
        Comment.import_key.is_(None),
    )
    .distinct()
)
_READERS = (
    select(Person.id, Person.email, Person.display_name)
    .where(Person.id.in_(bindparam("ids", expanding=True)))
    .where(Person.suspended_at.is_(None))
)
# A thread's followers are read this many at a time: databases bound the parameters of one
# statement (SQLite before 3.32 at 999).
_IDS_PER_QUERY = 900


class Audience:
    """Who follows some posts (subscriptions, commenters, authors), read once for a batch of
    comments and kept up to date as the batch publishes: three queries per batch instead
    of two per comment.

    A post it has not read yet is read when first asked about. After anything that changes
    subscriptions or suspends people some other way (an unsubscribe, a bounce), call
    `forget`, so what it holds is read again.
    """

    def __init__(self, session: Session, posts: Iterable[Post] = ()) -> None:
        self._session = session
        self._authors: dict[int, int] = {}
        self._subscriptions: dict[int, dict[int, Following]] = {}
        self._commenters: dict[int, set[int]] = {}
        self._readers: dict[int, Reader] = {}
        self.read(posts)

    def read(self, posts: Iterable[Post]) -> None:
        """Read who follows each of `posts` it does not hold yet."""
        new = {post.id: post.author_id for post in posts if post.id not in self._authors}
        if not new:
            return
        post_ids = list(new)
        self._authors.update(new)
        for post_id in post_ids:
            self._subscriptions[post_id] = {}
            self._commenters[post_id] = set()
        # Plain rows through the Core connection: this is on the hot path.
        connection = self._session.connection()
        for post_id, person_id, active, digest in connection.execute(
            _SUBSCRIPTIONS, {"post_ids": post_ids}
        ):
            self._subscriptions[post_id][person_id] = Following(person_id, active, digest)
        for post_id, author_id in connection.execute(_COMMENTERS, {"post_ids": post_ids}):
            self._commenters[post_id].add(author_id)
        wanted = set(new.values())
        for post_id in post_ids:
            wanted |= self._subscriptions[post_id].keys() | self._commenters[post_id]
        ids = sorted(wanted - self._readers.keys())
        for start in range(0, len(ids), _IDS_PER_QUERY):
            rows = connection.execute(_READERS, {"ids": ids[start : start + _IDS_PER_QUERY]})
            self._readers.update((row.id, Reader(*row)) for row in rows)

    def forget(self) -> None:
        """Drop what was read, because subscriptions or people changed outside `commented`;
        the session's pending changes are written first, so the next read sees them."""
        self._session.flush()
        for held in (self._authors, self._subscriptions, self._commenters, self._readers):
            held.clear()

    def followers(self, post: Post, writer_id: int) -> list[Reader]:
        """Everyone who gets a mail per comment on `post`, except the writer and suspended
        people: its author, commenters and subscribers, less anyone who switched the thread
        off or takes it as a digest."""
        self.read([post])
        subscriptions = self._subscriptions[post.id].values()
        opted_out = {s.person_id for s in subscriptions if not s.active or s.digest is not None}
        wanted = {s.person_id for s in subscriptions if s.active and s.digest is None}
        wanted |= self._commenters[post.id]
        wanted.add(post.author_id)
        wanted -= opted_out
        wanted.discard(writer_id)
        return [self._readers[pid] for pid in sorted(wanted) if pid in self._readers]

    def subscribed(self, post: Post, person_id: int) -> bool:
        """Whether the person has a subscription row for the post, whatever its state."""
        self.read([post])
        return person_id in self._subscriptions[post.id]

    def commented(self, post: Post, writer: Person, *, followed: bool) -> None:
        """Note a comment published on `post` (and the subscription made for its writer)."""
        self.read([post])
        self._commenters[post.id].add(writer.id)
        if followed:
            self._subscriptions[post.id][writer.id] = Following(writer.id, True, None)
        if writer.suspended_at is None:
            self._readers[writer.id] = Reader(writer.id, writer.email, writer.display_name)
