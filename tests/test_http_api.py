"""The blog's JSON API over real HTTP against a running replyd: posts, comments, subscriptions."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from sqlalchemy import select

from service.store.models import OutboundEmail, Person, Post, Subscription
from tests.conftest import Blog, RunningServer, SinkHandler, wait_for
from tests.http_fixtures import API_TOKEN, HttpClient, http, settings_overrides

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

AUTHOR = "author@example.org"
READER = "reader@example.org"
NEW_POST = {
    "id": "new-post",
    "title": "A new post",
    "url": "https://blog.example.org/new-post",
    "author_email": "Writer@Example.org",
    "author_name": "Wanda Writer",
}


def queued_to(blog: Blog, address: str) -> list[OutboundEmail]:
    """Outbound rows addressed to one person."""
    with blog.parts.session_factory() as session:
        return list(
            session.scalars(select(OutboundEmail).where(OutboundEmail.recipient == address))
        )


def subscription(blog: Blog, slug: str, email: str) -> Subscription | None:
    """The (post, person) subscription row, if there is one."""
    with blog.parts.session_factory() as session:
        return session.scalar(
            select(Subscription)
            .join(Post, Post.id == Subscription.post_id)
            .join(Person, Person.id == Subscription.person_id)
            .where(Post.slug == slug, Person.email == email)
        )


class TestPosts:
    def test_create_then_update_post(self, http: HttpClient) -> None:
        """POST /api/posts creates (201) and, with the same id, updates (200) a post."""
        created = http.post("/api/posts", json_body=NEW_POST)
        assert created.status == 201, created.text
        assert created.json()["author_email"] == "writer@example.org"
        assert created.json()["closed"] is False
        updated = http.post(
            "/api/posts", json_body={**NEW_POST, "title": "Renamed", "closed": True}
        )
        assert updated.status == 200
        shown = http.get("/api/posts/new-post").json()
        assert shown["title"] == "Renamed" and shown["closed"] is True
        assert shown["author_name"] == "Wanda Writer"

    def test_public_read_hides_addresses(self, http: HttpClient, blog: Blog) -> None:
        """Without the token a post can be read, but its author's address is not shown."""
        blog.post()
        reply = http.get("/api/posts/hello", auth=False)
        assert reply.status == 200
        assert reply.json()["id"] == "hello"
        assert "author_email" not in reply.json()

    def test_unknown_post_is_404_json(self, http: HttpClient) -> None:
        """A missing post is a 404 with a JSON message."""
        reply = http.get("/api/posts/nope")
        assert reply.status == 404
        assert "nope" in reply.json()["error"]

    @pytest.mark.parametrize(
        ("body", "fragment"),
        [
            (b"{not json", "not valid JSON"),
            (b"[1, 2]", "JSON object"),
            (b'{"id": "x"}', "'title' is required"),
            (b"\xff\xfe", "not valid JSON"),
        ],
    )
    def test_malformed_body_is_400(self, http: HttpClient, body: bytes, fragment: str) -> None:
        """Bodies that are not a post are refused with 400 and say why."""
        reply = http.post("/api/posts", data=body, headers={"Content-Type": "application/json"})
        assert reply.status == 400
        assert fragment in reply.json()["error"]

    @pytest.mark.parametrize(
        ("field", "value", "status"),
        [
            ("author_email", "not-an-address", 400),
            ("url", "javascript:alert(1)", 422),
            ("id", "a/b", 422),
            ("title", 42, 400),
            ("title", "x" * 501, 422),
            ("title", "two\nlines", 422),
            ("closed", "yes", 400),
        ],
    )
    def test_bad_field_is_refused(
        self, http: HttpClient, field: str, value: object, status: int
    ) -> None:
        """Each field is checked: malformed input is a 400, a post breaking a rule (see
        test_post_validation) a 422, each naming the field, never a 500."""
        reply = http.post("/api/posts", json_body={**NEW_POST, field: value})
        assert reply.status == status, reply.text
        assert field in reply.json()["error"]

    def test_oversized_body_is_413(self, http: HttpClient) -> None:
        """A body over the limit is refused before it is parsed."""
        reply = http.post("/api/posts", data=b" " * (1024 * 1024 + 1))
        assert reply.status == 413
        assert "error" in reply.json()


class TestAuth:
    def test_write_without_token_is_401(self, http: HttpClient) -> None:
        """Writing needs the bearer token."""
        reply = http.post("/api/posts", json_body=NEW_POST, auth=False)
        assert reply.status == 401
        assert "Bearer" in reply.json()["error"]

    def test_wrong_token_is_401(self, http: HttpClient) -> None:
        """A wrong token is refused like a missing one."""
        reply = http.post(
            "/api/posts", json_body=NEW_POST, headers={"Authorization": "Bearer wrong-token"}
        )
        assert reply.status == 401


class TestWithoutToken:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """No REPLYD_API_TOKEN."""
        return {}

    def test_protected_endpoints_say_to_set_the_token(self, server: RunningServer) -> None:
        """With no token configured, protected endpoints are 503 and name the setting."""
        http = HttpClient(f"http://127.0.0.1:{server.server.http_port}", token=API_TOKEN)
        for method, path in (("POST", "/api/posts"), ("GET", "/api/inbound")):
            reply = http.request(method, path, json_body=NEW_POST if method == "POST" else None)
            assert reply.status == 503
            assert "REPLYD_API_TOKEN" in reply.json()["error"]


