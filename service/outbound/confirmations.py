"""Readers' comments and follows from the blog: kept until their address is confirmed (by the
link mailed to it, or by a reply to that mail), then published or started."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service.identity.addresses import (
    CONFIRM_COMMENT,
    CONFIRM_FOLLOW,
    Confirmation,
    make_confirmation,
)
from service.moderation.intake import Intake
from service.outbound.audience import Audience
from service.outbound.compose import (
    mailbox,
    new_message,
    render_bodies,
    render_line,
)
from service.outbound.writer import MailWriter
from service.store.blog_following import follow_blog
from service.store.models import (
    Comment,
    FollowRequest,
    OutboundEmail,
    PendingComment,
    Person,
    Post,
)
from service.store.subscriptions import check_subscribable, person_for, set_following

# How long a confirmation link (or a reply to its mail) works; older requests are forgotten.
CONFIRM_DAYS = 7
# One address and post get at most one follow confirmation mail in this time.
FOLLOW_MAIL_EVERY = timedelta(hours=1)
# How a reader may follow a post: a mail per comment, a digest, or not at all.
FOLLOW_CHOICES = ("each", "daily", "weekly", "none")
_MAIL_BODY_CHARS = 5000  # of a comment quoted in its confirmation mail


def epoch(moment: datetime) -> int:
    """Whole seconds since 1970 of a stored time (as confirmation tokens carry it)."""
    return int(moment.astimezone(UTC).timestamp())


@dataclass(frozen=True)
class Request:
    """A confirmation's request as its pages show it, and what became of it.

    `state`: pending (waiting), done (just carried out), already (carried out before),
    expired (too old), closed (the post takes no more comments).
    """

    kind: int
    state: str
    post_slug: str
    post_title: str
    post_url: str
    email: str
    author_name: str = ""
    body: str = ""
    follow: str = "each"
    person_id: int | None = None
    comment_id: int | None = None
    all_posts: bool = False  # a follow of every new post on the blog, not of this post


class Confirmations(MailWriter):
    """Stores readers' requests from the blog and queues the mail that confirms them, in the
    caller's transaction."""

    def request_comment(
        self,
        session: Session,
        post: Post,
        *,
        parent_id: int | None,
        email: str,
        author_name: str,
        body: str,
        follow: str,
        now: datetime,
    ) -> PendingComment:
        """Keep a comment until `email` confirms it, and mail the confirmation there."""
        forget_expired(session, now)
        pending = PendingComment(
            post_id=post.id,
            parent_id=parent_id,
            email=email,
            author_name=author_name,
            body=body,
            follow=follow,
            created_at=now.replace(microsecond=0),
        )
        session.add(pending)
        session.flush()
        context = {"author_name": author_name, "body": body[:_MAIL_BODY_CHARS], "follow": follow}
        self._queue(session, CONFIRM_COMMENT, pending.id, pending.created_at, post, email, context)
        return pending

    def request_follow(
        self,
        session: Session,
        post: Post,
        *,
        email: str,
        digest: str | None,
        now: datetime,
        all_posts: bool = False,
    ) -> bool:
        """Ask `email` to confirm following `post` (with `all_posts`, every new post on the
        blog, asked on this post's page); False (and nothing mailed) when the same request
        for this address and post was mailed within the hour."""
        forget_expired(session, now)
        # On PostgreSQL, requests for one post wait for each other here, so two at once
        # cannot both find no recent mail (SQLite's write lock already serialises them).
        session.execute(select(Post.id).where(Post.id == post.id).with_for_update())
        recent = session.scalar(
            select(FollowRequest.id)
            .where(
                FollowRequest.post_id == post.id,
                FollowRequest.email == email,
                FollowRequest.all_posts == all_posts,
                FollowRequest.created_at > now - FOLLOW_MAIL_EVERY,
            )
            .limit(1)
        )
        if recent is not None:
            return False
        request = FollowRequest(
            post_id=post.id,
            email=email,
            digest=digest,
            all_posts=all_posts,
            created_at=now.replace(microsecond=0),
        )
        session.add(request)
        session.flush()
        context = {"follow": digest or "each", "all_posts": all_posts}
        self._queue(session, CONFIRM_FOLLOW, request.id, request.created_at, post, email, context)
        return True

    def link(self, confirmation: Confirmation) -> str:
        """The confirmation page of a request."""
        return f"{self.base_url}/confirm/{make_confirmation(confirmation, self.keyring)}"

    def _queue(
        self,
        session: Session,
        kind: int,
        request_id: int,
        created_at: datetime,
        post: Post,
        email: str,
        context: Mapping[str, object],
    ) -> None:
        """Queue the mail asking `email` to confirm a request; its Reply-To confirms too."""
        confirmation = Confirmation(kind, request_id, epoch(created_at))
        name = "confirm_comment" if kind == CONFIRM_COMMENT else "confirm_follow"
        values = {
            **context,
            "site_name": self.site_name,
            "post_title": post.title,
            "post_url": post.url,
            "confirm_url": self.link(confirmation),
            "days": CONFIRM_DAYS,
        }
        message_id = f"<{name.replace('_', '-')}-{request_id}@{self.book.domain}>"
        message = new_message(
            sender_name=self.site_name,
            sender_address=self.from_address,
            to=email,
            subject=render_line(self.templates, f"{name}.subject", values),
            message_id=message_id,
            date=created_at,
        )
        message["Reply-To"] = mailbox(
            self.site_name, self.book.confirm_address(confirmation, self.keyring)
        )
        session.add(
            OutboundEmail(
                kind="confirmation",
                message_id=message_id,
                recipient=email,
                post_id=post.id,
                raw=message.as_bytes(render_bodies(self.templates, name, values)),
            )
        )


