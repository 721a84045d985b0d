"""Outbound mail over real SMTP: unsubscribe, bounces, rejection notices and digests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from service.extraction.marker import MARKERS
from service.identity.addresses import make_token, verify_token
from service.outbound.bounces import read_bounce
from service.store.models import Comment, InboundStatus, OutboundEmail, Person, Subscription, utcnow
from tests.conftest import Blog, RunningServer, SinkHandler, reply_message, send, wait_for
from tests.test_reply_flow import comments, delivered, delivery_settled, final_row, outbound

READER = "reader@example.org"
AUTHOR = "author@example.org"
FAN = "fan@example.org"  # follows the post: their mail proves a comment's mail went out


def dsn(bounce_address: str, failed: str, status: str, action: str = "failed") -> bytes:
    """A delivery status notification (RFC 3464) as a receiving MTA sends it."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {bounce_address}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "--b1--\r\n"
    ).encode()


def envelope_senders(sink: tuple[SinkHandler, int], address: str) -> list[str]:
    return [mail_from for mail_from, rcpts, _ in sink[0].messages if address in rcpts]


def person(blog: Blog, email: str) -> Person:
    with blog.parts.session_factory() as session:
        found = session.scalar(select(Person).where(Person.email == email))
        assert found is not None
        return found


class TestUnsubscribe:
    def test_headers_offer_https_and_mailto_one_click(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Notifications carry List-Unsubscribe with both forms and the RFC 8058 POST header."""
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello"))
        [mail] = delivered(sink, AUTHOR)
        value = str(mail["List-Unsubscribe"])
        assert "<https://blog.example.org/unsubscribe/" in value
        assert "<mailto:unsubscribe+" in value
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        token = value.split("/unsubscribe/")[1].split(">")[0]
        target = verify_token(token, blog.parts.keyring, "unsubscribe")
        assert target is not None and target.person_id == blog.person(AUTHOR)

    def test_mailto_unsubscribe_stops_mail_at_once(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Mail to the List-Unsubscribe address stops further notifications about that post."""
        post = blog.post()
        address = blog.address(post, READER)
        send(server.port, READER, [address], reply_message(READER, address, "First"))
        [mail] = delivered(sink, AUTHOR)
        mailto = str(mail["List-Unsubscribe"]).split("<mailto:")[1].split("?")[0]
        send(
            server.port,
            AUTHOR,
            [mailto],
            reply_message(AUTHOR, mailto, "unsubscribe", subject="unsubscribe"),
        )
        row = final_row(blog)
        assert row.status == InboundStatus.IGNORED and "unsubscribe request handled" in (
            row.reason or ""
        )
        # A fan of the post hears of the second comment: proof that its mail went out.
        with blog.parts.session_factory.begin() as session:
            session.add(Subscription(post_id=post, person_id=blog.person(FAN)))
        send(server.port, READER, [address], reply_message(READER, address, "Second"))
        wait_for(lambda: len(comments(blog)) == 2, what="the second comment")
        [to_fan] = delivered(sink, FAN)
        assert "Second" in to_fan.get_body(("plain",)).get_content()
        delivery_settled(blog)
        assert len(sink[0].to(AUTHOR)) == 1
        assert comments(blog)[1].body == "Second"


class TestBounces:
    def test_hard_bounces_suspend_and_are_never_answered(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Each notification uses its own VERP sender; three hard DSNs to it (the README's
        threshold) suspend the address: no mail reaches it, and no bounce is answered."""
        post = blog.post()
        address = blog.address(post, READER)
        with blog.parts.session_factory.begin() as session:
            session.add(Subscription(post_id=post, person_id=blog.person(FAN)))
        for n in range(3):
            send(server.port, READER, [address], reply_message(READER, address, f"Comment {n}"))
            delivered(sink, AUTHOR, n + 1)
        verps = envelope_senders(sink, AUTHOR)
        assert len(set(verps)) == 3
        delivered(sink, FAN, 3)
        delivery_settled(blog)
        sent_before = len(sink[0].messages)
        assert all(v.startswith("bounces+") and v.endswith("@replies.example.org") for v in verps)
        for number, verp in enumerate(verps, start=1):
            send(server.port, "", [verp], dsn(verp, AUTHOR, "5.1.1"))
            row = final_row(blog)
            assert row.status == InboundStatus.IGNORED and "hard bounce" in (row.reason or "")
            assert (person(blog, AUTHOR).suspended_at is not None) == (number == 3)
        send(server.port, READER, [address], reply_message(READER, address, "After suspension"))
        wait_for(lambda: len(comments(blog)) == 4, what="the last comment")
        # The fan hears of it: the comment's mail went out, only not to the suspended author.
        last = delivered(sink, FAN, 4)[-1]
        assert "After suspension" in last.get_body(("plain",)).get_content()
        delivery_settled(blog)
        assert len(sink[0].to(AUTHOR)) == 3
        assert len(sink[0].messages) == sent_before + 1  # the fan's; no answer to any bounce

    @pytest.mark.parametrize(
        ("raw", "hard"),
        [
            (dsn("b@x", "a@y", "5.2.2"), True),
            (dsn("b@x", "a@y", "4.2.2", action="delayed"), False),
            (b"Subject: failure\r\n\r\n550 5.1.1 user unknown\r\n", True),
            (b"Subject: failure\r\n\r\nsomething went wrong\r\n", False),
        ],
    )
    def test_read_bounce(self, raw: bytes, hard: bool) -> None:
        """DSNs are read by Action/Status; plain bounces by the first status code in them."""
        assert read_bounce(raw).hard is hard


class TestRejectionNotices:
    def test_sender_told_once_per_day_with_null_return_path(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A refused reply is explained to its sender, at most once a day per reason."""
        address = blog.address(blog.post(closed=True), READER)
        for n in range(2):
            send(
                server.port,
                READER,
                [address],
                reply_message(READER, address, f"Try {n}", message_id=f"<try-{n}@x>"),
            )
            assert final_row(blog).status == InboundStatus.REJECTED
        [notice] = delivered(sink, READER)
        assert notice["Auto-Submitted"] == "auto-replied"
        assert notice["In-Reply-To"] == "<try-0@x>"
        assert "closed" in notice.get_body(("plain",)).get_content()
        assert envelope_senders(sink, READER) == ["<>"]  # MAIL FROM:<>
        with blog.parts.session_factory() as session:
            kinds = session.scalars(select(OutboundEmail.kind)).all()
        assert kinds == ["rejection"]

    def test_no_notice_to_our_own_domain(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A refused reply from an address in replyd's own domain is never answered (that
        way lies a loop); the same refusal from a reader, just after, is."""
        closed = blog.post(closed=True)
        ours = "someone@replies.example.org"
        address = blog.address(closed, ours)
        send(server.port, ours, [address], reply_message(ours, address, "Closed?"))
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED and "closed" in (row.reason or "")
        address = blog.address(closed, READER)
        send(server.port, READER, [address], reply_message(READER, address, "Closed?"))
        assert final_row(blog).status == InboundStatus.REJECTED
        [notice] = delivered(sink, READER)
        assert "closed" in notice.get_body(("plain",)).get_content()
        delivery_settled(blog)
        assert [recipients for _, recipients, _ in sink[0].messages] == [[READER]]
        assert [o.recipient for o in outbound(blog)] == [READER]

    def test_no_notice_for_auto_replies(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Machine-made mail to a closed post is ignored silently, never answered."""
        address = blog.address(blog.post(closed=True), READER)
        send(
            server.port,
            READER,
            [address],
            reply_message(READER, address, "Away", headers={"Auto-Submitted": "auto-replied"}),
        )
        assert final_row(blog).status == InboundStatus.IGNORED
        with blog.parts.session_factory() as session:
            assert session.scalars(select(OutboundEmail)).all() == []


class TestDigests:
    def test_daily_digest_sent_once_across_restart_and_replies_routed(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A digest groups what is new, is queued once, and answers replies."""
        post = blog.post()
        fan = blog.person("fan@example.org", "Fan")
        with blog.parts.session_factory.begin() as session:
            session.add(Subscription(post_id=post, person_id=fan, digest="daily"))
        address = blog.address(post, READER)
        send(server.port, READER, [address], reply_message(READER, address, "Yesterday's news"))
        final_row(blog)
        assert sink[0].to("fan@example.org") == []  # digest takers get no per-comment mail
        digests = blog.parts.digests()
        assert digests.send(blog.parts.session_factory, "daily") == 1
        assert digests.send(blog.parts.session_factory, "daily") == 0
        assert blog.parts.digests().send(blog.parts.session_factory, "daily") == 0  # a "restart"
        server.server._wake_outbound()
        [digest] = delivered(sink, "fan@example.org")
        text = digest.get_body(("plain",)).get_content()
        assert "Yesterday's news" in text and "Post hello" in text
        comment_address = next(
            line.split(": ")[1] for line in text.splitlines() if "write to:" in line
        )
        assert blog.parts.book.token_of(comment_address)
        assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        digest_reply_to = digest["Reply-To"].addresses[0].addr_spec
        assert digest_reply_to.startswith("digest+")
        send(
            server.port,
            "fan@example.org",
            [digest_reply_to],
            reply_message("fan@example.org", digest_reply_to, "Great digest"),
        )
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED and "digest" in (row.reason or "")
        notices = wait_for(
            lambda: [
                m for m in sink[0].to("fan@example.org") if m["Auto-Submitted"] == "auto-replied"
            ]
        )
        assert (
            "reply address shown under the comment" in notices[0].get_body(("plain",)).get_content()
        )
        assert len(comments(blog)) == 1

    def test_digest_unsubscribe_token_stops_digests(self, blog: Blog) -> None:
        """The digest's one-click token ends every digest subscription of that person."""
        from service.identity.addresses import ALL_POSTS, ReplyTarget
        from service.store.subscriptions import unsubscribe

        post = blog.post()
        fan = blog.person("fan@example.org")
        with blog.parts.session_factory.begin() as session:
            session.add(Subscription(post_id=post, person_id=fan, digest="weekly"))
        token = make_token(ReplyTarget(ALL_POSTS, None, fan), blog.parts.keyring, "unsubscribe")
        target = verify_token(token, blog.parts.keyring, "unsubscribe")
        assert target is not None
        with blog.parts.session_factory.begin() as session:
            assert "no longer gets digests" in unsubscribe(session, target)
        with blog.parts.session_factory() as session:
            assert session.scalars(select(Subscription.active)).all() == [False]


def news_for_daily_digests(blog: Blog, subscribers: list[str]) -> int:
    """A post whose `subscribers` take it as a daily digest, and a comment on it from
    yesterday; returns the post's id."""
    post = blog.post()
    writer = blog.person(READER)
    with blog.parts.session_factory.begin() as session:
        for email in subscribers:
            person = blog.person(email)
            session.add(Subscription(post_id=post, person_id=person, digest="daily"))
        session.add(
            Comment(
                post_id=post,
                author_id=writer,
                body="from yesterday",
                created_at=utcnow() - timedelta(days=1),
                published_at=utcnow() - timedelta(days=1),
            )
        )
    return post


class TestDigestAddresses:
    def test_a_subscriber_whose_address_cannot_be_written_gets_no_digest(self, blog: Blog) -> None:
        """A non-ASCII address (replyd does not send SMTPUTF8) is skipped; the others' digests
        are still queued, and the run does not fail over and over."""
        news_for_daily_digests(blog, ["jürgen@example.org", "fan@example.org"])
        assert blog.parts.digests().send(blog.parts.session_factory, "daily") == 1
        with blog.parts.session_factory() as session:
            queued = session.scalars(select(OutboundEmail.recipient)).all()
        assert queued == ["fan@example.org"]


class TestDigestScheduler:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Digests are due from midnight, so the scheduler acts as soon as serve starts."""
        return {"REPLYD_DIGEST_HOUR": "0"}

    def test_serve_queues_due_digests_by_itself(
        self, settings, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:  # type: ignore[no-untyped-def]
        """`replyd serve` queues the due period's digests without any command."""
        news_for_daily_digests(blog, ["fan@example.org"])
        running = RunningServer(settings).start()
        try:
            [digest] = delivered(sink, "fan@example.org")
            assert "from yesterday" in digest.get_body(("plain",)).get_content()
        finally:
            running.stop()


class TestLanguage:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """A German blog."""
        return {"REPLYD_LANGUAGE": "de"}

    def test_german_mail_and_marker_round_trip(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Mail is written in German; a reply quoting it is cut at the German marker."""
        post = blog.post()
        address = blog.address(post, READER)
        send(server.port, READER, [address], reply_message(READER, address, "Toller Beitrag"))
        [mail] = delivered(sink, AUTHOR)
        text = mail.get_body(("plain",)).get_content()
        assert text.startswith(MARKERS["de"]) and "Antworten Sie auf diese E-Mail" in text
        reply_to = mail["Reply-To"].addresses[0].addr_spec
        # A client that quotes without ">" (as Outlook does) leaves only the marker to cut at.
        answer = f"Danke!\n\n{text}"
        send(server.port, AUTHOR, [reply_to], reply_message(AUTHOR, reply_to, answer))
        wait_for(lambda: len(comments(blog)) == 2, what="the answer")
        assert comments(blog)[1].body == "Danke!"

    def test_german_rejection_notice(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Rejection notices use the deployment's language too."""
        address = blog.address(blog.post(closed=True), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Zu spät?"))
        [notice] = delivered(sink, READER)
        assert str(notice["Subject"]).startswith("Nicht veröffentlicht: ")
        assert "für neue Kommentare geschlossen" in notice.get_body(("plain",)).get_content()
