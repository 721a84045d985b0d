"""New posts by email: a new post announced to everyone who follows the blog, in the caller's
transaction; its mail written at delivery, each with a reply address that comments on it."""

from __future__ import annotations

import logging
from typing import NamedTuple

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from service.extraction.marker import MARKER_HTML_ID
from service.identity.addresses import ALL_POSTS, NEW_POSTS, AddressBook, Keyring, ReplyTarget
from service.outbound.audience import Reader
from service.outbound.compose import (
    Draft,
    PersonalBodies,
    deliverable_address,
    mailbox,
    new_message,
    public_name,
    render_line,
)
from service.outbound.notify import PEOPLE_BY_ID, POSTS_BY_ID, Notifier, Unrendered, post_root_id
from service.store.models import (
    BlogSubscription,
    DigestNewPost,
    OutboundEmail,
    Person,
    Post,
    utcnow,
)

log = logging.getLogger(__name__)

KIND = "new_post"  # the outbound kind of the mail announcing a new post to one follower

_QUEUE = insert(OutboundEmail)
_OWE = insert(DigestNewPost)
# Everyone the new post goes to: following the blog, not suspended (bounces, or an address
# that asked to be forgotten and was seen again), not forgotten, not the post's author.
_FOLLOWERS = (
    select(Person.id, Person.email, BlogSubscription.digest)
    .join(BlogSubscription, BlogSubscription.person_id == Person.id)
    .where(
        BlogSubscription.active.is_(True),
        Person.suspended_at.is_(None),
        Person.erased_at.is_(None),
        Person.id != bindparam("author_id"),
    )
    .order_by(Person.id)
)


class Announced(NamedTuple):
    """What announcing a post queued: mails, and places in people's next digests."""

    mailed: int
    in_digests: int


def announce_post(session: Session, post: Post, book: AddressBook, keyring: Keyring) -> Announced:
    """Queue the mail announcing a post that was just created to everyone who follows the
    blog (a place in the next digest for those who take new posts as one), in the caller's
    transaction, so the post and its mail are kept together or not at all.

    Call it once, right after the post is created (`save_post` said so), and only then: an
    update or an import of old posts announces nothing. A closed post is not announced: a
    reply to its mail could not become a comment. The mail itself is written when it is
    delivered (`NewPostMail.render_queued`), from the post as it is then.
    """
    if post.closed:
        return Announced(0, 0)
    session.flush()  # the post's id, whichever door made it
    now = utcnow()
    mails: list[dict[str, object]] = []
    owed: list[dict[str, object]] = []
    for person_id, email, digest in session.execute(_FOLLOWERS, {"author_id": post.author_id}):
        if digest is not None:
            owed.append({"person_id": person_id, "post_id": post.id})
        elif deliverable_address(email):
            target = ReplyTarget(post.id, None, person_id)
            mails.append(
                {
                    "kind": KIND,
                    "message_id": book.new_post_id(target, keyring),
                    "recipient_id": person_id,
                    "recipient": email,
                    "post_id": post.id,
                    "comment_id": None,
                    "raw": None,
                    "created_at": now,
                    "next_attempt_at": now,
                }
            )
        else:
            log.warning("person #%s is not sent the new post: their address is unusable", person_id)
    if mails:
        session.execute(_QUEUE, mails)
    if owed:
        session.execute(_OWE, owed)
    return Announced(len(mails), len(owed))


def take_new_posts(session: Session, person_id: int) -> list[Post] | None:
    """The new posts a person's next digest owes them, oldest first, their rows deleted in
    the caller's transaction; None when another digest run took some of them meanwhile
    (it sends them, and this run must be undone)."""
    rows = session.execute(
        select(DigestNewPost.id, Post)
        .join(Post, Post.id == DigestNewPost.post_id)
        .where(DigestNewPost.person_id == person_id)
        .order_by(Post.id)
    ).all()
    if not rows:
        return []
    taken = session.execute(
        delete(DigestNewPost)
        .where(DigestNewPost.id.in_([row_id for row_id, _ in rows]))
        .execution_options(synchronize_session=False)
    )
    if getattr(taken, "rowcount", len(rows)) != len(rows):
        return None
    return [post for _, post in rows]


