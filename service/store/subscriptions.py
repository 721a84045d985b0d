"""Posts, people and who follows what: shared by the CLI, mail (List-Unsubscribe) and HTTP."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.identity.addresses import ALL_POSTS, ReplyTarget
from service.store.models import Comment, Person, Post, Subscription, utcnow


def person_for(session: Session, email: str, name: str = "") -> Person:
    """The person with this (lower-cased) address, created on first use; a given name wins."""
    person = session.scalar(select(Person).where(Person.email == email))
    if person is None:
        person = Person(email=email, display_name=name)
        session.add(person)
        session.flush()
    elif name:
        person.display_name = name
    return person


def save_post(
    session: Session, slug: str, *, title: str, url: str, author: Person, closed: bool
) -> tuple[Post, bool]:
    """Create the post with the blog's id `slug`, or update it; returns it and whether new."""
    post = session.scalar(select(Post).where(Post.slug == slug))
    created = post is None
    if post is None:
        post = Post(slug=slug, title=title, url=url, author_id=author.id, closed=closed)
        session.add(post)
    else:
        post.title, post.url, post.author_id, post.closed = title, url, author.id, closed
    session.flush()
    return post, created


def set_following(
    session: Session, post_id: int, person_id: int, *, active: bool, digest: str | None = None
) -> None:
    """Create or update one person's subscription to one post.

    Someone who starts taking the post as a digest (new, back after unsubscribing, or from
    mail per comment) gets a watermark at its newest comment: their first digest holds what
    comes next. A digest taker who subscribes again keeps theirs, so nothing pending is lost.
    """
    sub = session.scalar(
        select(Subscription).where(
            Subscription.post_id == post_id, Subscription.person_id == person_id
        )
    )
    if sub is None:
        sub = Subscription(post_id=post_id, person_id=person_id, active=active, digest=digest)
        session.add(sub)
        starts_digest = active and digest is not None
    else:
        starts_digest = active and digest is not None and not (sub.active and sub.digest)
        sub.active = active
        if active:
            sub.digest = digest
    if starts_digest:
        newest = session.scalar(select(func.max(Comment.id)).where(Comment.post_id == post_id))
        sub.digest_through, sub.digest_sent_at = newest or 0, utcnow()


def unsubscribe(session: Session, target: ReplyTarget) -> str:
    """Stop the mail an unsubscribe token names; returns a sentence saying what stopped."""
    person = session.get(Person, target.person_id)
    if person is None:
        return "nothing to stop: the person is unknown"
    if target.post_id == ALL_POSTS:
        session.execute(
            update(Subscription)
            .where(Subscription.person_id == person.id, Subscription.digest.is_not(None))
            .values(active=False)
        )
        return f"{person.email} no longer gets digests"
    post = session.get(Post, target.post_id)
    if post is None:
        return "nothing to stop: the post no longer exists"
    set_following(session, post.id, person.id, active=False)
    return f"{person.email} no longer gets mail about {post.slug!r}"
