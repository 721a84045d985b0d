"""Helpers for the blog-side tests: readers' requests, the confirmation mail and what is stored."""

from __future__ import annotations

import re
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import func, select

from service.store.models import Comment, FollowRequest, OutboundEmail, PendingComment, Subscription
from tests.conftest import Blog, SinkHandler, wait_for
from tests.http_fixtures import HttpClient, Reply

AUTHOR = "author@example.org"
READER = "reader@example.org"
BLOG_ORIGIN = "https://blog.example.org"  # where conftest's posts live
_LINK = re.compile(r"https?://\S+/confirm/([a-z2-7]+)")


def reader_comment(
    http: HttpClient,
    body: str = "Hello from the blog",
    *,
    email: str = READER,
    name: str = "Rita",
    slug: str = "hello",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> Reply:
    """POST a reader's comment as the embed does: JSON, no Authorization."""
    data = {"author_email": email, "author_name": name, "body": body, **fields}
    return http.post(
        f"/api/posts/{slug}/comments", json_body=data, auth=False, headers=headers or {}
    )


def reader_follow(
    http: HttpClient,
    email: str = READER,
    *,
    slug: str = "hello",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> Reply:
    """POST a reader's follow request as the embed does."""
    data = {"email": email, **fields}
    return http.post(f"/api/posts/{slug}/follow", json_body=data, auth=False, headers=headers or {})


def post_form(
    http: HttpClient, path: str, fields: dict[str, str], headers: dict[str, str] | None = None
) -> Reply:
    """POST an HTML form as a browser without JavaScript does."""
    sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    return http.post(path, data=urlencode(fields).encode(), auth=False, headers=sent)


def text_of(mail: EmailMessage) -> str:
    """The plain-text part of a message."""
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def confirmation_mails(sink: SinkHandler, address: str = READER) -> list[EmailMessage]:
    """Confirmation mails delivered to an address so far."""
    return [m for m in sink.to(address) if "/confirm/" in text_of(m)]


def wait_for_confirmation(sink: SinkHandler, address: str = READER, count: int = 1) -> EmailMessage:
    """The `count`th confirmation mail to an address, once it has arrived."""
    mails = wait_for(
        lambda: (found := confirmation_mails(sink, address)) and len(found) >= count and found,
        what=f"confirmation mail #{count} to {address}",
    )
    return mails[count - 1]


def confirm_token(mail: EmailMessage) -> str:
    """The token of the confirmation link in a mail."""
    match = _LINK.search(text_of(mail))
    assert match is not None, text_of(mail)
    return match.group(1)


def confirm_path(mail: EmailMessage) -> str:
    """The path of the confirmation link in a mail (its host is REPLYD_BASE_URL's)."""
    match = _LINK.search(text_of(mail))
    assert match is not None
    return urlsplit(match.group(0)).path


def count_rows(blog: Blog, model: Any, *where: Any) -> int:
    """Rows of a table, with conditions."""
    with blog.parts.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def comments(blog: Blog) -> list[Comment]:
    """Every published comment."""
    with blog.parts.session_factory() as session:
        return list(session.scalars(select(Comment).order_by(Comment.id)))


def subscription(blog: Blog, email: str, post_id: int) -> Subscription | None:
    """A person's subscription row to a post, if any."""
    with blog.parts.session_factory() as session:
        from service.store.models import Person

        person = session.scalar(select(Person).where(Person.email == email))
        if person is None:
            return None
        return session.scalar(
            select(Subscription).where(
                Subscription.person_id == person.id, Subscription.post_id == post_id
            )
        )


def outbound_kinds(blog: Blog) -> list[tuple[str, str]]:
    """(kind, recipient) of every queued or sent message, oldest first."""
    with blog.parts.session_factory() as session:
        rows = session.execute(
            select(OutboundEmail.kind, OutboundEmail.recipient).order_by(OutboundEmail.id)
        )
        return [(kind, recipient) for kind, recipient in rows]


def pending(blog: Blog) -> list[PendingComment]:
    """Readers' comments kept, oldest first."""
    with blog.parts.session_factory() as session:
        return list(session.scalars(select(PendingComment).order_by(PendingComment.id)))


def follow_requests(blog: Blog) -> list[FollowRequest]:
    """Readers' follow requests kept, oldest first."""
    with blog.parts.session_factory() as session:
        return list(session.scalars(select(FollowRequest).order_by(FollowRequest.id)))


class FormReader(HTMLParser):
    """Reads a page's forms: fields by id (with their attributes), labels, hidden values."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, dict[str, str | None]] = {}
        self.labels: set[str] = set()
        self.hidden: dict[str, str] = {}
        self.alerts: list[str] = []
        self._alert = False
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note fields, labels and alerts."""
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "label" and values.get("for"):
            self.labels.add(values["for"] or "")
        if tag in ("input", "textarea", "select"):
            if values.get("type") == "hidden":
                self.hidden[values.get("name") or ""] = values.get("value") or ""
            else:
                self.fields[values.get("id") or ""] = values
        if values.get("role") == "alert":
            self._alert = True
            self.alerts.append("")

    def handle_endtag(self, tag: str) -> None:
        """Leave an alert."""
        self._alert = False

    def handle_data(self, data: str) -> None:
        """Collect an alert's text."""
        if self._alert:
            self.alerts[-1] += data


def read_forms(html: str) -> FormReader:
    """The forms of a page."""
    reader = FormReader()
    reader.feed(html)
    return reader
