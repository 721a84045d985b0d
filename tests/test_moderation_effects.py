"""What moderating does, over real HTTP and a real SMTP sink: a hidden comment leaves the page,
feed, API and digests and its queued mail is cancelled; answers stay under a placeholder;
restore mails nobody; the API and the admin page moderate with the same effects."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from service.store.models import (
    CommentStatus,
    InboundEmail,
    InboundStatus,
    OutboundEmail,
    OutboundStatus,
    Subscription,
    utcnow,
)
from tests.conftest import Blog, RunningServer, SinkHandler, wait_for
from tests.http_fixtures import API_TOKEN, HttpClient, http, settings_overrides
from tests.moderation_helpers import (
    AUTHOR,
    FOLLOWER,
    READER,
    about,
    admin_browser,
    comment_row,
    events,
    mail_about,
    mail_to,
    reply_by_mail,
    text_of,
)

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

Sink = tuple[SinkHandler, int]
ATOM = "{http://www.w3.org/2005/Atom}"
OTHER = "other@example.org"
FAN = "fan@example.org"


def web_comment(http: HttpClient, body: str, author: str = READER, **extra: Any) -> int:
    """A comment made on the blog, through the API; its id."""
    made = http.post(
        "/api/posts/hello/comments", json_body={"author_email": author, "body": body, **extra}
    )
    assert made.status == 201, made.text
    return int(made.json()["id"])


def thread(http: HttpClient) -> list[dict[str, Any]]:
    """The post's thread as the public API shows it."""
    return list(http.get("/api/posts/hello/comments", auth=False).json()["comments"])


def feed_text(http: HttpClient) -> list[str]:
    """The contents of the feed's entries."""
    root = ET.fromstring(http.get("/posts/hello/comments.atom").body)
    return [entry.findtext(f"{ATOM}content") or "" for entry in root.iter(f"{ATOM}entry")]


def follow(blog: Blog, post: int, email: str, digest: str | None = None) -> int:
    """Make someone follow the post (per comment, or by digest); their person id."""
    person = blog.person(email)
    # A digest taker's last digest "just went out": the daemon's own scheduler then waits for
    # the next digest hour, and only the test's runs send digests.
    sent = utcnow() if digest else None
    with blog.parts.session_factory.begin() as session:
        session.add(
            Subscription(post_id=post, person_id=person, digest=digest, digest_sent_at=sent)
        )
    return person


def patch(http: HttpClient, comment_id: int, status: str) -> Any:
    """PATCH a comment's status through the API."""
    return http.request("PATCH", f"/api/comments/{comment_id}", json_body={"status": status})


