"""A comment approved after a digest run moved the watermark past it still reaches digest
takers, once (issue 17: every published comment, exactly once; issue 18: approval sends as if
just published), over the real HTTP server and a real SMTP sink."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.store.models import DigestBacklog, Subscription
from tests.conftest import Blog, RunningServer, SinkHandler
from tests.http_fixtures import API_TOKEN, HttpClient, http
from tests.moderation_helpers import AUTHOR, READER, comment_row, mail_to, text_of
from tests.test_moderation_effects import FAN, follow, patch, web_comment

__all__ = ["http"]  # a fixture, imported so this module uses it

Sink = tuple[SinkHandler, int]


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """First comments wait for approval; the API takes the token."""
    return {"REPLYD_API_TOKEN": API_TOKEN, "REPLYD_MODERATION": "new"}


def run_digests(server: RunningServer, blog: Blog) -> int:
    """A daily digest run, as `replyd digest send` does; the outbox woken to deliver it."""
    queued = blog.parts.digests().send(blog.parts.session_factory, "daily")
    server.server._outbound_wakeup.set()
    return queued


def backlog_rows(blog: Blog) -> int:
    with blog.parts.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(DigestBacklog)) or 0)


def watermark(blog: Blog, person: int) -> int | None:
    with blog.parts.session_factory() as session:
        return session.scalar(
            select(Subscription.digest_through).where(Subscription.person_id == person)
        )


class TestApprovedAfterTheWatermark:
    def test_a_comment_approved_after_a_digest_run_is_in_the_next_digest_once(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """Held, then a digest run sends a later comment and moves the watermark past the
        held one; approved: the next digest holds it, once, and nothing else."""
        post = blog.post()
        fan = follow(blog, post, FAN, digest="daily")
        held = web_comment(http, "Held until approved")
        assert comment_row(blog, held).status == "held"
        later = web_comment(http, "The author answers", author=AUTHOR)
        assert run_digests(server, blog) == 1
        [first] = mail_to(sink, FAN)
        assert "The author answers" in text_of(first)
        assert "Held until approved" not in text_of(first)
        assert watermark(blog, fan) == later > held

        approved = patch(http, held, "published")
        assert approved.status == 200 and approved.json()["status"] == "published"
        assert backlog_rows(blog) == 1
        assert run_digests(server, blog) == 1
        second = mail_to(sink, FAN, 2)[1]
        assert text_of(second).count("Held until approved") == 1
        assert "The author answers" not in text_of(second)
        assert backlog_rows(blog) == 0
        assert run_digests(server, blog) == 0  # nothing new: nothing again

    def test_approved_before_the_run_it_is_sent_once_and_its_backlog_row_goes(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """Approved before any digest run: the range and the backlog both find it; the
        digest holds it once and the backlog row is deleted, so no later digest repeats it."""
        post = blog.post()
        follow(blog, post, FAN, digest="daily")
        held = web_comment(http, "Held until approved")
        assert patch(http, held, "published").status == 200
        assert backlog_rows(blog) == 1
        assert run_digests(server, blog) == 1
        [digest] = mail_to(sink, FAN)
        assert text_of(digest).count("Held until approved") == 1
        assert backlog_rows(blog) == 0
        web_comment(http, "The author answers", author=AUTHOR)
        assert run_digests(server, blog) == 1
        second = mail_to(sink, FAN, 2)[1]
        assert "The author answers" in text_of(second)
        assert "Held until approved" not in text_of(second)

    def test_approved_then_hidden_before_the_run_it_is_not_sent_and_its_row_goes(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """Approved after the watermark passed it, then hidden: the next digest (sent for
        another comment, proof that the run covered it) leaves it out, and its backlog row
        is gone."""
        post = blog.post()
        follow(blog, post, FAN, digest="daily")
        held = web_comment(http, "Held, approved, hidden")
        web_comment(http, "The author answers", author=AUTHOR)
        assert run_digests(server, blog) == 1
        mail_to(sink, FAN)
        assert patch(http, held, "published").status == 200
        assert patch(http, held, "hidden").status == 200
        assert backlog_rows(blog) == 1
        web_comment(http, "The author again", author=AUTHOR)
        assert run_digests(server, blog) == 1
        second = mail_to(sink, FAN, 2)[1]
        assert "The author again" in text_of(second)
        assert "Held, approved, hidden" not in text_of(second)
        assert backlog_rows(blog) == 0

    def test_the_writer_and_people_without_digests_are_owed_nothing(
        self, server: RunningServer, blog: Blog, http: HttpClient
    ) -> None:
        """Backlog rows go to other people's active digest subscriptions only."""
        post = blog.post()
        follow(blog, post, FAN, digest="daily")
        follow(blog, post, "instant@example.org")
        follow(blog, post, READER, digest="weekly")  # the writer's own
        held = web_comment(http, "Held until approved")
        assert patch(http, held, "published").status == 200
        with blog.parts.session_factory() as session:
            owed = session.scalars(
                select(Subscription.person_id).join(
                    DigestBacklog, DigestBacklog.subscription_id == Subscription.id
                )
            ).all()
        assert owed == [blog.person(FAN)]
