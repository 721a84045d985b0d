"""Pages, feed, unsubscribe, operator view, health and metrics over real HTTP against replyd."""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from service.identity.addresses import ALL_POSTS, ReplyTarget, make_token
from service.runtime.components import Components
from service.runtime.settings import Settings
from service.store.models import InboundEmail, InboundStatus, Subscription
from service.web.app import HttpServer
from service.web.metrics import reason_label
from service.web.render import linkify
from tests.conftest import (
    Blog,
    RunningServer,
    SinkHandler,
    make_settings,
    reply_message,
    send,
    wait_for,
)
from tests.http_fixtures import (
    API_TOKEN,
    HttpClient,
    http,
    login,
    session_cookie,
    settings_overrides,
)

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

ATOM = "{http://www.w3.org/2005/Atom}"
AUTHOR = "author@example.org"
READER = "reader@example.org"


def final_row(blog: Blog) -> InboundEmail:
    """The newest inbound row once it reached a terminal state."""

    def terminal() -> InboundEmail | None:
        with blog.parts.session_factory() as session:
            row = session.scalars(select(InboundEmail).order_by(InboundEmail.id.desc())).first()
            if row is not None and row.status not in (
                InboundStatus.RECEIVED,
                InboundStatus.PROCESSING,
            ):
                return row
        return None

    return wait_for(terminal, what="the inbound message to finish")


def comment(http: HttpClient, body: str, author: str = READER, slug: str = "hello") -> int:
    """Publish a web comment through the API; its id."""
    reply = http.post(
        f"/api/posts/{slug}/comments",
        json_body={"author_email": author, "author_name": "Rita Reader", "body": body},
    )
    assert reply.status == 201, reply.text
    return int(reply.json()["id"])


class TestPostPage:
    def test_thread_renders_escaped_with_links_and_quote(
        self, http: HttpClient, blog: Blog, server: RunningServer
    ) -> None:
        """Comment text is escaped, URLs become nofollow links, the cut quote is not shown."""
        blog.post()
        comment(http, "<script>alert('x')</script> see https://example.net/a?b=1&c=2.")
        address = blog.address(blog.post("other"), READER)
        send(
            server.port,
            READER,
            [address],
            reply_message(READER, address, "By mail\n\nOn Mon, Ann wrote:\n> quoted words\n"),
        )
        assert final_row(blog).status == InboundStatus.PROCESSED
        page = http.get("/posts/hello", auth=False)
        assert page.status == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
        assert "<script>" not in page.text
        assert (
            '<a href="https://example.net/a?b=1&amp;c=2" rel="nofollow ugc noopener noreferrer">'
            in page.text
        )
        assert "default-src 'none'" in page.headers["content-security-policy"]
        other = http.get("/posts/other", auth=False).text
        assert "By mail" in other
        assert "quoted words" not in other and "<details>" not in other

    def test_answers_name_their_parent(self, http: HttpClient, blog: Blog) -> None:
        """An answer links to the comment it answers and is indented under it."""
        blog.post()
        first = comment(http, "first")
        reply = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": AUTHOR, "body": "answer", "parent_id": first},
        )
        answer = reply.json()["id"]
        page = http.get("/posts/hello", auth=False).text
        assert f'id="comment-{answer}"' in page
        assert f'href="#comment-{first}">Rita Reader</a>' in page
        assert page.index("first") < page.index("answer")
        assert "depth-1" in page

    def test_missing_post_is_404_page(self, http: HttpClient) -> None:
        """An unknown post is an HTML 404."""
        reply = http.get("/posts/nope", auth=False)
        assert reply.status == 404
        assert reply.headers["content-type"].startswith("text/html")

    def test_linkify_keeps_only_http_links(self) -> None:
        """Only http(s) URLs become links; everything else stays escaped text."""
        html = str(linkify("javascript:alert(1) <b> (see https://en.wikipedia.org/wiki/A_(b))."))
        assert html.count("<a ") == 1
        assert 'href="https://en.wikipedia.org/wiki/A_(b)"' in html
        assert "&lt;b&gt;" in html and html.endswith(").")


