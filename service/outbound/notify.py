"""A new comment published: stored, its writer following, a notification queued per reader."""

from __future__ import annotations

import logging
from typing import NamedTuple

from jinja2 import Environment
from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from service.extraction.marker import MARKER_HTML_ID
from service.identity.addresses import AddressBook, Keyring, ReplyTarget, make_token
from service.identity.moderation_links import LinkAction, make_moderation_token, moderation_url
from service.identity.scrub import PublicText
from service.outbound.audience import Audience, Reader
from service.outbound.compose import (
    Draft,
    PersonalBodies,
    deliverable_address,
    mailbox,
    make_templates,
    new_message,
    public_name,
)
from service.outbound.erasure_mail import ErasureMail
from service.store.engine import Deferred, execute_or_defer
from service.store.models import (
    Comment,
    CommentStatus,
    OutboundEmail,
    Person,
    Post,
    Subscription,
    utcnow,
)
from service.store.visibility import is_published
from service.store.webhook_events import EventType, WebhookQueue

log = logging.getLogger(__name__)


def post_root_id(post: Post, domain: str) -> str:
    """The Message-ID every notification about a post refers back to, so clients thread it."""
    return f"<post-{post.id}@{domain}>"


class Unrendered(NamedTuple):
    """A queued notification whose message is yet to be written."""

    id: int
    comment_id: int | None
    recipient_id: int | None
    recipient: str
    # As queued: every delivery attempt writes the same Message-ID, even after a key rotation.
    message_id: str | None = None
    kind: str = "notification"
    post_id: int | None = None


# Statements on the publishing path are built once, with bound parameters: building and
# hashing a statement costs several times more than SQLite takes to run it.
# Rows by id, for a batch at once (the pipeline loads its posts and people with these too).
POSTS_BY_ID = select(Post).where(Post.id.in_(bindparam("ids", expanding=True)))
PEOPLE_BY_ID = select(Person).where(Person.id.in_(bindparam("ids", expanding=True)))
_COMMENTS = select(Comment).where(Comment.id.in_(bindparam("ids", expanding=True)))
_FOLLOW = insert(Subscription)
_QUEUE = insert(OutboundEmail)
_COMMENT = insert(Comment).returning(Comment.id)


