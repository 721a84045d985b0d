"""Mail queued before its recipient stopped wanting it is not sent: checked at the moment of
sending, whatever way they unsubscribed (issue 17, finding 10)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select

from service.identity.addresses import ALL_POSTS, ReplyTarget, make_token
from service.outbound.wanted import NO_DIGESTS, SUSPENDED, UNSUBSCRIBED
from service.store.models import InboundStatus, OutboundEmail, OutboundStatus, Subscription
from tests.conftest import Blog, RunningServer, SinkHandler, reply_message, send, wait_for
from tests.http_fixtures import HttpClient, http, settings_overrides
from tests.test_outbound_mail import dsn, envelope_senders
from tests.test_reply_flow import delivered, final_row

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

READER = "reader@example.org"
AUTHOR = "author@example.org"
FAN = "fan@example.org"
RETRY_LATER = "451 4.3.0 Try again later"


def rows(blog: Blog) -> dict[str, OutboundEmail]:
    """The newest outbound row per recipient."""
    with blog.parts.session_factory() as session:
        found = session.scalars(select(OutboundEmail).order_by(OutboundEmail.id)).all()
    return {row.recipient: row for row in found}


def queued_for_later(server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]) -> int:
    """A comment on a post followed by its author and FAN, whose two notifications the relay
    deferred (451): both wait in the queue for their next try. Returns the post's id."""
    post = blog.post()
    with blog.parts.session_factory.begin() as session:
        session.add(Subscription(post_id=post, person_id=blog.person(FAN)))
    sink[0].answers += [RETRY_LATER, RETRY_LATER]
    address = blog.address(post, READER)
    send(server.port, READER, [address], reply_message(READER, address, "News"))
    wait_for(
        lambda: (
            len(found := rows(blog)) == 2
            and all(r.status == OutboundStatus.QUEUED and r.attempts == 1 for r in found.values())
        ),
        what="both notifications deferred by the relay",
    )
    return post


def retry_now(server: RunningServer) -> None:
    """Time passes: the deferred notifications are due, and the outbox is woken."""
    with sqlite3.connect(server.settings.database_url.removeprefix("sqlite:///")) as db:
        db.execute(
            "UPDATE outbound_emails SET next_attempt_at = '2000-01-01 00:00:00.000000' "
            "WHERE status = 'queued'"
        )
    server.server._wake_outbound()


class TestCheckedAtSending:
    @pytest.mark.parametrize("way", ["api", "mailto", "one-click"])
    def test_a_notification_queued_before_an_unsubscribe_is_cancelled(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
        way: str,
    ) -> None:
        """The author unsubscribes (DELETE /api/subscriptions, the mailto address, or the
        one-click link) while their notification waits: it is cancelled with the reason,
        FAN's, sent in the same run, is delivered."""
        post = queued_for_later(server, blog, sink)
        target = ReplyTarget(post, None, blog.person(AUTHOR))
        if way == "api":
            body = {"post_id": "hello", "email": AUTHOR}
            assert http.request("DELETE", "/api/subscriptions", json_body=body).status == 200
        elif way == "mailto":
            mailto = blog.parts.book.unsubscribe_address(target, blog.parts.keyring)
            raw = reply_message(AUTHOR, mailto, "unsubscribe", subject="unsubscribe")
            send(server.port, AUTHOR, [mailto], raw)
            assert "unsubscribe request handled" in (final_row(blog).reason or "")
        else:
            token = make_token(target, blog.parts.keyring, "unsubscribe")
            one_click = b"List-Unsubscribe=One-Click"
            assert http.post(f"/unsubscribe/{token}", data=one_click, auth=False).status == 200
        retry_now(server)
        delivered(sink, FAN)
        row = wait_for(
            lambda: (r := rows(blog)[AUTHOR]).status == OutboundStatus.CANCELLED and r,
            what="the author's notification to be cancelled",
        )
        assert row.last_error == UNSUBSCRIBED
        assert row.attempts == 2 and row.sent_at is None
        assert sink[0].to(AUTHOR) == []

    def test_a_notification_to_an_address_suspended_meanwhile_is_cancelled(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Hard bounces of earlier mail suspend the author while a notification waits: it is
        cancelled, not sent."""
        address = blog.address(blog.post(slug="earlier"), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Earlier"))
        [verp] = wait_for(lambda: envelope_senders(sink, AUTHOR))
        queued_for_later(server, blog, sink)
        for _ in range(3):
            send(server.port, "", [verp], dsn(verp, AUTHOR, "5.1.1"))
            assert final_row(blog).status == InboundStatus.IGNORED
        retry_now(server)
        delivered(sink, FAN)
        row = wait_for(
            lambda: (r := rows(blog)[AUTHOR]).status == OutboundStatus.CANCELLED and r,
            what="the author's notification to be cancelled",
        )
        assert row.last_error == SUSPENDED
        assert len(sink[0].to(AUTHOR)) == 1  # the earlier one only

    def test_a_digest_queued_before_its_reader_stopped_digests_is_cancelled(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """The digest's own one-click link, used while the digest waits for a retry: the
        digest is cancelled; another reader's digest goes out."""
        post = blog.post()
        for email in (FAN, READER):
            with blog.parts.session_factory.begin() as session:
                session.add(
                    Subscription(post_id=post, person_id=blog.person(email), digest="daily")
                )
        address = blog.address(post, "writer@example.org")
        send(
            server.port,
            "writer@example.org",
            [address],
            reply_message("writer@example.org", address, "For the digests"),
        )
        final_row(blog)
        delivered(sink, AUTHOR)  # the post's author hears of it at once
        sink[0].answers += [RETRY_LATER, RETRY_LATER]
        assert blog.parts.digests().send(blog.parts.session_factory, "daily") == 2
        server.server._wake_outbound()
        # Queued again after one attempt: the relay's 451 is recorded (a claimed row counts its
        # attempt already, and making it due before its result is written would not last).
        wait_for(
            lambda: [(r.status, r.attempts) for r in rows(blog).values() if r.kind == "digest"]
            == [(OutboundStatus.QUEUED, 1)] * 2,
            what="both digests deferred by the relay",
        )
        token = make_token(
            ReplyTarget(ALL_POSTS, None, blog.person(FAN)), blog.parts.keyring, "unsubscribe"
        )
        assert http.post(f"/unsubscribe/{token}", auth=False).status == 200
        retry_now(server)
        delivered(sink, READER)
        row = wait_for(
            lambda: (r := rows(blog)[FAN]).status == OutboundStatus.CANCELLED and r,
            what="FAN's digest to be cancelled",
        )
        assert row.last_error == NO_DIGESTS
        assert sink[0].to(FAN) == []
