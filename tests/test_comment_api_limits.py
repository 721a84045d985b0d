"""The web comment API over real HTTP: Idempotency-Key makes a retry publish once, and requests
are limited per client address and per token (issue 16)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from service.runtime.settings import Settings
from service.runtime.throttle import DEFAULT_WEB_LIMITS, parse_web_limits
from service.store.models import Comment, IdempotencyKey, OutboundEmail, utcnow
from tests.conftest import Blog, SinkHandler, make_settings
from tests.http_fixtures import API_TOKEN, HttpClient, Reply, http, settings_overrides

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

AUTHOR = "author@example.org"
READER = "reader@example.org"
COMMENT = {"author_email": READER, "author_name": "Rita", "body": "Only once, please."}


def post_comment(
    http: HttpClient,
    body: dict[str, object] = COMMENT,
    *,
    key: str | None = None,
    client: str | None = None,
    slug: str = "hello",
    token: str | None = None,
) -> Reply:
    """POST a web comment, with an Idempotency-Key and from a client address if given."""
    headers = {}
    if key is not None:
        headers["Idempotency-Key"] = key
    if client is not None:
        headers["X-Forwarded-For"] = client  # as a proxy on 127.0.0.1 names the client
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return http.post(f"/api/posts/{slug}/comments", json_body=body, headers=headers)


def comment_count(blog: Blog) -> int:
    """Comments stored, on every post."""
    with blog.parts.session_factory() as session:
        return int(session.scalar(select(func.count(Comment.id))) or 0)


def notifications_to(blog: Blog, address: str) -> int:
    """Notifications queued (or sent) to one address."""
    with blog.parts.session_factory() as session:
        query = select(func.count(OutboundEmail.id)).where(OutboundEmail.recipient == address)
        return int(session.scalar(query) or 0)


class TestIdempotencyKey:
    def test_a_retry_gets_the_first_answer_and_makes_no_second_comment(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """The same key and body twice: the same 201 body, the second marked as a replay;
        one comment, one notification to the author."""
        blog.post()
        first = post_comment(http, key="7f1c0b1e-retry")
        again = post_comment(http, key="7f1c0b1e-retry")
        assert first.status == again.status == 201, again.text
        assert again.body == first.body
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert comment_count(blog) == 1
        assert notifications_to(blog, AUTHOR) == 1

    def test_the_same_key_for_another_request_is_422(self, http: HttpClient, blog: Blog) -> None:
        """Reusing a key with another body, or on another post, is refused with a sentence."""
        blog.post()
        blog.post("other")
        assert post_comment(http, key="k-1").status == 201
        changed = post_comment(http, {**COMMENT, "body": "Something else"}, key="k-1")
        assert changed.status == 422
        assert "already used for another request" in changed.json()["error"]
        elsewhere = post_comment(http, key="k-1", slug="other")
        assert elsewhere.status == 422
        assert comment_count(blog) == 1

    def test_without_a_key_or_with_new_keys_each_request_counts(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """Two requests with different keys (or none) are two comments."""
        blog.post()
        for key in ("a-1", "a-2", None, None):
            assert post_comment(http, key=key).status == 201
        assert comment_count(blog) == 4

    @pytest.mark.parametrize("key", ["", " ", "x" * 256, "has space", "caf\u00e9"])
    def test_malformed_key_is_400(self, http: HttpClient, blog: Blog, key: str) -> None:
        """An empty, overlong or non-ASCII key is refused before anything is stored."""
        blog.post()
        headers = {"Idempotency-Key": key.encode("utf-8").decode("latin-1")}
        reply = http.post("/api/posts/hello/comments", json_body=COMMENT, headers=headers)
        assert reply.status == 400
        assert "Idempotency-Key" in reply.json()["error"]
        assert comment_count(blog) == 0

    def test_quoted_key_is_the_same_key(self, http: HttpClient, blog: Blog) -> None:
        """A key sent as a structured-field string ("...") is the key inside the quotes."""
        blog.post()
        assert post_comment(http, key="abc-123").status == 201
        assert post_comment(http, key='"abc-123"').headers["idempotent-replayed"] == "true"
        assert comment_count(blog) == 1

    def test_a_refused_request_leaves_the_key_free(self, http: HttpClient, blog: Blog) -> None:
        """A request refused (post closed) stores no answer: retried after reopening, the same
        key publishes the comment."""
        blog.post(closed=True)
        assert post_comment(http, key="k-closed").status == 409
        reopened = http.post(
            "/api/posts",
            json_body={
                "id": "hello",
                "title": "Post hello",
                "url": "https://blog.example.org/hello",
                "author_email": AUTHOR,
            },
        )
        assert reopened.status == 200
        retried = post_comment(http, key="k-closed")
        assert retried.status == 201 and "idempotent-replayed" not in retried.headers
        assert comment_count(blog) == 1

    def test_keys_are_kept_a_day(self, http: HttpClient, blog: Blog) -> None:
        """After 24 hours a key is forgotten: the same request is a new comment, and the old
        row is gone from the table."""
        blog.post()
        assert post_comment(http, key="k-day").status == 201
        with blog.parts.session_factory.begin() as session:
            session.execute(
                update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=24, seconds=1))
            )
        later = post_comment(http, key="k-day")
        assert later.status == 201 and "idempotent-replayed" not in later.headers
        assert comment_count(blog) == 2
        with blog.parts.session_factory() as session:
            assert session.scalar(select(func.count(IdempotencyKey.id))) == 1


class TestConcurrentRetries:
    def test_simultaneous_retries_publish_once(self, http: HttpClient, blog: Blog) -> None:
        """Eight copies of one request with one key sent at the same moment: one comment, and
        every answer is that comment."""
        blog.post()
        start = threading.Barrier(8)
        replies: list[Reply] = []

        def send_one() -> None:
            start.wait()
            replies.append(post_comment(http, key="k-race"))

        threads = [threading.Thread(target=send_one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(replies) == 8
        assert {reply.status for reply in replies} == {201}, [r.text for r in replies]
        assert len({reply.body for reply in replies}) == 1
        assert comment_count(blog) == 1
        assert notifications_to(blog, AUTHOR) == 1


class TestConcurrentRetriesOnPostgres(TestConcurrentRetries):
    @pytest.fixture
    def settings(
        self,
        tmp_path: Path,
        postgres_url: str,
        sink: tuple[SinkHandler, int],
        settings_overrides: dict[str, str],
    ) -> Settings:
        """The same, on PostgreSQL (REPLYD_TEST_POSTGRES_URL), where the race ends at the key's
        unique constraint instead of SQLite's write lock."""
        var_dir = tmp_path / "var"
        var_dir.mkdir()
        return make_settings(
            var_dir,
            REPLYD_DATABASE_URL=postgres_url,
            REPLYD_OUTBOUND=f"smtp://127.0.0.1:{sink[1]}",
            **settings_overrides,
        )