class TestAtomFeed:
    def test_feed_parses_as_atom(self, http: HttpClient, blog: Blog) -> None:
        """The comment feed is Atom: namespace, feed id/title/updated, one entry per comment."""
        blog.post()
        comment(http, "first <script>x</script>")
        comment(http, "second & last")
        reply = http.get("/posts/hello/comments.atom", auth=False)
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("application/atom+xml")
        feed = ET.fromstring(reply.body)
        assert feed.tag == f"{ATOM}feed"
        for child in ("id", "title", "updated"):
            assert feed.find(f"{ATOM}{child}") is not None
        entries = feed.findall(f"{ATOM}entry")
        assert [e.findtext(f"{ATOM}content") for e in entries] == [
            "second & last",
            "first <script>x</script>",
        ]
        for entry in entries:
            assert entry.findtext(f"{ATOM}id")
            assert entry.findtext(f"{ATOM}author/{ATOM}name") == "Rita Reader"
            assert entry.find(f"{ATOM}content").get("type") == "text"  # type: ignore[union-attr]


class TestUnsubscribe:
    def test_one_click_from_a_notification(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """The List-Unsubscribe URL of a real notification works as an RFC 8058 one-click POST."""
        blog.post()
        comment(http, "first")
        [mail] = wait_for(lambda: sink[0].to(AUTHOR), what="the author's notification")
        [url] = re.findall(r"<(https://[^>]+)>", str(mail["List-Unsubscribe"]))
        path = urlsplit(url).path
        confirm = http.get(path, auth=False)
        assert confirm.status == 200
        assert '<form method="post">' in confirm.text and "a…@example.org" in confirm.text
        done = http.post(path, data=b"List-Unsubscribe=One-Click", auth=False)
        assert done.status == 200
        assert "unsubscribed" in done.text
        with blog.parts.session_factory() as session:
            [row] = session.scalars(select(Subscription).where(~Subscription.active)).all()
            assert row.person.email == AUTHOR
        comment(http, "second")
        wait_for(lambda: len(sink[0].messages) >= 1, what="nothing else to arrive")
        assert len(sink[0].to(AUTHOR)) == 1

    def test_unsubscribe_creates_an_opt_out(self, http: HttpClient, blog: Blog) -> None:
        """Unsubscribing someone with no subscription row records an inactive one."""
        post = blog.post()
        person = blog.person(READER)
        token = make_token(ReplyTarget(post, None, person), blog.parts.keyring, "unsubscribe")
        assert http.post(f"/unsubscribe/{token}", auth=False).status == 200
        with blog.parts.session_factory() as session:
            row = session.scalar(select(Subscription).where(Subscription.person_id == person))
            assert row is not None and not row.active

    def test_digest_link_stops_every_digest(self, http: HttpClient, blog: Blog) -> None:
        """A digest's one-click link (all posts) ends the person's digest subscriptions."""
        post = blog.post()
        person = blog.person(READER)
        with blog.parts.session_factory.begin() as session:
            session.add(Subscription(post_id=post, person_id=person, digest="daily"))
        token = make_token(ReplyTarget(ALL_POSTS, None, person), blog.parts.keyring, "unsubscribe")
        assert "digests" in http.get(f"/unsubscribe/{token}", auth=False).text
        assert http.post(f"/unsubscribe/{token}", auth=False).status == 200
        with blog.parts.session_factory() as session:
            assert session.scalars(select(Subscription.active)).all() == [False]

    def test_bad_or_reply_token_is_404(self, http: HttpClient, blog: Blog) -> None:
        """A tampered token, or a reply token, does not unsubscribe anybody."""
        post = blog.post()
        reply_token = make_token(ReplyTarget(post, None, blog.person(READER)), blog.parts.keyring)
        for token in ("abc", reply_token):
            assert http.get(f"/unsubscribe/{token}", auth=False).status == 404
            assert http.post(f"/unsubscribe/{token}", auth=False).status == 404

    def test_access_log_leaves_tokens_out(
        self, http: HttpClient, blog: Blog, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The access log names the unsubscribe route, never the token in its path."""
        post = blog.post()
        token = make_token(
            ReplyTarget(post, None, blog.person(READER)), blog.parts.keyring, "unsubscribe"
        )
        caplog.set_level(logging.INFO)
        assert http.get(f"/unsubscribe/{token}", auth=False).status == 200
        wait_for(lambda: "/unsubscribe/{token}" in caplog.text, what="the access log line")
        assert token not in caplog.text


class TestOperatorView:
    def test_admin_page_shows_rejected_message_with_reason(
        self, http: HttpClient, blog: Blog, server: RunningServer
    ) -> None:
        """Mail from the wrong sender shows up as rejected, with reason, preview and raw link."""
        address = blog.address(blog.post(), READER)
        send(
            server.port,
            "mallory@evil.example",
            [address],
            reply_message("mallory@evil.example", address, "I am Rita, <b>trust me</b>"),
        )
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED
        page = http.get("/admin/inbound")
        assert page.status == 200
        assert f'id="inbound-{row.id}"' in page.text
        assert '<span class="status-rejected">rejected</span>' in page.text
        assert "sender mismatch" in page.text and "mallory@evil.example" in page.text
        assert "I am Rita, &lt;b&gt;trust me&lt;/b&gt;" in page.text  # the extraction preview
        raw = http.get(f"/admin/inbound/{row.id}/raw")
        assert raw.status == 200 and raw.headers["content-type"].startswith("text/plain")
        assert "From: mallory@evil.example" in raw.text
        filtered = http.get("/admin/inbound?status=processed")
        assert f'id="inbound-{row.id}"' not in filtered.text

    def test_retry_button_replays_a_message(
        self, http: HttpClient, blog: Blog, server: RunningServer
    ) -> None:
        """A reply refused while the post was closed is published after reopening and retry."""
        address = blog.address(blog.post(closed=True), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Let me in"))
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED
        reopened = http.post(
            "/api/posts",
            json_body={
                "id": "hello",
                "title": "Post hello",
                "url": "https://blog.example.org/hello",
                "author_email": AUTHOR,
                "closed": False,
            },
        )
        assert reopened.status == 200
        browser = {"Cookie": session_cookie(login(http))}
        page = http.get("/admin/inbound", auth=False, headers=browser).text
        assert f'action="/admin/inbound/{row.id}/retry"' in page
        [csrf] = re.findall(r'name="csrf" value="([^"]+)"', page)
        retry = f"/admin/inbound/{row.id}/retry"
        stale = http.post(retry, data=b"csrf=wrong", auth=False, headers=browser)
        assert stale.status == 403
        retried = http.post(retry, data=f"csrf={csrf}".encode(), auth=False, headers=browser)
        assert retried.status == 303
        assert final_row(blog).status == InboundStatus.PROCESSED
        listed = http.get("/api/posts/hello/comments").json()["comments"]
        assert [c["body"] for c in listed] == ["Let me in"]

    def test_login_cookie_opens_the_admin_page(self, http: HttpClient) -> None:
        """Without the token the page asks for it; the login form's cookie then opens it."""
        asked = http.get("/admin/inbound", auth=False)
        assert asked.status == 401 and 'name="token"' in asked.text
        wrong = http.post("/admin/login", data=b"token=nope", auth=False)
        assert wrong.status == 401
        opened = login(http)
        assert opened.status == 303
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and API_TOKEN not in cookie
        page = http.get("/admin/inbound", auth=False, headers={"Cookie": session_cookie(opened)})
        assert page.status == 200 and "Inbound mail" in page.text

    def test_inbound_api_filters_and_pages(
        self, http: HttpClient, blog: Blog, server: RunningServer
    ) -> None:
        """GET /api/inbound filters by status and pages with a cursor, newest first."""
        address = blog.address(blog.post(), READER)
        for number in range(3):
            send(server.port, READER, [address], reply_message(READER, address, f"n{number}"))
            final_row(blog)
        send(
            server.port, "x@evil.example", [address], reply_message("x@evil.example", address, "x")
        )
        final_row(blog)
        first = http.get("/api/inbound?status=processed&limit=2").json()
        assert [i["status"] for i in first["items"]] == ["processed", "processed"]
        assert first["items"][0]["id"] > first["items"][1]["id"]
        assert set(first["items"][0]) >= {"id", "received_at", "sender", "recipient", "reason"}
        rest = http.get(f"/api/inbound?status=processed&before={first['next_before']}").json()
        assert len(rest["items"]) == 1 and rest["next_before"] is None
        rejected = http.get("/api/inbound?status=rejected").json()["items"]
        assert [i["sender"] for i in rejected] == ["x@evil.example"]
        assert http.get("/api/inbound?status=bogus").status == 400
        assert http.get("/api/inbound?limit=0").status == 400
        assert http.get("/api/inbound", auth=False).status == 401


class TestHealthAndMetrics:
    def test_healthz_ok(self, http: HttpClient) -> None:
        """A running replyd with its database is healthy."""
        reply = http.get("/healthz", auth=False)
        assert reply.status == 200
        assert reply.json() == {"status": "ok", "database": "ok", "listener": "bound"}

    def test_metrics_count_outcomes_and_latency(
        self,
        http: HttpClient,
        blog: Blog,
        server: RunningServer,
        sink: tuple[SinkHandler, int],
    ) -> None:
        """Metrics count inbound outcomes by reason kind, comments, mail and latencies."""
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Fine post"))
        final_row(blog)
        send(
            server.port, "m@evil.example", [address], reply_message("m@evil.example", address, "x")
        )
        final_row(blog)
        wait_for(lambda: sink[0].to(AUTHOR), what="the notification")
        comment(http, "from the web")

        def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            reply = http.get("/metrics", auth=False)
            assert reply.status == 200
            return {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(reply.text)
                for sample in family.samples
            }

        values = wait_for(
            lambda: (
                (v := scrape())[("replyd_notifications_total", (("status", "sent"),))] >= 1 and v
            ),
            what="a sent notification in the metrics",
        )
        rejected = (("reason", "sender_mismatch"), ("status", "rejected"))
        assert values[("replyd_inbound_messages", rejected)] == 1
        assert values[("replyd_inbound_messages", (("reason", ""), ("status", "processed")))] == 1
        assert values[("replyd_comments_created_total", (("source", "email"),))] == 1
        assert values[("replyd_comments_created_total", (("source", "web"),))] == 1
        assert values[("replyd_processing_seconds_count", ())] == 2
        assert values[("replyd_delivery_seconds_count", ())] >= 1
        assert ("replyd_queue_depth", (("queue", "outbound"), ("status", "queued"))) in values
        assert "evil.example" not in http.get("/metrics", auth=False).text

    def test_smtp_refusals_by_code(self, http: HttpClient, server: RunningServer) -> None:
        """Refusals at RCPT never reach the database, yet /metrics counts them by code."""
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            client.mail(READER)
            client.rcpt("nobody@elsewhere.example")
            client.rcpt("reply+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@replies.example.org")
        text = http.get("/metrics", auth=False).text
        assert 'replyd_smtp_refusals_total{code="550 5.1.1"} 2.0' in text

    def test_reason_labels_carry_no_personal_data(self) -> None:
        """Labels are reason codes from a fixed set, never the reason's words."""
        assert reason_label("sender_mismatch", "sender mismatch: From <a@b.example> ...") == (
            "sender_mismatch"
        )
        assert reason_label("made-up code", "whatever") == "other"
        assert reason_label(None, "a reason from before reason codes") == "other"
        assert reason_label(None, None) == ""


@pytest.fixture
def standalone_http(tmp_path: Path) -> Iterator[tuple[HttpClient, Settings]]:
    """Only the HTTP server, on a database path that cannot be opened (a directory)."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    settings = make_settings(var_dir, REPLYD_DATABASE_URL=f"sqlite:///{tmp_path}")
    parts = Components.build(settings)
    server = HttpServer(parts, smtp_bound=lambda: True)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield HttpClient(f"http://127.0.0.1:{server.port}"), settings
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        parts.engine.dispose()


def test_healthz_503_when_database_unreachable(
    standalone_http: tuple[HttpClient, Settings],
) -> None:
    """When the database cannot be reached /healthz answers 503 and says which part failed."""
    client, _ = standalone_http
    reply = client.get("/healthz", auth=False)
    assert reply.status == 503
    assert reply.json()["database"] == "unreachable"
    assert reply.json()["status"] == "unavailable"
    api = client.get("/api/posts/hello", auth=False)
    assert api.status == 503
    assert "database" in api.json()["error"]