class TestHideAndRestore:
    def test_hide_leaves_page_feed_api_digest_and_cancels_mail_restore_mails_nobody(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """Mail about a comment waits for a retry; hiding the comment cancels it (it never
        leaves, even once due) and takes the comment off the page, feed, API and the next
        digest; restoring brings it back and mails nobody."""
        post = blog.post()
        fan = follow(blog, post, FOLLOWER)
        follow(blog, post, FAN, digest="daily")
        sink[0].answers = ["451 4.3.0 Try again later"] * 2  # the author's and the follower's
        spam = web_comment(http, "Cheap pills here")
        wait_for(
            lambda: (
                all(m.attempts == 1 and m.status == "queued" for m in mail_about(blog, spam))
                and len(mail_about(blog, spam)) == 2
            ),
            what="both notifications waiting for a retry",
        )
        fine = web_comment(http, "Still here", author=OTHER)
        [told] = mail_to(sink, FOLLOWER)
        assert about([told], fine)

        hidden = patch(http, spam, "hidden")
        assert hidden.status == 200, hidden.text
        assert hidden.json()["status"] == "hidden" and hidden.json()["mail_cancelled"] == 2
        assert {m.status for m in mail_about(blog, spam)} == {OutboundStatus.CANCELLED}
        assert "Cheap pills" not in http.get("/posts/hello").text
        assert "Still here" in http.get("/posts/hello").text
        assert feed_text(http) == ["Still here"]
        assert [c["body"] for c in thread(http)] == ["Still here"]
        assert http.get("/api/posts/hello", auth=False).json()["comment_count"] == 1

        # The next digest: both comments are new to the digest taker; only one is news.
        assert blog.parts.digests().send(blog.parts.session_factory, "daily") == 1
        server.server._outbound_wakeup.set()
        [digest] = mail_to(sink, FAN)
        assert "Still here" in text_of(digest) and "Cheap pills" not in text_of(digest)

        # Cancelled mail stays unsent even when due: a later comment's mail proves the
        # outbox ran past it.
        with blog.parts.session_factory.begin() as session:
            session.execute(
                update(OutboundEmail)
                .where(OutboundEmail.comment_id == spam)
                .values(next_attempt_at=utcnow() - timedelta(hours=1))
            )
        later = web_comment(http, "A later comment", author=OTHER)
        assert about(mail_to(sink, FOLLOWER, 2), later)
        assert about(sink[0].to(FOLLOWER), spam) == []

        restored = patch(http, spam, "published")
        assert restored.json()["status"] == "published"
        assert restored.json()["notifications_queued"] == 0
        assert "Cheap pills here" in [c["body"] for c in thread(http)]
        last = web_comment(http, "After the restore", author=OTHER)
        assert about(mail_to(sink, FOLLOWER, 3), last)
        assert about(sink[0].to(FOLLOWER), spam) == [] and about(sink[0].to(AUTHOR), spam) == []
        assert len(mail_about(blog, spam)) == 2
        assert [e.action for e in events(blog, spam)] == ["hide", "approve"]
        assert {e.via for e in events(blog, spam)} == {"api"}
        assert fan != 0

    def test_answers_stay_under_a_placeholder_and_delete_is_for_good(
        self, server: RunningServer, blog: Blog, http: HttpClient
    ) -> None:
        """Hiding or deleting a comment with answers leaves a "comment removed" placeholder
        (nothing of it shown) with the answers under it; one without answers just goes;
        nobody can answer a removed comment; delete wipes its text and its mail."""
        post = blog.post()
        row = reply_by_mail(blog, server.port, post, READER, "Original thought")
        [first] = thread(http)
        answer = web_comment(http, "An answer", author=AUTHOR, parent_id=first["id"])
        lonely = web_comment(http, "Nobody answered me", author=OTHER)
        assert patch(http, first["id"], "hidden").status == 200
        assert patch(http, lonely, "hidden").status == 200

        page = http.get("/posts/hello").text
        assert f'id="comment-{first["id"]}"' in page and "Comment removed." in page
        assert "Original thought" not in page and "Nobody answered me" not in page
        assert f'id="comment-{lonely}"' not in page
        placeholder, shown = thread(http)
        assert placeholder == {
            "id": first["id"],
            "parent_id": None,
            "depth": 0,
            "author_name": "",
            "body": "",
            "elided": "",
            "source": "email",
            "created_at": None,
            "status": "removed",
        }
        assert (shown["id"], shown["depth"], shown["parent_id"]) == (answer, 1, first["id"])
        assert feed_text(http) == ["An answer"]

        refused = reply_by_mail(blog, server.port, post, OTHER, "Me too", parent=first["id"])
        assert refused.status == InboundStatus.REJECTED and "no longer exists" in (
            refused.reason or ""
        )

        deleted = http.request("DELETE", f"/api/comments/{first['id']}")
        assert deleted.status == 200 and deleted.json()["status"] == "deleted"
        gone = comment_row(blog, first["id"])
        assert (gone.status, gone.body, gone.elided) == (CommentStatus.DELETED, "", "")
        with blog.parts.session_factory() as session:
            inbound = session.get(InboundEmail, row.id)
            assert inbound is not None and inbound.raw == b"" and inbound.raw_purged_at
        assert [c["status"] for c in thread(http)] == ["removed", "published"]
        assert http.request("DELETE", f"/api/comments/{first['id']}").status == 404
        assert patch(http, first["id"], "published").status == 404


class TestModerationApiAndAdminPage:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """First comments wait for approval."""
        return {"REPLYD_API_TOKEN": API_TOKEN, "REPLYD_MODERATION": "new"}

    def test_api_lists_by_status_and_refuses_what_it_cannot_do(
        self, server: RunningServer, blog: Blog, http: HttpClient
    ) -> None:
        """GET /api/comments wants the token and lists by status across posts, a page at a
        time; PATCH and DELETE answer bad input with a sentence."""
        blog.post()
        first = web_comment(http, "One")
        second = web_comment(http, "Two", author=OTHER)
        mine = web_comment(http, "Mine", author=AUTHOR)
        assert http.get("/api/comments?status=held", auth=False).status == 401
        held = http.get("/api/comments?status=held").json()
        assert [(c["id"], c["status"], c["post_id"]) for c in held["items"]] == [
            (second, "held", "hello"),
            (first, "held", "hello"),
        ]
        assert held["items"][0]["author_email"] == OTHER
        assert [c["id"] for c in http.get("/api/comments?status=published").json()["items"]] == [
            mine
        ]
        page = http.get("/api/comments?limit=2").json()
        assert len(page["items"]) == 2 and page["next_before"] == second
        rest = http.get(f"/api/comments?limit=2&before={second}").json()
        assert [c["id"] for c in rest["items"]] == [first] and rest["next_before"] is None
        assert "must be one of" in http.get("/api/comments?status=spam").json()["error"]
        assert patch(http, first, "held").status == 400
        assert patch(http, 999, "hidden").status == 404
        assert http.request("PATCH", "/api/comments/x", json_body={}).status == 400
        assert http.request("DELETE", f"/api/comments/{first}", auth=False).status == 401
        assert [c["body"] for c in thread(http)] == ["Mine"]

    def test_admin_page_explains_and_its_buttons_moderate(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """The page explains moderation and lists held comments with buttons; a button without
        the form's CSRF value does nothing, with it approves and the followers are mailed."""
        post = blog.post()
        follow(blog, post, FOLLOWER)
        held = web_comment(http, "Please approve me")
        page = http.get("/admin/comments")
        assert page.status == 200 and "How moderation works" in page.text
        assert "REPLYD_MODERATION is <strong>new</strong>" in page.text
        assert f'action="/admin/comments/{held}/approve"' in page.text
        assert f'action="/admin/comments/{held}/delete"' in page.text
        assert f'action="/admin/comments/{held}/restore"' not in page.text
        assert http.get("/admin/comments", auth=False).status == 401

        browser, form = admin_browser(http)
        approve = f"/admin/comments/{held}/approve"
        stale = http.post(approve, data=b"csrf=wrong", auth=False, headers=browser)
        assert stale.status == 403 and comment_row(blog, held).status == CommentStatus.HELD
        done = http.post(approve, data=form, auth=False, headers=browser)
        assert done.status == 303 and done.headers["location"] == f"/admin/comments#comment-{held}"
        assert comment_row(blog, held).status == CommentStatus.PUBLISHED
        assert about(mail_to(sink, FOLLOWER), held)
        again = http.post(f"/admin/comments/{held}/restore", data=form, auth=False, headers=browser)
        assert again.status == 409
        metrics = http.get("/metrics", auth=False).text
        assert "replyd_comments_held 0.0" in metrics
        web_comment(http, "Me too, please", author=OTHER)
        assert "replyd_comments_held 1.0" in http.get("/metrics", auth=False).text
        assert [(e.action, e.via) for e in events(blog, held)] == [
            ("hold", "web"),
            ("approve", "admin"),
        ]
        with blog.parts.session_factory() as session:
            kinds = session.scalars(
                select(OutboundEmail.kind).where(OutboundEmail.comment_id == held)
            ).all()
        assert "moderation" in kinds and "notification" in kinds


def test_mail_claimed_before_the_hide_is_refused_when_written(blog: Blog) -> None:
    """A notification the outbox had claimed (so the hide could not cancel it) is checked
    again when its message is written, and fails instead of leaving."""
    from service.moderation.log import Actor
    from service.outbound.audience import Audience
    from service.store.models import Comment, Person, Post

    parts = blog.parts
    post_id = blog.post()
    reader_id = blog.person(READER)
    with parts.session_factory.begin() as session:
        post, reader = session.get(Post, post_id), session.get(Person, reader_id)
        assert post is not None and reader is not None
        comment = Comment(post_id=post_id, author_id=reader_id, body="Gone soon")
        parts.notifier().publish(session, comment, post, reader, Audience(session, [post]))
    outbox = parts.outbox()
    [parcel] = outbox.claim_due("sender")
    with parts.session_factory.begin() as session:
        change = parts.moderation().hide(session, comment.id, Actor("test", "cli"))
    assert change.cancelled == 0  # it was being sent, not queued
    ready, over = outbox.write_messages([parcel])
    assert ready == []
    [(refused, error)] = over
    assert refused.id == parcel.id and error is not None and "hidden" in str(error)
    assert outbox.record_all(over, "sender") == [OutboundStatus.FAILED]


def test_an_answer_to_a_removed_comment_quotes_nothing_of_it(blog: Blog) -> None:
    """The notification of an answer written before its parent was hidden says it answers a
    removed comment, and neither names nor quotes it."""
    from email import message_from_bytes, policy

    from service.moderation.log import Actor
    from service.outbound.audience import Audience
    from service.outbound.notify import Unrendered
    from service.store.models import Comment, Person, Post

    parts = blog.parts
    post_id = blog.post()
    notifier = parts.notifier()

    def publish(email: str, name: str, body: str, parent: int | None = None) -> int:
        person_id = blog.person(email, name)
        with parts.session_factory.begin() as session:
            post, person = session.get(Post, post_id), session.get(Person, person_id)
            assert post is not None and person is not None
            comment = Comment(post_id=post_id, author_id=person_id, body=body, parent_id=parent)
            notifier.publish(session, comment, post, person, Audience(session, [post]))
            return comment.id

    parent = publish(READER, "Rude Rita", "Something rude")
    answer = publish(OTHER, "Olga", "Please be kind", parent)
    with parts.session_factory.begin() as session:
        parts.moderation().hide(session, parent, Actor("test", "cli"))
    with parts.session_factory() as session:
        [row] = session.scalars(
            select(OutboundEmail).where(
                OutboundEmail.comment_id == answer, OutboundEmail.recipient == READER
            )
        ).all()
        written = notifier.render_queued(
            session, [Unrendered(row.id, row.comment_id, row.recipient_id, row.recipient)]
        )
    raw = written[row.id]
    assert isinstance(raw, bytes)
    mail = message_from_bytes(raw, policy=policy.default)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    assert "Please be kind" in text and "replied to a removed comment" in text
    assert "Something rude" not in raw.decode() and "Rude Rita" not in text
