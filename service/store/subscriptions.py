"""Posts, people and who follows what: shared by the CLI, mail (List-Unsubscribe) and HTTP."""

from __future__ import annotations

import re

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.identity.addresses import ALL_POSTS, NEW_POSTS, ReplyTarget
from service.store.blog_following import (
    follow_blog,
    follows_blog,
    stop_blog_digests,
    switch_following,
)
from service.store.models import Comment, Person, Post, Subscription, utcnow
from service.store.posts import check_post
from service.store.suppression import is_suppressed, lift_suppression

MAX_ADDRESS = 254  # RFC 5321: a path is 256 octets at most, angle brackets included
MAX_LOCAL_PART = 64
MAX_LABEL = 63
MAX_DOMAIN = 253
_ATOM = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_TOP_LABEL = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
# Domains that never leave the machine or the local network (RFC 6761, 6762, 8375, ICANN's
# .internal and the names it will not delegate): mail to them reaches nobody who reads a blog.
LOCAL_ONLY = ("localhost", "localdomain", "local", "internal", "home.arpa", "invalid", "lan",
              "home", "corp", "intranet", "private")  # fmt: skip
_EXAMPLE = "give one like ann@example.org"


class InvalidAddress(ValueError):
    """An address replyd cannot mail a follower at; the message says why and what to give."""


def follower_address(raw: str) -> str:
    """The address, lower-cased as replyd stores addresses, if replyd can mail a follower at
    it: a dot-atom local part and a domain name with a dot that is not local-only, within
    SMTP's lengths, in ASCII (replyd does not send SMTPUTF8). InvalidAddress otherwise."""
    address = raw.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in address):
        raise InvalidAddress(f"{raw!r} is not an email address; {_EXAMPLE}.")
    if not address.isascii():
        raise InvalidAddress(
            f"{raw!r} has non-ASCII characters, and replyd's mail cannot be addressed to them "
            f"(it does not send SMTPUTF8); {_EXAMPLE}."
        )
    if len(address) > MAX_ADDRESS:
        raise InvalidAddress(
            f"the address is {len(address)} characters long; mail takes {MAX_ADDRESS} at most."
        )
    if len(local) > MAX_LOCAL_PART:
        raise InvalidAddress(
            f"the part before the @ is {len(local)} characters long; mail takes "
            f"{MAX_LOCAL_PART} at most."
        )
    if not all(_ATOM.fullmatch(atom) for atom in local.split(".")):
        raise InvalidAddress(
            f"{raw!r}: the part before the @ must be letters, digits and !#$%&'*+/=?^_`{{|}}~- "
            f"with single dots between them; {_EXAMPLE}."
        )
    labels = domain.split(".")
    if len(labels) < 2:
        raise InvalidAddress(
            f"{raw!r}: the domain {domain!r} has no dot, so mail to it cannot leave this "
            f"machine; {_EXAMPLE}."
        )
    if len(domain) > MAX_DOMAIN or not all(
        len(label) <= MAX_LABEL and _LABEL.fullmatch(label) for label in labels
    ):
        raise InvalidAddress(
            f"{raw!r}: {domain!r} is not a domain name (letters, digits and hyphens, 63 at "
            f"most between dots); {_EXAMPLE}."
        )
    if not _TOP_LABEL.fullmatch(labels[-1]):
        raise InvalidAddress(
            f"{raw!r}: {domain!r} does not end in a top-level domain such as .org; {_EXAMPLE}."
        )
    local_only = next((d for d in LOCAL_ONLY if domain == d or domain.endswith(f".{d}")), None)
    if local_only is not None:
        raise InvalidAddress(
            f"{raw!r}: .{local_only} is a local-only domain, so mail to it reaches nobody "
            f"outside this machine or network; {_EXAMPLE}."
        )
    return address


def person_for(session: Session, email: str, name: str = "", *, following: bool = True) -> Person:
    """The person with this (lower-cased) address, created on first use; a given name wins.

    A new person, and anyone about to follow something (`following`), must have an address
    replyd can mail (follower_address raises InvalidAddress otherwise): `following=False`
    only finds someone already known, or records an opt-out, at any address.

    Someone created anew for an address on the suppression list (they asked to be forgotten)
    starts suspended: nothing is mailed to them until they ask for mail themselves
    (`check_subscribable`).
    """
    email = email.strip().lower()
    person = session.scalar(select(Person).where(Person.email == email))
    if person is None or following:
        email = follower_address(email)
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
        starts_digest = switch_following(sub, active=active, digest=digest)
    if starts_digest:
        newest = session.scalar(select(func.max(Comment.id)).where(Comment.post_id == post_id))
        sub.digest_through, sub.digest_sent_at = newest or 0, utcnow()


def unsubscribed(session: Session, target: ReplyTarget) -> bool:
    """Whether the mail an unsubscribe token names has stopped already: the person switched
    the post off (or, for a digest's token, takes no digest any more; for a new post's
    token, no longer follows the blog)."""
    if target.post_id == ALL_POSTS and target.comment_id == NEW_POSTS:
        return not follows_blog(session, target.person_id)
    if target.post_id == ALL_POSTS:
        if follows_blog(session, target.person_id, digests=True):
            return False
        taking = select(Subscription.id).where(
            Subscription.person_id == target.person_id,
            Subscription.active.is_(True),
            Subscription.digest.is_not(None),
        )
        return session.scalar(taking.limit(1)) is None
    active = session.scalar(
        select(Subscription.active).where(
            Subscription.post_id == target.post_id, Subscription.person_id == target.person_id
        )
    )
    return active is False


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
    if target.post_id == ALL_POSTS and target.comment_id == NEW_POSTS:
        follow_blog(session, person.id, active=False)
        return f"{person.email} no longer gets the blog's new posts"
    if target.post_id == ALL_POSTS:
        session.execute(
            update(Subscription)
            .where(Subscription.person_id == person.id, Subscription.digest.is_not(None))
            .values(active=False)
        )
        stop_blog_digests(session, person.id)
        return f"{person.email} no longer gets digests"
    post = session.get(Post, target.post_id)
    if post is None:
        return "nothing to stop: the post no longer exists"
    set_following(session, post.id, person.id, active=False)
    return f"{person.email} no longer gets mail about {post.slug!r}"
