"""Bounce scores behind a relay: they decay with time, relay acceptance forgives nothing, a
relay's 5xx at RCPT is a hard bounce, soft bounces add up (issue 17, finding 7)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import select

from service.outbound.bounces import HALF_LIFE, SUSPEND_AT
from service.store.models import InboundStatus, OutboundStatus, Person, utcnow
from tests.conftest import Blog, RunningServer, SinkHandler, reply_message, send, wait_for
from tests.test_outbound_mail import dsn, envelope_senders
from tests.test_reply_flow import comments, delivered, final_row, outbound

READER = "reader@example.org"
AUTHOR = "author@example.org"
FAN = "fan@example.org"


def person(blog: Blog, email: str) -> Person:
    with blog.parts.session_factory() as session:
        found = session.scalar(select(Person).where(Person.email == email))
        assert found is not None
        return found


def follow(blog: Blog, post: int, email: str) -> None:
    """Make someone follow the post per comment (a control: their mail shows the outbox ran)."""
    from service.store.models import Subscription

    with blog.parts.session_factory.begin() as session:
        session.add(Subscription(post_id=post, person_id=blog.person(email)))


def comment(server: RunningServer, blog: Blog, address: str, text: str) -> None:
    """A reply from READER through the real listener, waited for until it is a comment."""
    before = len(comments(blog))
    send(server.port, READER, [address], reply_message(READER, address, text))
    wait_for(lambda: len(comments(blog)) == before + 1, what=f"comment {text!r}")


class TestBehindARelay:
    def test_relay_acceptance_forgives_nothing_three_hard_bounces_stop_mail(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """The relay takes every notification and bounces each a little later: after three
        hard DSNs, each following a delivery, mail to the address stops."""
        post = blog.post()
        follow(blog, post, FAN)
        address = blog.address(post, READER)
        for n in range(3):
            comment(server, blog, address, f"Comment {n}")
            delivered(sink, AUTHOR, n + 1)  # the relay said 250
            verp = envelope_senders(sink, AUTHOR)[n]
            send(server.port, "", [verp], dsn(verp, AUTHOR, "5.1.1"))
            assert "hard bounce" in (final_row(blog).reason or "")
        assert person(blog, AUTHOR).suspended_at is not None
        comment(server, blog, address, "After the third bounce")
        delivered(sink, FAN, 4)  # the outbox ran for this comment
        assert len(sink[0].to(AUTHOR)) == 3

    def test_a_relays_5xx_at_rcpt_is_a_hard_bounce(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Three notifications refused at RCPT with 550 5.1.1 suspend the address; the next
        comment's mail goes to the others only."""
        post = blog.post()
        address = blog.address(post, READER)
        refusal = "550 5.1.1 <author@example.org>: Recipient address rejected: User unknown"
        for n in range(3):
            sink[0].answers.append(refusal)
            comment(server, blog, address, f"Comment {n}")
            wait_for(
                lambda done=n + 1: (
                    len([o for o in outbound(blog) if o.status == OutboundStatus.FAILED]) == done
                ),
                what="the refused notification to fail",
            )
        found = person(blog, AUTHOR)
        assert found.bounce_score >= SUSPEND_AT and found.suspended_at is not None
        follow(blog, post, FAN)
        comment(server, blog, address, "After the refusals")
        delivered(sink, FAN)
        assert sink[0].to(AUTHOR) == []
        assert [o.recipient for o in outbound(blog)][3:] == [FAN]

    def test_a_policy_refusal_is_about_us_and_counts_nothing(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A "554 5.7.1 Relay access denied" fails the notification, not the address: a
        misconfigured relay must not suspend every reader."""
        sink[0].answers.append("554 5.7.1 <author@example.org>: Relay access denied")
        comment(server, blog, blog.address(blog.post(), READER), "Hello")
        [row] = wait_for(
            lambda: [o for o in outbound(blog) if o.status == OutboundStatus.FAILED],
            what="the refused notification to fail",
        )
        assert "5.7.1" in (row.last_error or "")
        assert person(blog, AUTHOR).bounce_score == 0

    def test_soft_bounces_add_up_and_a_delivery_lowers_nothing(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Delayed-delivery DSNs add 0.25 each, deliveries between them do not lower the
        score, and the eleventh stops mail."""
        post = blog.post()
        address = blog.address(post, READER)
        comment(server, blog, address, "One")
        [verp] = wait_for(lambda: envelope_senders(sink, AUTHOR))
        for n in range(11):
            send(server.port, "", [verp], dsn(verp, AUTHOR, "4.2.2", action="delayed"))
            assert "soft bounce" in (final_row(blog).reason or "")
            if n == 4:
                comment(server, blog, address, "Two")
                delivered(sink, AUTHOR, 2)
            if n == 9:
                assert person(blog, AUTHOR).suspended_at is None
        found = person(blog, AUTHOR)
        assert found.suspended_at is not None
        assert found.bounce_score == pytest.approx(11 * 0.25, abs=0.01)


class TestDecay:
    def test_a_score_halves_every_thirty_days(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Two hard bounces a half-life ago count as one today: a third hard bounce brings the
        score to 2, below the threshold, and mail goes on."""
        address = blog.address(blog.post(), READER)
        comment(server, blog, address, "Hello")
        [verp] = wait_for(lambda: envelope_senders(sink, AUTHOR))
        then = (utcnow() - HALF_LIFE).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(server.settings.database_url.removeprefix("sqlite:///")) as db:
            db.execute(
                "UPDATE people SET bounce_score = 2, bounce_scored_at = ? WHERE email = ?",
                (then, AUTHOR),
            )
        send(server.port, "", [verp], dsn(verp, AUTHOR, "5.1.1"))
        row = final_row(blog)
        assert row.status == InboundStatus.IGNORED and "score 2.00" in (row.reason or "")
        found = person(blog, AUTHOR)
        assert found.suspended_at is None
        assert found.bounce_score == pytest.approx(2.0, abs=0.01)
        assert found.bounce_scored_at is not None
        assert utcnow() - found.bounce_scored_at < timedelta(minutes=1)