class TestComments:
    def test_web_comment_is_stored_followed_and_mailed(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A web comment is stored with source=web and its notification reaches the author."""
        blog.post()
        reply = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": READER, "author_name": "Rita", "body": "From the web"},
        )
        assert reply.status == 201, reply.text
        assert reply.json()["source"] == "web"
        [mail] = wait_for(lambda: sink[0].to(AUTHOR), what="the author's notification")
        assert "From the web" in mail.get_body(("plain",)).get_content()
        follows = subscription(blog, "hello", READER)
        assert follows is not None and follows.active

    def test_crlf_from_a_textarea_is_stored_as_lf(self, http: HttpClient, blog: Blog) -> None:
        """A body with browser CRLF line ends is stored with LF, not refused."""
        blog.post()
        reply = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": READER, "body": "line one\r\nline two\r\n"},
        )
        assert reply.status == 201, reply.text
        assert reply.json()["body"] == "line one\nline two"

    def test_comments_come_in_thread_order(self, http: HttpClient, blog: Blog) -> None:
        """Answers follow what they answer, with parent_id and depth."""
        blog.post()

        def comment(body: str, parent: int | None = None) -> int:
            reply = http.post(
                "/api/posts/hello/comments",
                json_body={"author_email": READER, "body": body, "parent_id": parent},
            )
            assert reply.status == 201, reply.text
            return int(reply.json()["id"])

        first = comment("first")
        second = comment("second")
        answer = comment("answer to first", first)
        listed = http.get("/api/posts/hello/comments", auth=False).json()["comments"]
        assert [(c["id"], c["parent_id"], c["depth"]) for c in listed] == [
            (first, None, 0),
            (answer, first, 1),
            (second, None, 0),
        ]
        assert all("author_email" not in c for c in listed)

    def test_closed_post_refuses_comment(self, http: HttpClient, blog: Blog) -> None:
        """A closed post answers 409."""
        blog.post(closed=True)
        reply = http.post(
            "/api/posts/hello/comments", json_body={"author_email": READER, "body": "late"}
        )
        assert reply.status == 409
        assert "closed" in reply.json()["error"]

    def test_parent_from_another_post_is_404(self, http: HttpClient, blog: Blog) -> None:
        """A parent_id must name a comment on the same post."""
        blog.post("one")
        blog.post("two")
        first = http.post(
            "/api/posts/one/comments", json_body={"author_email": READER, "body": "on one"}
        ).json()["id"]
        reply = http.post(
            "/api/posts/two/comments",
            json_body={"author_email": READER, "body": "on two", "parent_id": first},
        )
        assert reply.status == 404

    @pytest.mark.parametrize(
        "body",
        [
            {"author_email": READER, "body": "   "},
            {"author_email": READER, "body": "x", "parent_id": "1"},
            {"author_email": READER, "body": "x", "parent_id": True},
            {"author_email": READER, "body": "x" * 50_001},
            {"body": "who am I"},
        ],
    )
    def test_bad_comment_is_400(
        self, http: HttpClient, blog: Blog, body: dict[str, object]
    ) -> None:
        """Empty, oversized or ill-typed comments are refused with a message."""
        blog.post()
        reply = http.post("/api/posts/hello/comments", json_body=body)
        assert reply.status == 400
        assert reply.json()["error"]


class TestSubscriptions:
    def test_subscribe_with_digest(self, http: HttpClient, blog: Blog) -> None:
        """POST /api/subscriptions makes someone follow a post, by digest if asked."""
        blog.post()
        reply = http.post(
            "/api/subscriptions",
            json_body={"post_id": "hello", "email": READER, "digest": "weekly"},
        )
        assert reply.status == 200, reply.text
        row = subscription(blog, "hello", READER)
        assert row is not None and row.active and row.digest == "weekly"

    def test_unsubscribe_survives_commenting(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """After DELETE, commenting does not make the person follow again: no more mail."""
        blog.post()
        assert (
            http.post("/api/subscriptions", json_body={"post_id": "hello", "email": READER}).status
            == 200
        )
        reply = http.request(
            "DELETE", "/api/subscriptions", json_body={"post_id": "hello", "email": READER}
        )
        assert reply.status == 200 and reply.json()["active"] is False
        http.post("/api/posts/hello/comments", json_body={"author_email": READER, "body": "mine"})
        http.post("/api/posts/hello/comments", json_body={"author_email": AUTHOR, "body": "hi"})
        wait_for(lambda: sink[0].to(AUTHOR), what="the author's notification")
        assert queued_to(blog, READER) == []
        row = subscription(blog, "hello", READER)
        assert row is not None and not row.active

    def test_delete_by_query_parameters(self, http: HttpClient, blog: Blog) -> None:
        """DELETE also takes post_id and email as query parameters (no body)."""
        blog.post()
        reply = http.request("DELETE", f"/api/subscriptions?post_id=hello&email={READER}")
        assert reply.status == 200
        row = subscription(blog, "hello", READER)
        assert row is not None and not row.active

    def test_bad_digest_is_400(self, http: HttpClient, blog: Blog) -> None:
        """Only null, daily and weekly are digests."""
        blog.post()
        reply = http.post(
            "/api/subscriptions",
            json_body={"post_id": "hello", "email": READER, "digest": "hourly"},
        )
        assert reply.status == 400


class TestOpenApi:
    def test_document_validates(self, http: HttpClient) -> None:
        """/openapi.json is a valid OpenAPI 3.1 document covering every API path."""
        reply = http.get("/openapi.json", auth=False)
        assert reply.status == 200
        document = reply.json()
        validate(document)
        assert set(document["paths"]) == {
            "/api/posts",
            "/api/posts/{post_id}",
            "/api/posts/{post_id}/comments",
            "/api/comments",
            "/api/comments/{comment_id}",
            "/api/posts/{post_id}/follow",
            "/api/subscriptions",
            "/api/inbound",
            "/api/people",
            "/api/people/export",
        }