class NewPostMail:
    """Writes the mail announcing a new post, at delivery, with the notifications' addresses,
    templates, list headers and links."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.book = notifier.book
        self.keyring = notifier.keyring
        self.templates = notifier.templates

    def bodies(self, post: Post) -> PersonalBodies:
        """The text and HTML of the mail about `post`, rendered once for all its readers."""
        return PersonalBodies(
            self.templates,
            "new_post",
            {
                "marker_id": MARKER_HTML_ID,
                "author_name": public_name(post.author),
                "post_title": post.title,
                "post_url": post.url,
                "site_name": self.notifier.site_name,
            },
            personal=("unsubscribe_url", "forget_url"),
        )

    def headers(self, post: Post, reader: Reader, message_id: str | None) -> Draft:
        """The header fields of the mail about `post` to `reader`: Reply-To comments on the
        post as them; List-Unsubscribe stops the blog's new posts."""
        target = ReplyTarget(post.id, None, reader.id)
        site_name = self.notifier.site_name
        message = new_message(
            sender_name=f"{public_name(post.author)} via {site_name}",
            sender_address=self.notifier.from_address,
            to=reader,
            subject=render_line(
                self.templates,
                "new_post.subject",
                {"post_title": post.title, "site_name": site_name},
            ),
            message_id=message_id or self.book.new_post_id(target, self.keyring),
            date=post.created_at,
        )
        message["Reply-To"] = mailbox(post.title, self.book.reply_address(target, self.keyring))
        # The thread's root, as every notification about the post names it.
        message["References"] = post_root_id(post, self.book.domain)
        self.notifier.list_headers(
            message,
            ReplyTarget(ALL_POSTS, NEW_POSTS, reader.id),
            f"{site_name} new posts",
            "new-posts",
        )
        return message

    def render_queued(self, session: Session, queued: list[Unrendered]) -> dict[int, bytes | str]:
        """The message of each queued new-post mail, by row id, as of now; for one that can
        no longer be written (the post or reader is gone, the post closed, a template
        fails), the reason instead."""
        written: dict[int, bytes | str] = {}
        post_ids = {item.post_id for item in queued if item.post_id is not None}
        posts = {p.id: p for p in session.scalars(POSTS_BY_ID, {"ids": list(post_ids)})}
        wanted = {p.author_id for p in posts.values()}
        wanted |= {item.recipient_id for item in queued if item.recipient_id is not None}
        people = {p.id: p for p in session.scalars(PEOPLE_BY_ID, {"ids": list(wanted)})}
        bodies: dict[int, PersonalBodies | str] = {}
        for item in queued:
            post = posts.get(item.post_id) if item.post_id is not None else None
            person = people.get(item.recipient_id) if item.recipient_id is not None else None
            if post is None:
                written[item.id] = "the post is gone: its announcement is not sent"
                continue
            if post.closed:
                written[item.id] = "the post was closed before its announcement left"
                continue
            if person is None:
                written[item.id] = "the recipient was deleted before their mail left"
                continue
            try:
                if post.id not in bodies:
                    bodies[post.id] = self.bodies(post)  # once per post, not per reader
            except Exception as exc:
                bodies[post.id] = f"cannot render the new post's mail: {exc!r}"
            own = bodies[post.id]
            if isinstance(own, str):
                written[item.id] = own
                continue
            try:
                reader = Reader(person.id, item.recipient, person.display_name)
                draft = self.headers(post, reader, item.message_id)
                everything = ReplyTarget(ALL_POSTS, NEW_POSTS, person.id)
                written[item.id] = draft.as_bytes(
                    own.for_reader(
                        unsubscribe_url=self.notifier.unsubscribe_url(everything),
                        forget_url=self.notifier.erasure_mail.request_url(person.id),
                    )
                )
            except Exception as exc:
                written[item.id] = f"cannot render the new post's mail: {exc!r}"
        return written
