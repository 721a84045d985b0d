"""Abuse limits on readers' requests from the blog (issue 19): per client address and per email
address (429 with Retry-After, `off`), a size cap, JSON only, a honeypot, Idempotency-Key."""

from __future__ import annotations

import pytest

from service.store.models import OutboundEmail
from tests.conftest import Blog, SinkHandler
from tests.http_fixtures import HttpClient, http
from tests.reader_helpers import (
    READER,
    confirmation_mails,
    count_rows,
    follow_requests,
    pending,
    reader_comment,
    reader_follow,
    wait_for_confirmation,
)

__all__ = ["http"]  # a fixture, imported so this module uses it


def from_client(host: str) -> dict[str, str]:
    """Headers naming the client, as a proxy on 127.0.0.1 does."""
    return {"X-Forwarded-For": host}


class TestPerClientAndAddress:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Small limits: 3 requests per client, 2 confirmation mails per address."""
        return {"REPLYD_WEB_LIMITS": "public=3/10m,email=2/h"}

    def test_a_client_over_its_limit_gets_429_and_keeps_nothing(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """The fourth request from one address (comments and follows count together) is 429
        with Retry-After and a sentence; another client still gets through."""
        blog.post()
        client = from_client("203.0.113.5")
        assert reader_comment(http, "one", email="a@example.org", headers=client).status == 202
        assert reader_follow(http, "b@example.org", headers=client).status == 202
        assert reader_comment(http, "three", email="c@example.org", headers=client).status == 202
        over = reader_comment(http, "four", email="d@example.org", headers=client)
        assert over.status == 429
        assert 0 < int(over.headers["retry-after"]) <= 600
        assert "from your address" in over.json()["error"]
        assert "3 per 10 minutes" in over.json()["error"]
        assert [p.body for p in pending(blog)] == ["one", "three"]
        assert (
            reader_comment(
                http, "other", email="d@example.org", headers=from_client("198.51.100.7")
            ).status
            == 202
        )

    def test_an_address_gets_at_most_its_confirmation_mails(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """From three clients, the third confirmation mail to one address is 429 (no mail
        bombing through the blog); another address is still mailed."""
        blog.post()
        for host, status in (("192.0.2.1", 202), ("192.0.2.2", 202), ("192.0.2.3", 429)):
            answer = reader_comment(http, host, headers=from_client(host))
            assert answer.status == status, answer.text
        assert "to this email address" in answer.json()["error"]
        assert int(answer.headers["retry-after"]) > 0
        assert len(pending(blog)) == 2
        assert (
            reader_follow(http, "else@example.org", headers=from_client("192.0.2.4")).status == 202
        )
        assert count_rows(blog, OutboundEmail) == 3


class TestLimitsOff:
    @pytest.fixture(
        params=[
            {"REPLYD_WEB_LIMITS": "off"},
            {"REPLYD_WEB_LIMITS": "public=1/h,email=1/h", "REPLYD_RATE_LIMITS": "off"},
        ],
        ids=["web-limits-off", "rate-limits-off"],
    )
    def settings_overrides(self, request: pytest.FixtureRequest) -> dict[str, str]:
        """Limits switched off by either setting."""
        return dict(request.param)

    def test_off_switch(self, http: HttpClient, blog: Blog) -> None:
        """With limits off, one client and one address send as often as they like."""
        blog.post()
        for number in range(5):
            assert reader_comment(http, f"n{number}").status == 202
        assert len(pending(blog)) == 5


class TestRequestChecks:
    def test_the_honeypot_keeps_nothing_and_sends_nothing(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A request with the hidden field filled in is answered like any other (202), but
        nothing is kept or mailed: a real request made after it is mailed, it is not."""
        blog.post()
        robot = reader_comment(http, "Buy now", website="http://spam.example")
        assert robot.status == 202 and robot.json()["status"] == "pending"
        assert reader_follow(http, website="x").status == 202
        assert reader_comment(http, "Real", email="real@example.org").status == 202
        wait_for_confirmation(sink[0], "real@example.org")
        assert confirmation_mails(sink[0], READER) == []
        assert [p.body for p in pending(blog)] == ["Real"]
        assert follow_requests(blog) == []

    def test_a_body_over_the_cap_is_413(self, http: HttpClient, blog: Blog) -> None:
        """More than 64 KiB is refused before it is read whole; nothing kept."""
        blog.post()
        answer = http.post(
            "/api/posts/hello/comments",
            data=b'{"body": "' + b"x" * (64 * 1024) + b'"}',
            auth=False,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status == 413 and "larger than" in answer.json()["error"]
        assert pending(blog) == []

    def test_only_json_is_taken(self, http: HttpClient, blog: Blog) -> None:
        """text/plain (which another site's page can send without asking) is 415."""
        blog.post()
        answer = http.post(
            "/api/posts/hello/comments",
            data=b'{"author_email": "reader@example.org", "body": "x"}',
            auth=False,
            headers={"Content-Type": "text/plain"},
        )
        assert answer.status == 415 and "application/json" in answer.json()["error"]
        assert pending(blog) == []

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"author_email": "not an address"}, "author_email"),
            ({"body": "   "}, "body"),
            ({"body": "x" * 50_001}, "body"),
            ({"author_name": "two\nlines"}, "author_name"),
            ({"follow": "hourly"}, "follow"),
            ({"parent_id": "seven"}, "parent_id"),
            ({"body": "bell \x07"}, "body"),
        ],
    )
    def test_bad_fields_are_400_naming_the_field(
        self, http: HttpClient, blog: Blog, fields: dict[str, str], field: str
    ) -> None:
        """Each field is checked, the answer starts with its name and says what to do."""
        blog.post()
        data = {"author_email": READER, "author_name": "Rita", "body": "ok", **fields}
        answer = http.post("/api/posts/hello/comments", json_body=data, auth=False)
        assert answer.status == 400, answer.text
        assert answer.json()["error"].startswith(f"{field}: ")
        assert pending(blog) == []

    def test_unknown_post_and_parent_are_404(self, http: HttpClient, blog: Blog) -> None:
        """A post or parent comment that does not exist is 404, nothing kept or mailed."""
        blog.post()
        assert reader_comment(http, slug="nope").status == 404
        assert reader_comment(http, parent_id=99).status == 404
        assert reader_follow(http, slug="nope").status == 404
        assert pending(blog) == [] and count_rows(blog, OutboundEmail) == 0


class TestIdempotencyKey:
    def test_a_double_click_makes_one_comment(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """The same key and body twice: one pending comment, one confirmation mail, the
        second answer the first one's, marked as a replay; the key with another body is 422."""
        blog.post()
        key = {"Idempotency-Key": "5b1f9c7e-double-click"}
        first = reader_comment(http, "Once", headers=key)
        second = reader_comment(http, "Once", headers=key)
        assert first.status == second.status == 202
        assert second.body == first.body and second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert reader_comment(http, "Other", headers=key).status == 422
        assert len(pending(blog)) == 1
        assert count_rows(blog, OutboundEmail) == 1
