"""What a moderator does to a comment (approve, hide, restore, delete) and what follows from it:
the same from the CLI, the API, the admin page and a mailed link."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from service.moderation.log import Actor, record_event
from service.outbound.audience import Audience
from service.outbound.digest_backlog import owe_to_digest_takers
from service.outbound.notify import Notifier
from service.store.models import (
    Comment,
    CommentStatus,
    InboundEmail,
    InboundSource,
    OutboundEmail,
    OutboundStatus,
    Subscription,
    utcnow,
)
from service.store.webhook_events import EventType

log = logging.getLogger(__name__)


class ModerationError(Exception):
    """An action that cannot be done; `missing` when there is no such comment (any more)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class Change:
    """What an action did: the status before and after, the mail it queued and cancelled."""

    comment_id: int
    before: str
    after: str
    notified: int = 0
    cancelled: int = 0

    @property
    def changed(self) -> bool:
        """Whether the status moved (acting twice is harmless: the second time nothing does)."""
        return self.before != self.after


def cancel_mail(
    session: Session, comment_id: int, reason: str, kinds: tuple[str, ...] | None = None
) -> int:
    """Cancel the queued mail about a comment (of `kinds`, else all); returns how many.

    Mail already being delivered is checked again when it is written (see
    Notifier.render_queued), so only what has left already is out of reach.
    """
    statement = (
        update(OutboundEmail)
        .where(
            OutboundEmail.comment_id == comment_id,
            OutboundEmail.status == OutboundStatus.QUEUED,
        )
        .values(status=OutboundStatus.CANCELLED, last_error=reason)
    )
    if kinds is not None:
        statement = statement.where(OutboundEmail.kind.in_(kinds))
    result = session.execute(statement)
    assert isinstance(result, CursorResult)
    return result.rowcount or 0


class Moderation:
    """Moderators' actions on comments, each in the caller's transaction and logged."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def _tell_webhooks(self, session: Session, kind: EventType, comment: Comment) -> None:
        """Queue the comment event for the webhooks, if any, in the action's transaction."""
        if self.notifier.webhooks is not None:
            self.notifier.webhooks.queue(session, kind, [comment])

    def _load(self, session: Session, comment_id: int) -> Comment:
        comment = session.get(Comment, comment_id, with_for_update=True)
        if comment is None or comment.status == CommentStatus.DELETED:
            raise ModerationError(f"there is no comment #{comment_id}", missing=True)
        return comment

    def approve(self, session: Session, comment_id: int, actor: Actor) -> Change:
        """Publish a held (or hidden) comment; the first time, its followers are told now."""
        comment = self._load(session, comment_id)
        before = comment.status
        if before == CommentStatus.PUBLISHED:
            return Change(comment_id, before, before)
        comment.status = CommentStatus.PUBLISHED
        notified = 0
        if comment.published_at is None and comment.import_key is not None:
            # An imported comment held on the old blog: shown now, but it is old news, and
            # imported comments mail nobody (docs/import.md).
            comment.published_at = utcnow()
        elif comment.published_at is None:
            comment.published_at = utcnow()
            notified = self._announce(session, comment)
            # Digest takers get it as if just published, even when a digest run has moved
            # their watermark past its id while it was held.
            owe_to_digest_takers(session, comment)
        self._tell_webhooks(session, EventType.PUBLISHED, comment)
        # The other moderators' mail about it has nothing left to ask.
        cancelled = cancel_mail(session, comment.id, "the comment was approved", ("moderation",))
        record_event(
            session,
            actor,
            "approve",
            comment_id=comment.id,
            from_status=before,
            to_status=comment.status,
        )
        return Change(comment.id, before, comment.status, notified, cancelled)

    def _announce(self, session: Session, comment: Comment) -> int:
        """Queue the notifications of a comment published for the first time, as publishing
        it at once would have (the same Message-IDs), and make its writer follow the post."""
        post, writer = comment.post, comment.author
        audience = Audience(session, [post])
        recipients = audience.followers(post, writer.id)
        if not audience.subscribed(post, writer.id):  # unless they opted out before
            session.add(Subscription(post_id=post.id, person_id=writer.id))
        return self.notifier.queue_for_comment(session, comment, post, recipients)

    def hide(self, session: Session, comment_id: int, actor: Actor, note: str = "") -> Change:
        """Remove a comment from everywhere, restorably; its queued mail is cancelled."""
        comment = self._load(session, comment_id)
        before = comment.status
        if before == CommentStatus.HIDDEN:
            return Change(comment_id, before, before)
        comment.status = CommentStatus.HIDDEN
        cancelled = cancel_mail(session, comment.id, "the comment was removed by a moderator")
        self._tell_webhooks(session, EventType.HIDDEN, comment)
        record_event(
            session,
            actor,
            "hide",
            comment_id=comment.id,
            from_status=before,
            to_status=comment.status,
            note=note,
        )
        return Change(comment.id, before, comment.status, cancelled=cancelled)

    def restore(self, session: Session, comment_id: int, actor: Actor) -> Change:
        """Bring a hidden comment back as it was: published again without mailing anyone
        again, or held again if it was never approved."""
        comment = self._load(session, comment_id)
        before = comment.status
        if before != CommentStatus.HIDDEN:
            raise ModerationError(
                f"comment #{comment_id} is {before}, not hidden; only hidden comments can be "
                "restored"
            )
        published = comment.published_at is not None
        comment.status = CommentStatus.PUBLISHED if published else CommentStatus.HELD
        self._tell_webhooks(session, EventType.PUBLISHED if published else EventType.HELD, comment)
        record_event(
            session,
            actor,
            "restore",
            comment_id=comment.id,
            from_status=before,
            to_status=comment.status,
        )
        return Change(comment.id, before, comment.status)

    def delete(self, session: Session, comment_id: int, actor: Actor) -> Change:
        """Delete a comment for good: its text (and the mail it came in) goes, its queued mail
        is cancelled; the row stays so that answers under it keep their place."""
        comment = self._load(session, comment_id)
        before = comment.status
        comment.status = CommentStatus.DELETED
        comment.body = ""
        comment.elided = ""
        cancelled = cancel_mail(session, comment.id, "the comment was deleted by a moderator")
        self._tell_webhooks(session, EventType.DELETED, comment)
        if comment.inbound_email_id is not None:
            # The message's one stored copy goes, for every row that shares it.
            source = select(InboundEmail.source_id).where(
                InboundEmail.id == comment.inbound_email_id
            )
            session.execute(
                update(InboundSource)
                .where(InboundSource.id == source.scalar_subquery())
                .values(raw=b"")
            )
            session.execute(
                update(InboundEmail)
                .where(InboundEmail.source_id == source.scalar_subquery())
                .values(raw_purged_at=utcnow())
            )
        record_event(
            session,
            actor,
            "delete",
            comment_id=comment.id,
            from_status=before,
            to_status=comment.status,
        )
        return Change(comment.id, before, comment.status, cancelled=cancelled)

    def set_status(self, session: Session, comment_id: int, status: str, actor: Actor) -> Change:
        """The API's PATCH: "published" approves or restores, "hidden" hides."""
        if status == CommentStatus.PUBLISHED:
            return self.approve(session, comment_id, actor)
        if status == CommentStatus.HIDDEN:
            return self.hide(session, comment_id, actor)
        raise ModerationError(
            f"a comment's status can be set to published or hidden, not {status!r}"
        )
