"""Posts, people and who follows what: shared by the CLI, mail (List-Unsubscribe) and HTTP."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.identity.addresses import ALL_POSTS, ReplyTarget
from service.store.models import Person, Post, Subscription, utcnow
from service.store.posts import check_post
from service.store.suppression import is_suppressed, lift_suppression


def person_for(session: Session, email: str, name: str = "") -> Person:
    """The person with this (lower-cased) address, created on first use; a given name wins.

    Someone created anew for an address on the suppression list (they asked to be forgotten)
    starts suspended: nothing is mailed to them until they ask for mail themselves
    (`check_subscribable`)."""
    person = session.scalar(select(Person).where(Person.email == email))
    if person is None:
        suspended = utcnow() if is_suppressed(session, email) else None
        person = Person(email=email, display_name=name, suspended_at=suspended)
        session.add(person)
        session.flush()
    elif name:
        person.display_name = name
    return person


def save_post(
    session: Session, slug: str, *, title: str, url: str, author: Person, closed: bool
) -> tuple[Post, bool]:
    """Create the post with the blog's id `slug`, or update it; returns it and whether new.

    Every door that saves a post comes through here, so the checks of check_post (raising
    PostInvalid) hold for all of them.
    """
    checked = check_post(slug, title, url)
    slug, title, url = checked.slug, checked.title, checked.url
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
    """Create or update one person's subscription to one post."""
    sub = session.scalar(
        select(Subscription).where(
            Subscription.post_id == post_id, Subscription.person_id == person_id
        )
    )
    if sub is None:
        session.add(
            Subscription(post_id=post_id, person_id=person_id, active=active, digest=digest)
        )
    else:
        sub.active = active
        if active:
            sub.digest = digest


class AskedToBeForgotten(Exception):
    """Subscribing an address that asked to be forgotten, without saying the person asked."""

    def __init__(self, email: str) -> None:
        super().__init__(
            f"{email} asked this blog to forget it, so replyd does not subscribe or mail it "
            "again unless the person asks for it themselves"
        )


def check_subscribable(session: Session, email: str, *, asked_by_person: bool) -> None:
    """Before subscribing `email`: raise AskedToBeForgotten when it is on the suppression
    list and the person did not ask themselves; when they did, take it off the list and let
    mail reach them again."""
    if not is_suppressed(session, email):
        return
    if not asked_by_person:
        raise AskedToBeForgotten(email)
    lift_suppression(session, email)
    person = session.scalar(select(Person).where(Person.email == email))
    if person is not None:
        person.suspended_at = None


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