class Notifier:
    """Renders notification mail and queues it in the caller's transaction."""

    def __init__(
        self,
        book: AddressBook,
        keyring: Keyring,
        *,
        from_address: str,
        site_name: str,
        base_url: str,
        templates: Environment | None = None,
        moderators: frozenset[str] = frozenset(),
        erasure_mail: ErasureMail | None = None,
        webhooks: WebhookQueue | None = None,
    ) -> None:
        self.book = book
        self.keyring = keyring
        self.from_address = from_address
        self.site_name = site_name
        self.base_url = base_url
        self.templates = templates or make_templates()
        self.public_text = PublicText(book, keyring)
        # REPLYD_WEBHOOK_URL: comment events queued with their cause; None costs nothing.
        self.webhooks = webhooks
        # REPLYD_MODERATORS: their copy carries a Remove link, as the post author's does.
        self.moderators = moderators
        # Every mail to a reader carries their own "delete what this blog keeps about me" link.
        self.erasure_mail = erasure_mail or ErasureMail(
            book,
            keyring,
            from_address=from_address,
            site_name=site_name,
            base_url=base_url,
            templates=self.templates,
        )

    def moderates(self, person: Person, post: Post) -> bool:
        """Whether `person` may moderate the comments of `post`: its author, or a moderator."""
        return person.id == post.author_id or person.email in self.moderators

    def remove_url(self, comment: Comment, person: Person) -> str:
        """A signed one-click link for `person` to remove `comment` (it asks to confirm)."""
        token = make_moderation_token(
            comment.id, person.id, LinkAction.REMOVE, utcnow(), self.keyring
        )
        return moderation_url(self.base_url, token)

    def unsubscribe_url(self, target: ReplyTarget) -> str:
        """The https page that stops the mail `target` names (RFC 8058 one-click by POST)."""
        return f"{self.base_url}/unsubscribe/{make_token(target, self.keyring, 'unsubscribe')}"

    def list_headers(
        self, message: Draft, target: ReplyTarget, list_name: str, list_key: str
    ) -> None:
        """List-Id and one-click List-Unsubscribe (RFC 2369, 2919, 8058) for `target`'s person."""
        mailto = self.book.unsubscribe_address(target, self.keyring)
        message["List-Id"] = mailbox(list_name, f"{list_key}.{self.book.domain}")
        message["List-Unsubscribe"] = (
            f"<{self.unsubscribe_url(target)}>, <mailto:{mailto}?subject=unsubscribe>"
        )
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Precedence"] = "list"

    def bodies(
        self, comment: Comment, post: Post, ancestors: list[Comment], remove_url: str = ""
    ) -> PersonalBodies:
        """The text and HTML of the notification about `comment`, rendered once for every
        reader but a moderator, whose copy carries `remove_url`; each reader's own
        unsubscribe and erasure links go in with `for_reader`."""
        parent = ancestors[-1] if ancestors else None
        # An answer to a comment since removed names and quotes nothing of it.
        removed = parent is not None and not is_published(parent)
        shown = parent if parent is not None and not removed else None
        return PersonalBodies(
            self.templates,
            "notification",
            {
                "marker_id": MARKER_HTML_ID,
                "author_name": public_name(comment.author),
                "post_title": post.title,
                "post_url": post.url,
                "site_name": self.site_name,
                "body": comment.body,
                "parent": parent is not None,
                "parent_removed": removed,
                "parent_author_name": public_name(shown.author) if shown else "",
                "parent_body": shown.body if shown else "",
                "remove_url": remove_url,
            },
            personal=("unsubscribe_url", "forget_url"),
        )

    def notification_id(self, post: Post, comment: Comment, recipient_id: int) -> str:
        """The Message-ID of the notification about `comment` to one reader: stable, and
        signed, so that a reply to it routes by In-Reply-To to that reader only."""
        target = ReplyTarget(post.id, comment.id, recipient_id)
        return self.book.notification_id(target, self.keyring)

    def headers(
        self,
        comment: Comment,
        post: Post,
        recipient: Reader,
        ancestors: list[Comment],
        message_id: str | None = None,
    ) -> Draft:
        """The header fields of the notification about `comment` for `recipient` (with the
        Message-ID it was queued with, when given)."""
        domain = self.book.domain
        reply_to = self.book.reply_address(
            ReplyTarget(post.id, comment.id, recipient.id), self.keyring
        )
        message = new_message(
            sender_name=f"{public_name(comment.author)} via {self.site_name}",
            sender_address=self.from_address,
            to=recipient,
            subject=f"Re: {post.title}",
            message_id=message_id or self.notification_id(post, comment, recipient.id),
            date=comment.created_at,
        )
        message["Reply-To"] = mailbox(post.title, reply_to)
        # Chain: the post's root, then each ancestor comment as this recipient saw it.
        references = [post_root_id(post, domain)]
        references += [self.notification_id(post, a, recipient.id) for a in ancestors]
        message["In-Reply-To"] = references[-1]
        message["References"] = " ".join(references)
        self.list_headers(
            message, ReplyTarget(post.id, None, recipient.id), post.title, f"post-{post.id}"
        )
        return message

    def queue_for_comment(
        self,
        session: Session,
        comment: Comment,
        post: Post,
        recipients: list[Reader],
        later: Deferred | None = None,
    ) -> int:
        """Queue one notification per recipient who can be written to; returns how many.
        With `later`, the rows are inserted when it is flushed.

        The rows carry no message: `render_queued` writes it for each delivery attempt, so
        a burst of replies is published without waiting for its mail to be rendered.
        """
        recipients = [reader for reader in recipients if _writable(reader)]
        if not recipients:
            return 0
        now = utcnow()
        rows = [
            {
                "kind": "notification",
                "message_id": self.notification_id(post, comment, reader.id),
                "recipient_id": reader.id,
                "recipient": reader.email,
                "post_id": post.id,
                "comment_id": comment.id,
                "raw": None,
                "created_at": now,
                "next_attempt_at": now,
            }
            for reader in recipients
        ]
        execute_or_defer(session, _QUEUE, rows, later)
        return len(recipients)

    def render_queued(self, session: Session, queued: list[Unrendered]) -> dict[int, bytes | str]:
        """The message of each notification queued unrendered, by row id, as of now; for one
        that can no longer be written (its comment or reader is gone, a template fails),
        the reason instead."""
        written: dict[int, bytes | str] = {}
        by_comment: dict[int | None, list[Unrendered]] = {}
        for item in queued:
            by_comment.setdefault(item.comment_id, []).append(item)
        # Three queries for the whole batch. The authors stay in the session's identity map
        # while `people` holds them, so `comment.author` costs no query.
        comments = {
            c.id: c
            for c in session.scalars(_COMMENTS, {"ids": [i for i in by_comment if i is not None]})
        }
        posts = {
            p.id: p
            for p in session.scalars(POSTS_BY_ID, {"ids": [c.post_id for c in comments.values()]})
        }
        wanted = {c.author_id for c in comments.values()}
        wanted |= {item.recipient_id for item in queued if item.recipient_id is not None}
        people = {p.id: p for p in session.scalars(PEOPLE_BY_ID, {"ids": list(wanted)})}
        for comment_id, items in by_comment.items():
            comment = comments.get(comment_id) if comment_id is not None else None
            post = posts.get(comment.post_id) if comment is not None else None
            if comment is None or post is None:
                gone = "the comment was deleted before its mail left"
                written.update((item.id, gone) for item in items)
                continue
            if not is_published(comment):
                # Checked at sending too: a moderator may act between queueing and delivery.
                removed = f"the comment is {comment.status}: its mail is not sent"
                written.update((item.id, removed) for item in items)
                continue
            try:
                ancestors = thread_above(session, comment)  # once per comment, not per reader
                bodies = self.bodies(comment, post, ancestors)
            except Exception as exc:
                broken = f"cannot render the notification: {exc!r}"
                written.update((item.id, broken) for item in items)
                continue
            for item in items:
                person = people.get(item.recipient_id) if item.recipient_id is not None else None
                if person is None:
                    written[item.id] = "the recipient was deleted before their mail left"
                    continue
                reader = Reader(person.id, item.recipient, person.display_name)
                try:
                    draft = self.headers(comment, post, reader, ancestors, item.message_id)
                    own = bodies
                    if self.moderates(person, post):
                        remove = self.remove_url(comment, person)
                        own = self.bodies(comment, post, ancestors, remove)
                    unsubscribe = self.unsubscribe_url(ReplyTarget(post.id, None, reader.id))
                    forget = self.erasure_mail.request_url(reader.id)
                    written[item.id] = draft.as_bytes(
                        own.for_reader(unsubscribe_url=unsubscribe, forget_url=forget)
                    )
                except Exception as exc:
                    written[item.id] = f"cannot render the notification: {exc!r}"
        return written

    def publish(
        self,
        session: Session,
        comment: Comment,
        post: Post,
        author: Person,
        audience: Audience,
        later: Deferred | None = None,
    ) -> int:
        """Store a new comment, make its writer follow the thread and queue its mail, in the
        caller's transaction (invariant 3); returns how many notifications were queued.
        `audience` must hold `post`; it learns of the comment once all of it is written.
        With `later`, the follow and the notifications are inserted when it is flushed (the
        comment at once: its id names the notifications).
        """
        # Whatever door it came through, what others read of it holds no control characters
        # and none of our addresses or tokens (a quoted notification carries the writer's).
        comment.body = self.public_text.clean(comment.body).strip()
        comment.elided = self.public_text.clean(comment.elided or "")
        # Who hears of it is settled before the comment exists: its writer is left out anyway.
        recipients = audience.followers(post, author.id)
        follow = not audience.subscribed(post, author.id)  # unless they opted out before
        if follow:
            execute_or_defer(
                session, _FOLLOW, [{"post_id": post.id, "person_id": author.id}], later
            )
        store_comment(session, comment, author)
        queued = self.queue_for_comment(session, comment, post, recipients, later)
        if self.webhooks is not None:
            self.webhooks.queue(session, EventType.PUBLISHED, [comment], later)
        audience.commented(post, author, followed=follow)
        return queued


