"""What the moderation tests share: reading the mail a moderator gets, comments and their mail."""

from __future__ import annotations

import re
from email.message import EmailMessage

from sqlalchemy import select

from service.identity.addresses import ReplyTarget
from service.store.models import (
    Comment,
    InboundEmail,
    InboundStatus,
    ModerationEvent,
    OutboundEmail,
)
from tests.conftest import Blog, SinkHandler, reply_message, send, wait_for
from tests.http_fixtures import HttpClient, login, session_cookie

AUTHOR = "author@example.org"
READER = "reader@example.org"
FOLLOWER = "follower@example.org"
BASE = "https://blog.example.org"
_LINK = re.compile(re.escape(BASE) + r"(/moderate/[a-z2-7]+)")


def text_of(message: EmailMessage) -> str:
    """The plain-text body of a message."""
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def link_paths(message: EmailMessage) -> dict[str, str]:
    """The paths of the moderation links in a mail's text, by what they are labelled."""
    text = text_of(message)
    found: dict[str, str] = {}
    for label, key in (
        ("Approve it", "approve"),
        ("Remove it", "remove"),
        ("remove this", "remove"),
    ):
        at = text.find(label)
        if at >= 0:
            match = _LINK.search(text, at)
            assert match is not None, f"no link after {label!r}"
            found[key] = match.group(1)
    return found


def mail_to(sink: tuple[SinkHandler, int], address: str, count: int = 1) -> list[EmailMessage]:
    """Wait until `address` got at least `count` messages; all it got."""
    handler = sink[0]
    return wait_for(
        lambda: len(handler.to(address)) >= count and handler.to(address),
        what=f"{count} message(s) to {address}",
    )


def moderators_asked(sink: tuple[SinkHandler, int], address: str) -> list[EmailMessage]:
    """The moderation mails `address` got so far."""
    return [m for m in sink[0].to(address) if str(m["Subject"]).startswith("Comment waiting")]


def about(messages: list[EmailMessage], comment_id: int) -> list[EmailMessage]:
    """The notifications among `messages` about one comment (by their stable Message-ID)."""
    return [m for m in messages if str(m["Message-ID"]).startswith(f"<c{comment_id}.")]


def comment_row(blog: Blog, comment_id: int) -> Comment:
    """A comment as the database has it now."""
    with blog.parts.session_factory() as session:
        row = session.get(Comment, comment_id)
        assert row is not None
        return row


def all_comments(blog: Blog) -> list[Comment]:
    """Every comment, oldest first."""
    with blog.parts.session_factory() as session:
        return list(session.scalars(select(Comment).order_by(Comment.id)))


def mail_about(blog: Blog, comment_id: int) -> list[OutboundEmail]:
    """The outbound rows about one comment."""
    with blog.parts.session_factory() as session:
        query = select(OutboundEmail).where(OutboundEmail.comment_id == comment_id)
        return list(session.scalars(query.order_by(OutboundEmail.id)))


def moderation_mail(blog: Blog) -> list[OutboundEmail]:
    """The moderation mail rows, oldest first."""
    with blog.parts.session_factory() as session:
        query = select(OutboundEmail).where(OutboundEmail.kind == "moderation")
        return list(session.scalars(query.order_by(OutboundEmail.id)))


def events(blog: Blog, comment_id: int | None = None) -> list[ModerationEvent]:
    """The moderation log (of one comment), oldest first."""
    with blog.parts.session_factory() as session:
        query = select(ModerationEvent).order_by(ModerationEvent.id)
        if comment_id is not None:
            query = query.where(ModerationEvent.comment_id == comment_id)
        return list(session.scalars(query))


def finished(blog: Blog, inbound_id: int | None = None) -> InboundEmail:
    """The newest (or the given) inbound row, once it reached its terminal state."""

    def terminal() -> InboundEmail | None:
        with blog.parts.session_factory() as session:
            query = select(InboundEmail).order_by(InboundEmail.id.desc())
            if inbound_id is not None:
                query = query.where(InboundEmail.id == inbound_id)
            row = session.scalars(query).first()
            if row is not None and row.status not in (
                InboundStatus.RECEIVED,
                InboundStatus.PROCESSING,
            ):
                return row
        return None

    return wait_for(terminal, what="an inbound message to finish")


def reply_by_mail(
    blog: Blog, port: int, post_id: int, sender: str, body: str, parent: int | None = None
) -> InboundEmail:
    """Send a reply from `sender` to their reply address over SMTP; its finished inbound row."""
    address = blog.address(post_id, sender, parent)
    send(port, sender, [address], reply_message(f"Someone <{sender}>", address, body))
    return finished(blog)


def notification_id(blog: Blog, comment: Comment, person_id: int) -> str:
    """The stable (signed) Message-ID of the notification about `comment` to a person."""
    target = ReplyTarget(comment.post_id, comment.id, person_id)
    return blog.parts.book.notification_id(target, blog.parts.keyring)


def admin_browser(http: HttpClient) -> tuple[dict[str, str], bytes]:
    """A logged-in operator's browser: its Cookie header, and the CSRF form field that the
    /admin/comments page hands it."""
    browser = {"Cookie": session_cookie(login(http))}
    page = http.get("/admin/comments", auth=False, headers=browser).text
    [csrf] = set(re.findall(r'name="csrf" value="([^"]+)"', page))  # one per button
    return browser, f"csrf={csrf}".encode()