class TestRateLimits:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Small limits: three requests per client address, five per token."""
        return {"REPLYD_API_TOKEN": API_TOKEN, "REPLYD_WEB_LIMITS": "client=3/10m,token=5/10m"}

    def test_per_client_address(self, http: HttpClient, blog: Blog) -> None:
        """The fourth request from one address is 429 with Retry-After and a sentence, and
        stores nothing; another address still comments."""
        blog.post()
        for _ in range(3):
            assert post_comment(http, client="203.0.113.7").status == 201
        over = post_comment(http, client="203.0.113.7")
        assert over.status == 429
        assert 0 < int(over.headers["retry-after"]) <= 600
        assert "too many comment requests from your address" in over.json()["error"]
        assert "3 per 10 minutes" in over.json()["error"]
        assert post_comment(http, client="198.51.100.9").status == 201
        assert comment_count(blog) == 4

    def test_per_token(self, http: HttpClient, blog: Blog) -> None:
        """Five requests with the token from five addresses, then the sixth from a fresh
        address is 429: the token itself is over its limit."""
        blog.post()
        for host in range(1, 6):
            assert post_comment(http, client=f"192.0.2.{host}").status == 201
        over = post_comment(http, client="192.0.2.77")
        assert over.status == 429 and "with this token" in over.json()["error"]
        assert int(over.headers["retry-after"]) > 0
        assert comment_count(blog) == 5

    def test_wrong_tokens_count_against_the_address(self, http: HttpClient, blog: Blog) -> None:
        """Requests with a wrong token use up the address's allowance too, so the token cannot
        be guessed there at full speed."""
        blog.post()
        for _ in range(3):
            assert (
                post_comment(http, client="203.0.113.9", token="wrong-token-000000").status == 401
            )
        assert post_comment(http, client="203.0.113.9").status == 429
        assert comment_count(blog) == 0

    def test_a_replay_still_counts(self, http: HttpClient, blog: Blog) -> None:
        """Retries with a key are requests too: they are limited like any other."""
        blog.post()
        for _ in range(3):
            assert post_comment(http, key="k-same", client="203.0.113.10").status == 201
        assert post_comment(http, key="k-same", client="203.0.113.10").status == 429
        assert comment_count(blog) == 1


class TestRateLimitsOff:
    @pytest.fixture(
        params=[
            {"REPLYD_WEB_LIMITS": "off"},
            {"REPLYD_WEB_LIMITS": "client=2/10m,token=2/10m", "REPLYD_RATE_LIMITS": "off"},
        ],
        ids=["web-limits-off", "rate-limits-off"],
    )
    def settings_overrides(self, request: pytest.FixtureRequest) -> dict[str, str]:
        """Limits switched off by either setting."""
        return {"REPLYD_API_TOKEN": API_TOKEN, **request.param}

    def test_off_switch(self, http: HttpClient, blog: Blog) -> None:
        """With limits off, one address comments as often as it likes (load tests)."""
        blog.post()
        for _ in range(6):
            assert post_comment(http, client="203.0.113.7").status == 201
        assert comment_count(blog) == 6


def test_default_limits_are_on(tmp_path: Path) -> None:
    """Without settings, the web limits are the documented defaults."""
    settings = make_settings(tmp_path)
    assert settings.web_limits == parse_web_limits(DEFAULT_WEB_LIMITS)
    assert set(settings.web_limits) == {"login", "client", "token", "public", "email"}