def store_comment(session: Session, comment: Comment, author: Person) -> None:
    """INSERT a new comment in the caller's transaction and give the object its id.

    Through Core, not the session: a unit-of-work flush costs three times the INSERT, once
    per comment on the hot path. The object stays out of the session (load it with
    `session.get` to read it back); it gets its id, its time and its author, which is all
    its notifications need.
    """
    comment.created_at = utcnow()
    comment.status = comment.status or CommentStatus.PUBLISHED
    if comment.status == CommentStatus.PUBLISHED:
        comment.published_at = comment.created_at
    values = {
        "post_id": comment.post_id,
        "parent_id": comment.parent_id,
        "author_id": author.id,
        "body": comment.body,
        "elided": comment.elided or "",
        "source": comment.source or "email",
        "inbound_email_id": comment.inbound_email_id,
        "dedupe_key": comment.dedupe_key,
        "created_at": comment.created_at,
        "status": comment.status,
        "published_at": comment.published_at,
    }
    comment.id = session.connection().execute(_COMMENT, values).scalar_one()
    comment.author = author


def _writable(reader: Reader) -> bool:
    """Whether a mail to the reader can be written; if not, they are skipped, not the comment."""
    if deliverable_address(reader.email):
        return True
    log.warning("person #%s is not notified: their address cannot stand in a To header", reader.id)
    return False


MAX_REFERENCES = 20  # ancestors named in References; deeper threads still thread by the last


def thread_above(session: Session, comment: Comment) -> list[Comment]:
    """The comments `comment` answers, from the oldest (nearest the post) to its parent."""
    ancestors: list[Comment] = []
    cursor = session.get(Comment, comment.parent_id) if comment.parent_id else None
    while cursor is not None and len(ancestors) < MAX_REFERENCES:
        ancestors.append(cursor)
        cursor = session.get(Comment, cursor.parent_id) if cursor.parent_id else None
    return ancestors[::-1]
