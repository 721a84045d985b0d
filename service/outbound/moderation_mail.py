"""The mail a moderator gets about a held comment: the comment, its sender, Approve and Remove."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from service.identity.moderation_links import (
    LINK_LIFETIME,
    LinkAction,
    make_moderation_token,
    moderation_url,
)
from service.outbound.compose import (
    deliverable_address,
    new_message,
    public_name,
    render_bodies,
    render_line,
)
from service.outbound.notify import post_root_id
from service.outbound.writer import MailWriter
from service.store.models import Comment, OutboundEmail, Person, Post, utcnow

_QUEUE = insert(OutboundEmail)


def moderation_mail_id(comment_id: int, person_id: int, domain: str) -> str:
    """The stable Message-ID of the moderation mail about `comment_id` to `person_id`."""
    return f"<moderate-{comment_id}.to-{person_id}@{domain}>"


class ModerationMail(MailWriter):
    """Writes and queues the mail asking moderators to approve or remove a held comment."""

    def link(self, comment: Comment, moderator: Person, action: LinkAction) -> str:
        """A signed one-click link for `moderator` to do `action` to `comment`."""
        token = make_moderation_token(comment.id, moderator.id, action, utcnow(), self.keyring)
        return moderation_url(self.base_url, token)

    def message(
        self, comment: Comment, post: Post, writer: Person, moderator: Person, *, trust: bool
    ) -> bytes:
        """The mail to one moderator; `trust`: approving lets the writer publish directly."""
        now = utcnow()
        context = {
            "site_name": self.site_name,
            "post_title": post.title,
            "post_url": post.url,
            "author_name": public_name(writer),
            # Moderators see who wrote it (the issue asks for the sender); nobody else does.
            "author_email": writer.email,
            "body": comment.body,
            "comment_id": comment.id,
            "approve_url": self.link(comment, moderator, LinkAction.APPROVE),
            "remove_url": self.link(comment, moderator, LinkAction.REMOVE),
            "expires": (now + LINK_LIFETIME).date(),
            "trust": trust,
            "admin_url": f"{self.base_url}/admin/comments",
        }
        draft = new_message(
            sender_name=self.site_name,
            sender_address=self.from_address,
            to=moderator,
            subject=render_line(self.templates, "moderation.subject", context),
            message_id=moderation_mail_id(comment.id, moderator.id, self.book.domain),
            date=now,
        )
        # Threads with the post's notifications in the moderator's mail client.
        draft["References"] = post_root_id(post, self.book.domain)
        return draft.as_bytes(render_bodies(self.templates, "moderation", context))

    def queue(
        self,
        session: Session,
        comment: Comment,
        post: Post,
        writer: Person,
        moderators: list[Person],
        *,
        trust: bool,
    ) -> int:
        """Queue the mail to each moderator who can be written to; returns how many.

        The rows name the comment (so moderating it cancels what is still queued) but no
        post: a reply to this mail must never be routed as a comment.
        """
        now = utcnow()
        rows = [
            {
                "kind": "moderation",
                "message_id": moderation_mail_id(comment.id, moderator.id, self.book.domain),
                "recipient_id": moderator.id,
                "recipient": moderator.email,
                "post_id": None,
                "comment_id": comment.id,
                "raw": self.message(comment, post, writer, moderator, trust=trust),
                "created_at": now,
                "next_attempt_at": now,
            }
            for moderator in moderators
            if moderator.id != writer.id
            and moderator.suspended_at is None
            and deliverable_address(moderator.email)
        ]
        if rows:
            session.connection().execute(_QUEUE, rows)
        return len(rows)
