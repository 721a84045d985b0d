"""Readers' comments and follows on a real PostgreSQL (REPLYD_TEST_POSTGRES_URL): the same flows,
and confirmations and follow requests racing each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.runtime.settings import Settings
from tests import test_reader_comments as readers
from tests.conftest import Blog, SinkHandler, postgres_settings
from tests.http_fixtures import API_TOKEN, HttpClient, http
from tests.reader_helpers import (
    BLOG_ORIGIN,
    comments,
    confirm_path,
    confirmation_mails,
    follow_requests,
    reader_comment,
    reader_follow,
    wait_for_confirmation,
)
from tests.test_postgres import all_at_once

__all__ = ["http"]  # a fixture, imported so this module uses it


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """As in test_reader_comments."""
    return {
        "REPLYD_API_TOKEN": API_TOKEN,
        "REPLYD_EMBED_ORIGINS": BLOG_ORIGIN,
        "REPLYD_WEB_LIMITS": "public=200/10m,email=50/h",
    }


@pytest.fixture
def settings(
    tmp_path: Path,
    postgres_url: str,
    sink: tuple[SinkHandler, int],
    settings_overrides: dict[str, str],
) -> Settings:
    """Settings whose database is the run's (emptied) PostgreSQL database."""
    return postgres_settings(tmp_path, postgres_url, sink, settings_overrides)


class TestConfirmedByLinkOnPostgres(readers.TestConfirmedByLink):
    """The link flows on PostgreSQL."""


class TestConfirmedByReplyOnPostgres(readers.TestConfirmedByReply):
    """The reply flows on PostgreSQL."""


class TestFollowOnPostgres(readers.TestFollow):
    """Follow requests on PostgreSQL."""


class TestRaces:
    def test_a_link_used_eight_times_at_once_publishes_once(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Eight POSTs of one confirmation link at the same moment: one comment, one 303,
        the others see it already confirmed."""
        blog.post()
        assert reader_comment(http, "Raced").status == 202
        path = confirm_path(wait_for_confirmation(sink[0]))
        answers = all_at_once(8, lambda _: http.post(path, auth=False).status)
        assert sorted(answers) == [200] * 7 + [303]
        assert [c.body for c in comments(blog)] == ["Raced"]

    def test_eight_follow_requests_at_once_mail_once(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Eight requests for one address and post at the same moment: one request kept, one
        mail (a request for another address, made after them, arrives first or with it)."""
        blog.post()
        assert set(all_at_once(8, lambda _: reader_follow(http).status)) == {202}
        assert reader_follow(http, "later@example.org").status == 202
        wait_for_confirmation(sink[0], "later@example.org")
        wait_for_confirmation(sink[0])
        assert len(confirmation_mails(sink[0])) == 1
        assert len(follow_requests(blog)) == 2