def forget_expired(session: Session, now: datetime) -> None:
    """Delete requests whose confirmation no longer works (pending or carried out)."""
    oldest = now - timedelta(days=CONFIRM_DAYS)
    session.execute(delete(PendingComment).where(PendingComment.created_at < oldest))
    session.execute(delete(FollowRequest).where(FollowRequest.created_at < oldest))


def _row(session: Session, confirmation: Confirmation) -> PendingComment | FollowRequest | None:
    """The request a (verified) confirmation names, None when there is no such row any more;
    a row made after the token (ids restart with a new database) does not match it."""
    row: PendingComment | FollowRequest | None
    if confirmation.kind == CONFIRM_COMMENT:
        row = session.get(PendingComment, confirmation.request_id)
    else:
        row = session.get(FollowRequest, confirmation.request_id)
    if row is None or epoch(row.created_at) != confirmation.issued:
        return None
    return row


def look_up(session: Session, confirmation: Confirmation, now: datetime) -> Request | None:
    """What a confirmation would carry out, and whether it still can; None if it names
    nothing we hold."""
    row = _row(session, confirmation)
    if row is None:
        return None
    post = row.post
    if isinstance(row, PendingComment):
        found = Request(
            CONFIRM_COMMENT,
            "already" if row.status == "published" else "pending",
            post.slug,
            post.title,
            post.url,
            row.email,
            author_name=row.author_name,
            body=row.body,
            follow=row.follow,
            comment_id=row.comment_id,
        )
    else:
        found = Request(
            CONFIRM_FOLLOW,
            "already" if row.status == "confirmed" else "pending",
            post.slug,
            post.title,
            post.url,
            row.email,
            follow=row.digest or "each",
            all_posts=row.all_posts,
        )
    if found.state == "pending" and row.created_at <= now - timedelta(days=CONFIRM_DAYS):
        return replace(found, state="expired")
    if found.state == "pending" and found.kind == CONFIRM_COMMENT and post.closed:
        return replace(found, state="closed")
    return found


def carry_out(
    session: Session,
    confirmation: Confirmation,
    intake: Intake,
    audience: Audience,
    now: datetime,
) -> Request | None:
    """Confirm a request in the caller's transaction: publish the comment (its followers are
    mailed, its writer follows as they chose) or start the follow. Once only: a second
    confirmation finds it `already` done and changes nothing."""
    found = look_up(session, confirmation, now)
    if found is None or found.state != "pending":
        return found
    row = _row(session, confirmation)
    assert row is not None
    model = type(row)
    done = "published" if model is PendingComment else "confirmed"
    # Claimed by one UPDATE: of two confirmations at once (a double click, the link and a
    # reply), one changes the row and the other finds it done.
    claimed = session.execute(
        update(model)
        .where(model.id == row.id, model.status == "pending")
        .values(status=done, confirmed_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 1) != 1:
        return replace(found, state="already")
    session.refresh(row)
    # Confirmed from the mailbox itself: the person asks anew, so an address they once had
    # forgotten comes off the suppression list (check_subscribable).
    check_subscribable(session, row.email, asked_by_person=True)
    person = person_for(session, row.email)
    # They just received our mail: a bounce suspension of theirs is over.
    person.suspended_at, person.bounce_score = None, 0.0
    post = row.post
    comment_id = None
    if isinstance(row, PendingComment):
        if row.author_name:
            person.display_name = row.author_name
        parent = session.get(Comment, row.parent_id) if row.parent_id else None
        comment = Comment(
            post_id=post.id,
            parent_id=parent.id if parent is not None and parent.post_id == post.id else None,
            author_id=person.id,
            body=row.body,
            source="web",
        )
        session.flush()
        intake.submit(session, comment, post, person, audience)  # or held for a moderator
        row.comment_id = comment_id = comment.id
        follow(session, post, person, row.follow)
    elif row.all_posts:
        follow_blog(session, person.id, active=True, digest=row.digest)
    else:
        follow(session, post, person, row.digest or "each")
    audience.forget()  # subscriptions changed outside what it follows itself
    return replace(found, state="done", person_id=person.id, comment_id=comment_id)


def follow(session: Session, post: Post, person: Person, choice: str) -> None:
    """Make a person's subscription to a post what they chose: each, daily, weekly or none."""
    if choice == "none":
        set_following(session, post.id, person.id, active=False)
    else:
        digest = None if choice == "each" else choice
        set_following(session, post.id, person.id, active=True, digest=digest)
