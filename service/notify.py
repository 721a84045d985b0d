"""Who hears about a new comment, and the notification mail each of them gets."""

from __future__ import annotations

from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.addresses import AddressBook, Keyring, ReplyTarget
from service.marker import MARKER_HTML_ID, MARKER_TEXT
from service.models import Comment, OutboundEmail, Person, Post, Subscription

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


def make_templates(directory: Path = TEMPLATES_DIR) -> Environment:
    """The jinja2 environment for outbound mail: HTML autoescaped, text left as typed."""
    return Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def header_text(value: str, limit: int = 200) -> str:
    """User data made safe for a header value: one line, no control characters, bounded."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(cleaned.split())[:limit]


def public_name(person: Person) -> str:
    """How a person is named to others: their display name, never their address."""
    return header_text(person.display_name) or "A reader"


def post_root_id(post: Post, domain: str) -> str:
    """The Message-ID every notification about a post refers back to, so clients thread it."""
    return f"<post-{post.id}@{domain}>"


def notification_id(comment_id: int, person_id: int, domain: str) -> str:
    """The stable Message-ID of the notification about `comment_id` sent to `person_id`."""
    return f"<comment-{comment_id}.to-{person_id}@{domain}>"


def followers(session: Session, post: Post, writer_id: int) -> list[Person]:
    """Everyone who gets a mail per comment on `post`, except the comment's writer."""
    subscriptions = session.scalars(
        select(Subscription).where(Subscription.post_id == post.id)
    ).all()
    opted_out = {s.person_id for s in subscriptions if not s.active or s.digest is not None}
    wanted = {s.person_id for s in subscriptions if s.active and s.digest is None}
    wanted.add(post.author_id)
    commenters = session.scalars(
        select(Comment.author_id).where(Comment.post_id == post.id).distinct()
    ).all()
    wanted.update(commenters)
    wanted -= opted_out
    wanted.discard(writer_id)
    if not wanted:
        return []
    return list(session.scalars(select(Person).where(Person.id.in_(wanted)).order_by(Person.id)))


def follow(session: Session, post: Post, person: Person) -> None:
    """Make a commenter follow the thread, unless they opted out of it before."""
    exists = session.scalar(
        select(Subscription.id).where(
            Subscription.post_id == post.id, Subscription.person_id == person.id
        )
    )
    if exists is None:
        session.add(Subscription(post_id=post.id, person_id=person.id))


class Notifier:
    """Renders notification mail and queues it in the caller's transaction."""

    def __init__(
        self,
        book: AddressBook,
        keyring: Keyring,
        *,
        from_address: str,
        site_name: str,
        templates: Environment | None = None,
    ) -> None:
        self.book = book
        self.keyring = keyring
        self.from_address = from_address
        self.site_name = site_name
        self.templates = templates or make_templates()

    def render(
        self, comment: Comment, post: Post, recipient: Person, session: Session
    ) -> EmailMessage:
        """The notification about `comment` for `recipient`, ready to send."""
        domain = self.book.domain
        author = comment.author
        parent = session.get(Comment, comment.parent_id) if comment.parent_id else None
        reply_to = self.book.reply_address(
            ReplyTarget(post.id, comment.id, recipient.id), self.keyring
        )
        context = {
            "marker": MARKER_TEXT,
            "marker_id": MARKER_HTML_ID,
            "author_name": public_name(author),
            "post_title": post.title,
            "post_url": post.url,
            "site_name": self.site_name,
            "body": comment.body,
            "parent": parent is not None,
            "parent_author_name": public_name(parent.author) if parent else "",
            "parent_body": parent.body if parent else "",
        }
        message = EmailMessage(policy=policy.SMTP)
        message["From"] = Address(
            display_name=header_text(f"{public_name(author)} via {self.site_name}"),
            addr_spec=self.from_address,
        )
        message["To"] = Address(
            display_name=header_text(recipient.display_name), addr_spec=recipient.email
        )
        message["Reply-To"] = Address(display_name=header_text(post.title), addr_spec=reply_to)
        message["Subject"] = header_text(f"Re: {post.title}", 250)
        message["Date"] = format_datetime(comment.created_at)
        message["Message-ID"] = notification_id(comment.id, recipient.id, domain)
        # Chain: the post's root, then each ancestor comment as this recipient saw it.
        references = [post_root_id(post, domain)]
        ancestors: list[int] = []
        cursor = parent
        while cursor is not None and len(ancestors) < 20:
            ancestors.append(cursor.id)
            cursor = session.get(Comment, cursor.parent_id) if cursor.parent_id else None
        references += [notification_id(cid, recipient.id, domain) for cid in reversed(ancestors)]
        message["In-Reply-To"] = references[-1]
        message["References"] = " ".join(references)
        message["List-Id"] = formataddr((header_text(post.title), f"post-{post.id}.{domain}"))
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        message["Precedence"] = "list"
        message.set_content(self.templates.get_template("notification.txt").render(context))
        message.add_alternative(
            self.templates.get_template("notification.html").render(context), subtype="html"
        )
        return message

    def queue_for_comment(self, session: Session, comment: Comment, post: Post) -> int:
        """Queue one notification per follower; returns how many were queued."""
        recipients = followers(session, post, comment.author_id)
        for person in recipients:
            message = self.render(comment, post, person, session)
            session.add(
                OutboundEmail(
                    kind="notification",
                    message_id=str(message["Message-ID"]),
                    recipient_id=person.id,
                    recipient=person.email,
                    post_id=post.id,
                    comment_id=comment.id,
                    raw=message.as_bytes(),
                )
            )
        return len(recipients)
