"""Readers comment and follow from the blog without the operator's token (issue 19): nothing is
published or subscribed until the address confirms, by the mailed link or by a reply to it."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import update

from service.identity.addresses import CONFIRM_COMMENT, Confirmation, make_confirmation
from service.identity.web_tokens import make_author_token
from service.outbound.confirmations import epoch
from service.store.models import (
    Comment,
    FollowRequest,
    InboundEmail,
    OutboundEmail,
    PendingComment,
    Post,
    utcnow,
)
from tests.conftest import Blog, SinkHandler, reply_message, send, wait_for
from tests.http_fixtures import API_TOKEN, HttpClient, http
from tests.reader_helpers import (
    AUTHOR,
    BLOG_ORIGIN,
    READER,
    comments,
    confirm_path,
    confirm_token,
    confirmation_mails,
    count_rows,
    follow_requests,
    outbound_kinds,
    pending,
    reader_comment,
    reader_follow,
    subscription,
    text_of,
    wait_for_confirmation,
)

__all__ = ["http"]  # a fixture, imported so this module uses it

OTHER = "otto@example.org"


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """The API token (for operator comments), the blog's origin, roomy limits."""
    return {
        "REPLYD_API_TOKEN": API_TOKEN,
        "REPLYD_EMBED_ORIGINS": BLOG_ORIGIN,
        "REPLYD_WEB_LIMITS": "public=200/10m,email=50/h",
    }


def operator_comment(http: HttpClient, email: str, body: str) -> int:
    """A comment made with the operator's token (published at once, as before)."""
    reply = http.post("/api/posts/hello/comments", json_body={"author_email": email, "body": body})
    assert reply.status == 201, reply.text
    return int(reply.json()["id"])


def inbound_done(blog: Blog, count: int) -> list[InboundEmail]:
    """The first `count` inbound messages, once all of them reached a terminal state."""

    def finished() -> list[InboundEmail] | None:
        with blog.parts.session_factory() as session:
            from sqlalchemy import select

            rows = list(session.scalars(select(InboundEmail).order_by(InboundEmail.id)))
        done = [r for r in rows if r.status not in ("received", "processing")]
        return done if len(done) >= count else None

    return wait_for(finished, what=f"{count} inbound messages finished")


