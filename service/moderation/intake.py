"""A new comment, by mail or from the blog: published at once, or held for a moderator
(REPLYD_MODERATION), whose mail then asks to approve or remove it."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from service.identity.moderation_links import strip_moderation_links
from service.moderation.log import Actor, record_event
from service.outbound.audience import Audience
from service.outbound.moderation_mail import ModerationMail
from service.outbound.notify import Notifier, store_comment
from service.store.engine import Deferred
from service.store.models import Comment, CommentStatus, Person, Post
from service.store.subscriptions import person_for
from service.store.visibility import PUBLISHED
from service.store.webhook_events import EventType

log = logging.getLogger(__name__)

MODES = ("off", "new", "all")

# Trust under "new": the person already has a published comment somewhere on the blog.
_TRUSTED = select(Comment.id).where(Comment.author_id == bindparam("person_id"), PUBLISHED).limit(1)


class Intake:
    """Publishes new comments, or holds them and asks the post's moderators."""

    def __init__(
        self,
        notifier: Notifier,
        mail: ModerationMail | None = None,
        *,
        mode: str = "off",
        moderators: Iterable[str] = (),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown moderation mode {mode!r}")
        if mode != "off" and mail is None:
            raise ValueError("holding comments needs the moderation mail")
        self.notifier = notifier
        self.mail = mail
        self.mode = mode
        self.moderators = tuple(moderators)

    def hold_reason(self, session: Session, post: Post, writer: Person) -> str | None:
        """Why a new comment by `writer` on `post` waits for approval; None to publish it."""
        if self.mode == "off" or writer.id == post.author_id or writer.email in self.moderators:
            return None
        if self.mode == "all":
            return "every comment waits for approval (REPLYD_MODERATION=all)"
        trusted = session.connection().execute(_TRUSTED, {"person_id": writer.id}).first()
        if trusted is None:
            return "a first comment waits for approval (REPLYD_MODERATION=new)"
        return None

    def submit(
        self,
        session: Session,
        comment: Comment,
        post: Post,
        writer: Person,
        audience: Audience,
        later: Deferred | None = None,
    ) -> int:
        """Store a new comment in the caller's transaction: published, with its notifications
        queued (see Notifier.publish), or held, with the moderation mail queued instead.
        Returns how many mails were queued; `comment.status` says which it was."""
        base_url = self.notifier.base_url
        comment.body = strip_moderation_links(comment.body, base_url)
        comment.elided = strip_moderation_links(comment.elided or "", base_url)
        reason = self.hold_reason(session, post, writer)
        if reason is None:
            comment.status = CommentStatus.PUBLISHED
            return self.notifier.publish(session, comment, post, writer, audience, later)
        assert self.mail is not None
        # Held: nobody follows it or hears of it until a moderator approves it.
        comment.status = CommentStatus.HELD
        store_comment(session, comment, writer)
        if self.notifier.webhooks is not None:  # its body stays here: see webhook_payload
            self.notifier.webhooks.queue(session, EventType.HELD, [comment], later)
        via = "web" if comment.source == "web" else "inbound"
        record_event(
            session,
            Actor("replyd", via),
            "hold",
            comment_id=comment.id,
            to_status=CommentStatus.HELD,
            note=reason,
        )
        moderators = self.moderators_of(session, post)
        queued = self.mail.queue(
            session, comment, post, writer, moderators, trust=self.mode == "new"
        )
        log.info("comment #%s held for approval; %s moderator(s) asked", comment.id, queued)
        return queued

    def moderators_of(self, session: Session, post: Post) -> list[Person]:
        """Who is asked about a post's held comments: its author and REPLYD_MODERATORS."""
        people = [post.author]
        for email in self.moderators:
            if email != post.author.email:
                people.append(person_for(session, email))
        return people
