"""Who follows the whole blog (every new post by mail, or in a digest): start, stop, ask."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.store.models import BlogSubscription, DigestNewPost, Subscription, utcnow


def switch_following(
    sub: BlogSubscription | Subscription, *, active: bool, digest: str | None
) -> bool:
    """Switch an existing subscription (to the blog or to one post) on or off and set how it
    is taken; True when it starts taking digests now (it had none, or was off)."""
    starts_digest = active and digest is not None and not (sub.active and sub.digest)
    sub.active = active
    if active:
        sub.digest = digest
    return starts_digest


def follow_blog(
    session: Session, person_id: int, *, active: bool, digest: str | None = None
) -> BlogSubscription:
    """Create or update one person's subscription to the blog's new posts.

    Someone who starts taking them as a digest counts as having had one just now: their
    first digest goes out at the next digest time, as for a post followed by digest. A
    subscription switched off, or to a mail per post, forgets the posts its digest still
    owed (coming back later starts afresh, with the posts announced from then on).
    """
    sub = session.scalar(select(BlogSubscription).where(BlogSubscription.person_id == person_id))
    if sub is None:
        sub = BlogSubscription(person_id=person_id, active=active, digest=digest)
        session.add(sub)
        starts_digest = active and digest is not None
    else:
        starts_digest = switch_following(sub, active=active, digest=digest)
    if starts_digest:
        sub.digest_sent_at = utcnow()
    if not active or digest is None:
        session.execute(delete(DigestNewPost).where(DigestNewPost.person_id == person_id))
    session.flush()
    return sub


def follows_blog(session: Session, person_id: int, *, digests: bool = False) -> bool:
    """Whether the person follows the blog's new posts now (with `digests`, as a digest)."""
    query = select(BlogSubscription.id).where(
        BlogSubscription.person_id == person_id, BlogSubscription.active.is_(True)
    )
    if digests:
        query = query.where(BlogSubscription.digest.is_not(None))
    return session.scalar(query) is not None


def stop_blog_digests(session: Session, person_id: int) -> None:
    """Stop the person's digest of new posts, if they take one (a digest's unsubscribe link
    stops every digest); mail per new post, if that is what they chose, goes on."""
    if follows_blog(session, person_id, digests=True):
        follow_blog(session, person_id, active=False)