class TestUnconfirmed:
    def test_a_readers_comment_is_kept_and_mailed_for_confirmation_only(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """202 and a confirmation mail to the address given; no comment, nothing on the page,
        the API or the feed, and no mail to anyone else (a notification would have been
        queued in the same transaction as the confirmation)."""
        blog.post()
        reply = reader_comment(http, "Pending words")
        assert reply.status == 202, reply.text
        assert reply.json()["status"] == "pending"
        assert "r…@example.org" in reply.json()["message"]
        mail = wait_for_confirmation(sink[0])
        assert comments(blog) == []
        assert [p.body for p in pending(blog)] == ["Pending words"]
        assert outbound_kinds(blog) == [("confirmation", READER)]
        assert http.get("/api/posts/hello/comments", auth=False).json()["comments"] == []
        assert "Pending words" not in http.get("/posts/hello").text
        assert "Pending words" not in http.get("/posts/hello/comments.atom").text
        assert http.get("/api/posts/hello", auth=False).json()["comment_count"] == 0
        assert sink[0].to(AUTHOR) == []
        # The mail: to the reader, shows the comment, confirms by link or by reply.
        assert mail["To"] == READER
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["Reply-To"].addresses[0].addr_spec.startswith("confirm+")
        assert "> Pending words" in text_of(mail)
        assert "reply to this email" in text_of(mail)

    def test_an_unconfirmed_follow_subscribes_nothing(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A follow request mails a confirmation; no subscription exists until it is used,
        so a new comment (whose notifications reach the author) mails the reader nothing."""
        post_id = blog.post()
        assert reader_follow(http, digest=None).status == 202
        wait_for_confirmation(sink[0])
        assert subscription(blog, READER, post_id) is None
        operator_comment(http, OTHER, "A new comment")
        wait_for(lambda: sink[0].to(AUTHOR), what="the author's notification")
        assert confirmation_mails(sink[0]) == sink[0].to(READER)  # only the confirmation


class TestConfirmedByLink:
    def test_the_link_shows_then_publishes_once_and_mails_followers(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """GET shows the comment and a button (publishing nothing: mail scanners follow
        links); POST publishes it, the author is notified, the reader follows the thread,
        and the answer sends the browser back to the blog with an author token in the
        fragment. The link a second time changes nothing."""
        post_id = blog.post()
        earlier = operator_comment(http, OTHER, "First!")
        wait_for(lambda: sink[0].to(AUTHOR), what="the author's first notification")
        assert reader_comment(http, "Confirmed words", parent_id=earlier).status == 202
        path = confirm_path(wait_for_confirmation(sink[0]))
        page = http.get(path, auth=False)
        assert page.status == 200
        assert "Confirmed words" in page.text and "Publish my comment" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert len(comments(blog)) == 1
        done = http.post(path, auth=False)
        assert done.status == 303, done.text
        location = urlsplit(done.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == f"{BLOG_ORIGIN}/hello"
        fragment = parse_qs(location.fragment)
        [published] = [c for c in comments(blog) if c.body == "Confirmed words"]
        assert fragment["replyd-confirmed"] == [f"comment-{published.id}"]
        assert fragment["replyd-author"][0]
        assert published.source == "web" and published.parent_id == earlier
        wait_for(
            lambda: [m for m in sink[0].to(AUTHOR) if "Confirmed words" in text_of(m)],
            what="the author's notification of the confirmed comment",
        )
        wait_for(
            lambda: [m for m in sink[0].to(OTHER) if "Confirmed words" in text_of(m)],
            what="the earlier commenter's notification",
        )
        following = subscription(blog, READER, post_id)
        assert following is not None and following.active and following.digest is None
        listed = http.get("/api/posts/hello/comments", auth=False).json()["comments"]
        assert [c["body"] for c in listed] == ["First!", "Confirmed words"]
        again = http.post(path, auth=False)
        assert again.status == 200 and "Already confirmed" in again.text
        assert "location" not in again.headers
        assert len(comments(blog)) == 2
        assert count_rows(blog, OutboundEmail, OutboundEmail.kind == "notification") == 3

    def test_forged_links_do_nothing(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A token changed in one character, one signed with another secret, and a genuine
        token for a request id that is someone else's row: 404, nothing published."""
        blog.post()
        assert reader_comment(http, "Mine").status == 202
        mail = wait_for_confirmation(sink[0])
        token = confirm_token(mail)
        tampered = token[:-3] + ("a" if token[-3] != "a" else "b") + token[-2:]
        [row] = pending(blog)
        from service.identity.addresses import Keyring

        foreign = Keyring.from_strings("another-secret-0123456789")
        other_row = Confirmation(CONFIRM_COMMENT, row.id + 1, epoch(row.created_at))
        wrong_time = Confirmation(CONFIRM_COMMENT, row.id, epoch(row.created_at) + 1)
        for bad in (
            tampered,
            make_confirmation(
                Confirmation(CONFIRM_COMMENT, row.id, epoch(row.created_at)), foreign
            ),
            make_confirmation(other_row, blog.parts.keyring),
            make_confirmation(wrong_time, blog.parts.keyring),
        ):
            assert http.get(f"/confirm/{bad}", auth=False).status == 404
            assert http.post(f"/confirm/{bad}", auth=False).status == 404
        assert comments(blog) == []
        assert http.post(f"/confirm/{token}", auth=False).status == 303  # the real one works

    def test_an_expired_link_publishes_nothing(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A request older than 7 days: the page says the link expired (410), POST too."""
        blog.post()
        assert reader_comment(http, "Too late").status == 202
        wait_for_confirmation(sink[0])
        old = utcnow().replace(microsecond=0) - timedelta(days=8)
        with blog.parts.session_factory.begin() as session:
            session.execute(update(PendingComment).values(created_at=old))
            [row] = session.query(PendingComment).all()
            token = make_confirmation(
                Confirmation(CONFIRM_COMMENT, row.id, epoch(old)), blog.parts.keyring
            )
        assert http.get(f"/confirm/{token}", auth=False).status == 410
        answer = http.post(f"/confirm/{token}", auth=False)
        assert answer.status == 410 and "expired" in answer.text
        assert comments(blog) == []

    def test_a_post_closed_meanwhile_takes_nothing(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Confirming after the post was closed: 409, the page says so, nothing published."""
        blog.post()
        assert reader_comment(http, "Before closing").status == 202
        path = confirm_path(wait_for_confirmation(sink[0]))
        with blog.parts.session_factory.begin() as session:
            session.execute(update(Post).values(closed=True))
        answer = http.post(path, auth=False)
        assert answer.status == 409 and "closed" in answer.text
        assert comments(blog) == []

    @pytest.mark.parametrize(
        ("choice", "active", "digest"),
        [("daily", True, "daily"), ("weekly", True, "weekly"), ("none", False, None)],
    )
    def test_the_follow_choice_holds_once_confirmed(
        self,
        http: HttpClient,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        choice: str,
        active: bool,
        digest: str | None,
    ) -> None:
        """follow=daily/weekly makes the writer take digests; none leaves them out."""
        post_id = blog.post()
        assert reader_comment(http, "Choosy", follow=choice).status == 202
        assert http.post(confirm_path(wait_for_confirmation(sink[0])), auth=False).status == 303
        following = subscription(blog, READER, post_id)
        assert following is not None
        assert (following.active, following.digest) == (active, digest)

    def test_the_access_log_leaves_the_token_out(
        self,
        http: HttpClient,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Confirmation tokens are capabilities: the access log shows the route only."""
        blog.post()
        assert reader_comment(http, "Logged").status == 202
        mail = wait_for_confirmation(sink[0])
        caplog.set_level(logging.INFO)
        http.get(confirm_path(mail), auth=False)
        wait_for(lambda: "/confirm/{token}" in caplog.text, what="the access log line")
        assert confirm_token(mail) not in caplog.text


class TestConfirmedByReply:
    def test_a_reply_to_the_confirmation_publishes_once(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int], server: object
    ) -> None:
        """Replying to the confirmation mail (to its Reply-To) publishes the comment and
        mails the author; the same reply again, or a second reply, publishes nothing more."""
        blog.post()
        assert reader_comment(http, "Confirmed by mail").status == 202
        mail = wait_for_confirmation(sink[0])
        confirm_address = mail["Reply-To"].addresses[0].addr_spec
        port = blog.parts.settings.smtp_port
        raw = reply_message(READER, confirm_address, "yes", subject=f"Re: {mail['Subject']}")
        send(port, READER, [confirm_address], raw)
        send(port, READER, [confirm_address], raw)  # redelivered
        send(port, READER, [confirm_address], reply_message(READER, confirm_address, "again"))
        rows = inbound_done(blog, 3)
        assert [r.status for r in rows] == ["processed", "ignored", "ignored"]
        [published] = comments(blog)
        assert published.body == "Confirmed by mail" and published.source == "web"
        wait_for(
            lambda: [m for m in sink[0].to(AUTHOR) if "Confirmed by mail" in text_of(m)],
            what="the author's notification",
        )

    def test_a_reply_from_another_address_does_not_confirm(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int], server: object
    ) -> None:
        """The confirm address answered from someone else's mailbox: rejected (sender
        mismatch), nothing published; the request stays open for its real owner."""
        blog.post()
        assert reader_comment(http, "Not yours").status == 202
        mail = wait_for_confirmation(sink[0])
        confirm_address = mail["Reply-To"].addresses[0].addr_spec
        send(
            blog.parts.settings.smtp_port,
            "mallory@evil.example",
            [confirm_address],
            reply_message("mallory@evil.example", confirm_address, "yes"),
        )
        [row] = inbound_done(blog, 1)
        assert row.status == "rejected" and "sender mismatch" in (row.reason or "")
        assert comments(blog) == []
        assert http.post(confirm_path(mail), auth=False).status == 303

    def test_an_automatic_reply_does_not_confirm(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int], server: object
    ) -> None:
        """Someone gave another person's address, whose mailbox answers by itself (away
        message): the automatic reply is ignored and publishes nothing."""
        blog.post()
        assert reader_comment(http, "In your name").status == 202
        mail = wait_for_confirmation(sink[0])
        confirm_address = mail["Reply-To"].addresses[0].addr_spec
        away = reply_message(
            READER,
            confirm_address,
            "I am away until Monday.",
            subject=f"Automatic reply: {mail['Subject']}",
            headers={"Auto-Submitted": "auto-replied"},
        )
        send(blog.parts.settings.smtp_port, "", [confirm_address], away)
        [row] = inbound_done(blog, 1)
        assert row.status == "ignored", row.reason
        assert comments(blog) == []
        assert [p.status for p in pending(blog)] == ["pending"]

    def test_a_reply_confirms_a_follow(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int], server: object
    ) -> None:
        """Replying to a follow confirmation makes the address follow, with its digest."""
        post_id = blog.post()
        assert reader_follow(http, digest="weekly").status == 202
        mail = wait_for_confirmation(sink[0])
        confirm_address = mail["Reply-To"].addresses[0].addr_spec
        send(
            blog.parts.settings.smtp_port,
            READER,
            [confirm_address],
            reply_message(READER, confirm_address, "ok"),
        )
        [row] = inbound_done(blog, 1)
        assert row.status == "ignored" and "follow request confirmed" in (row.reason or "")
        following = subscription(blog, READER, post_id)
        assert following is not None and following.active and following.digest == "weekly"

    def test_a_reply_to_an_expired_confirmation_is_told_so(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int], server: object
    ) -> None:
        """A reply to a confirmation more than 7 days old publishes nothing; its sender gets
        a notice saying the confirmation expired and what to do."""
        blog.post()
        assert reader_comment(http, "Old news").status == 202
        mail = wait_for_confirmation(sink[0])
        old = utcnow().replace(microsecond=0) - timedelta(days=8)
        with blog.parts.session_factory.begin() as session:
            session.execute(update(PendingComment).values(created_at=old))
        # The token names the row's time, which moved: the address the mail would have
        # carried, had it been sent 8 days ago.
        [row] = pending(blog)
        stale = Confirmation(CONFIRM_COMMENT, row.id, epoch(old))
        confirm_address = blog.parts.book.confirm_address(stale, blog.parts.keyring)
        assert confirm_address != mail["Reply-To"].addresses[0].addr_spec
        send(
            blog.parts.settings.smtp_port,
            READER,
            [confirm_address],
            reply_message(READER, confirm_address, "yes"),
        )
        [inbound] = inbound_done(blog, 1)
        assert inbound.status == "rejected" and "expired" in (inbound.reason or "")
        notice = wait_for(
            lambda: [m for m in sink[0].to(READER) if "expired" in text_of(m)],
            what="the notice about the expired confirmation",
        )
        assert "send your comment or follow request again" in text_of(notice[0])
        assert comments(blog) == []


class TestAuthorToken:
    def test_a_confirmed_browser_comments_again_without_a_mail(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """The author token from the confirmation publishes the next comment with that
        address at once (201), followers mailed, no new confirmation mail; with another
        address, a forged or an expired token, the comment waits for a mail again."""
        blog.post()
        assert reader_comment(http, "First one").status == 202
        done = http.post(confirm_path(wait_for_confirmation(sink[0])), auth=False)
        token = parse_qs(urlsplit(done.headers["location"]).fragment)["replyd-author"][0]
        again = reader_comment(http, "Second one", author_token=token)
        assert again.status == 201, again.text
        assert again.json()["status"] == "published" and "author_email" not in again.json()
        wait_for(
            lambda: [m for m in sink[0].to(AUTHOR) if "Second one" in text_of(m)],
            what="the author's notification of the second comment",
        )
        assert len(confirmation_mails(sink[0])) == 1
        expired = make_author_token(
            comments(blog)[0].author_id, epoch(utcnow()) - 31 * 86400, blog.parts.keyring
        )
        for email, given in (
            (OTHER, token),
            (READER, token[:-2] + ("aa" if token[-2:] != "aa" else "bb")),
            (READER, expired),
        ):
            assert reader_comment(http, "Waits", email=email, author_token=given).status == 202
        assert [c.body for c in comments(blog)] == ["First one", "Second one"]
        assert len(pending(blog)) == 4


class TestFollow:
    def test_the_link_makes_the_address_follow(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Confirmed, the follow takes effect: the next comment reaches the reader."""
        post_id = blog.post()
        assert reader_follow(http).status == 202
        path = confirm_path(wait_for_confirmation(sink[0]))
        assert "Yes, email me" in http.get(path, auth=False).text
        done = http.post(path, auth=False)
        assert done.status == 303
        assert parse_qs(urlsplit(done.headers["location"]).fragment)["replyd-confirmed"] == [
            "follow"
        ]
        following = subscription(blog, READER, post_id)
        assert following is not None and following.active and following.digest is None
        operator_comment(http, OTHER, "News for followers")
        wait_for(
            lambda: [m for m in sink[0].to(READER) if "News for followers" in text_of(m)],
            what="the follower's notification",
        )

    def test_at_most_one_mail_an_hour_per_address_and_post(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Three requests for one address and post mail once (each answered alike); a
        request for another address, made after them, is mailed (so the first would have
        arrived by then); an hour later the address is mailed again."""
        blog.post()
        answers = [reader_follow(http) for _ in range(3)]
        assert {a.status for a in answers} == {202}
        assert len({a.body for a in answers}) == 1
        assert reader_follow(http, OTHER).status == 202
        wait_for_confirmation(sink[0], OTHER)
        wait_for_confirmation(sink[0], READER)
        assert len(confirmation_mails(sink[0], READER)) == 1
        assert len(follow_requests(blog)) == 2
        with blog.parts.session_factory.begin() as session:
            session.execute(
                update(FollowRequest).values(created_at=utcnow() - timedelta(minutes=61))
            )
        assert reader_follow(http).status == 202
        wait_for_confirmation(sink[0], READER, count=2)

    def test_a_closed_post_takes_no_follow_requests(self, http: HttpClient, blog: Blog) -> None:
        """409 with a sentence; nothing kept."""
        blog.post(closed=True)
        answer = reader_follow(http)
        assert answer.status == 409 and "closed" in answer.json()["error"]
        assert follow_requests(blog) == []


class TestInGerman:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """REPLYD_LANGUAGE=de."""
        return {"REPLYD_LANGUAGE": "de", "REPLYD_EMBED_ORIGINS": BLOG_ORIGIN}

    def test_the_confirmation_mails_speak_german(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Both confirmation mails come in the deployment's language."""
        blog.post()
        assert reader_comment(http, "Hallo").status == 202
        comment_mail = wait_for_confirmation(sink[0])
        assert comment_mail["Subject"] == "Bestätigen Sie Ihren Kommentar zu Post hello"
        assert "> Hallo" in text_of(comment_mail) and "Der Link gilt 7 Tage" in text_of(
            comment_mail
        )
        assert reader_follow(http, OTHER, digest="daily").status == 202
        follow_mail = wait_for_confirmation(sink[0], OTHER)
        assert "täglich eine Zusammenfassung" in text_of(follow_mail)


class TestOperatorToken:
    def test_with_the_token_a_comment_is_published_at_once(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """The operator's path is unchanged: 201, published, no confirmation mail; a wrong
        token is 401, never a reader's pending comment."""
        blog.post()
        operator_comment(http, READER, "Operator's")
        assert [c.body for c in comments(blog)] == ["Operator's"]
        wrong = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": READER, "body": "x"},
            headers={"Authorization": "Bearer wrong-token-000000000"},
        )
        assert wrong.status == 401
        assert pending(blog) == []
        assert count_rows(blog, OutboundEmail, OutboundEmail.kind == "confirmation") == 0
        assert count_rows(blog, Comment) == 1
