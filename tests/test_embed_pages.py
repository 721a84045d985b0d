"""The blog side over HTTP (issue 19): CORS and framing only for REPLYD_EMBED_ORIGINS, the embed's
files, and the comment and follow forms that work without JavaScript."""

from __future__ import annotations

import re

import pytest

from service.identity.web_tokens import make_form_token
from service.outbound.confirmations import epoch
from service.store.models import utcnow
from tests.conftest import Blog, SinkHandler
from tests.http_fixtures import API_TOKEN, HttpClient, Reply, http
from tests.reader_helpers import (
    BLOG_ORIGIN,
    READER,
    confirm_path,
    follow_requests,
    pending,
    post_form,
    read_forms,
    reader_comment,
    wait_for_confirmation,
)

__all__ = ["http"]  # a fixture, imported so this module uses it

SECOND_BLOG = "http://127.0.0.1:4000"
STRANGER = "https://evil.example"
PUBLIC_READS = ("/api/posts/hello", "/api/posts/hello/comments")


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """Two blogs may embed the thread; the operator's token is set."""
    return {"REPLYD_EMBED_ORIGINS": f"{BLOG_ORIGIN}, {SECOND_BLOG}", "REPLYD_API_TOKEN": API_TOKEN}


def preflight(http: HttpClient, path: str, origin: str) -> Reply:
    """A browser's CORS preflight for a JSON POST with an Idempotency-Key."""
    return http.request(
        "OPTIONS",
        path,
        auth=False,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, idempotency-key",
        },
    )


class TestCors:
    def test_reads_are_shared_with_the_listed_blogs_only(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """The post and its comments carry Access-Control-Allow-Origin for a listed origin
        (that origin, not *), none for another; Vary: Origin either way."""
        blog.post()
        for path in PUBLIC_READS:
            for origin in (BLOG_ORIGIN, SECOND_BLOG):
                answer = http.get(path, auth=False, headers={"Origin": origin})
                assert answer.status == 200
                assert answer.headers["access-control-allow-origin"] == origin
                assert "Origin" in answer.headers["vary"]
                assert "access-control-allow-credentials" not in answer.headers
            stranger = http.get(path, auth=False, headers={"Origin": STRANGER})
            assert stranger.status == 200
            assert "access-control-allow-origin" not in stranger.headers
            assert "Origin" in stranger.headers["vary"]

    def test_preflights_are_answered_for_the_listed_blogs_only(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """A listed origin may POST JSON with an Idempotency-Key (never Authorization); any
        other origin's preflight is 403 with a sentence and no CORS header."""
        blog.post()
        for path in ("/api/posts/hello/comments", "/api/posts/hello/follow"):
            allowed = preflight(http, path, BLOG_ORIGIN)
            assert allowed.status == 204
            headers = allowed.headers
            assert headers["access-control-allow-origin"] == BLOG_ORIGIN
            assert "POST" in headers["access-control-allow-methods"]
            assert "idempotency-key" in headers["access-control-allow-headers"].lower()
            assert "authorization" not in headers["access-control-allow-headers"].lower()
            refused = preflight(http, path, STRANGER)
            assert refused.status == 403
            assert "access-control-allow-origin" not in refused.headers
            assert "REPLYD_EMBED_ORIGINS" in refused.json()["error"]

    def test_writes_from_other_sites_are_refused(self, http: HttpClient, blog: Blog) -> None:
        """A comment POSTed from a listed blog gets CORS headers; from another site's page
        it is 403 and nothing is kept (CORS alone would only hide the answer)."""
        blog.post()
        listed = reader_comment(http, "from the blog", headers={"Origin": BLOG_ORIGIN})
        assert listed.status == 202
        assert listed.headers["access-control-allow-origin"] == BLOG_ORIGIN
        assert "Retry-After" in listed.headers["access-control-expose-headers"]
        refused = reader_comment(http, "from elsewhere", headers={"Origin": STRANGER})
        assert refused.status == 403 and "REPLYD_EMBED_ORIGINS" in refused.json()["error"]
        assert "access-control-allow-origin" not in refused.headers
        assert [p.body for p in pending(blog)] == ["from the blog"]

    def test_operator_endpoints_never_answer_cors(self, http: HttpClient) -> None:
        """Subscriptions, the inbound log and post creation are not for browsers elsewhere."""
        for path in ("/api/subscriptions", "/api/inbound", "/api/posts"):
            answer = http.get(path, auth=False, headers={"Origin": BLOG_ORIGIN})
            assert "access-control-allow-origin" not in answer.headers


class TestFraming:
    def test_the_embed_page_is_framable_by_the_listed_blogs_only(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """/posts/{id}/embed: frame-ancestors names exactly the listed origins and no
        X-Frame-Options overrides it; the page shows the thread and its forms."""
        blog.post()
        page = http.get("/posts/hello/embed", auth=False)
        assert page.status == 200
        policy = page.headers["content-security-policy"]
        [ancestors] = [d.strip() for d in policy.split(";") if "frame-ancestors" in d]
        assert ancestors.split()[1:] == [BLOG_ORIGIN, SECOND_BLOG]
        assert "x-frame-options" not in page.headers
        forms = read_forms(page.text)
        assert {"c-email", "c-body", "f-email"} <= set(forms.fields)
        assert 'action="/posts/hello/embed/comments"' in page.text

    def test_other_pages_still_refuse_framing(self, http: HttpClient, blog: Blog) -> None:
        """The thread page, a confirmation page and errors keep DENY and frame-ancestors
        'none'."""
        blog.post()
        for path in ("/posts/hello", "/posts/nope", "/confirm/abc"):
            page = http.get(path, auth=False)
            assert page.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

    def test_the_confirmation_page_is_not_framable_but_may_send_readers_back(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A confirmation page keeps DENY and frame-ancestors 'none' (its button publishes:
        no clickjacking), and lets its form's redirect go to the listed blogs only."""
        blog.post()
        assert reader_comment(http, "framed?").status == 202
        page = http.get(confirm_path(wait_for_confirmation(sink[0])), auth=False)
        assert page.status == 200
        assert page.headers["x-frame-options"] == "DENY"
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        [action] = [d.strip() for d in policy.split(";") if "form-action" in d]
        assert action.split()[1:] == ["'self'", BLOG_ORIGIN, SECOND_BLOG]


class TestNoOrigins:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """REPLYD_EMBED_ORIGINS unset."""
        return {}

    def test_without_origins_nobody_frames_or_reads_cross_origin(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """The embed page is framable by nobody, the API answers no CORS."""
        blog.post()
        page = http.get("/posts/hello/embed", auth=False)
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        answer = http.get("/api/posts/hello", auth=False, headers={"Origin": BLOG_ORIGIN})
        assert "access-control-allow-origin" not in answer.headers


class TestEmbedFiles:
    def test_the_script_and_style_are_served_small_and_self_contained(
        self, http: HttpClient
    ) -> None:
        """embed.js and embed.css: right types, cacheable, loadable from other sites, small,
        and they ask nothing of any server but the one they came from."""
        script = http.get("/embed.js", auth=False)
        style = http.get("/embed.css", auth=False)
        assert script.status == style.status == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert style.headers["content-type"].startswith("text/css")
        for answer in (script, style):
            assert answer.headers["cross-origin-resource-policy"] == "cross-origin"
            assert "max-age" in answer.headers["cache-control"]
            assert len(answer.body) < 20_000
            # No address of any other server, no @import or url() to fetch more.
            assert re.findall(r"[a-z]+://[\w.-]+", answer.text) == []
            assert "@import" not in answer.text and "url(" not in answer.text
        assert "replyd-thread" in script.text and "data-post" in script.text
        assert "--replyd-accent" in style.text


class TestFormsWithoutJavaScript:
    def test_the_page_has_labelled_forms_with_a_form_token(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """Every visible field has a label; the forms carry a form token and the comment
        form a key against double submission."""
        blog.post()
        forms = read_forms(http.get("/posts/hello", auth=False).text)
        assert set(forms.fields) >= {"c-name", "c-email", "c-body", "c-follow", "f-email"}
        visible = {i for i, attrs in forms.fields.items() if attrs.get("name") != "website"}
        assert visible <= forms.labels
        assert forms.hidden["form_token"] and forms.hidden["request_key"]
        assert forms.fields["c-email"]["type"] == "email"
        assert forms.fields["c-website"]["tabindex"] == "-1"

    def test_a_form_comment_waits_for_its_confirmation(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Sent with the page's form token: a page says to check the inbox, the comment
        is kept, the mail goes out; the same form sent twice (double click) keeps one."""
        blog.post()
        forms = read_forms(http.get("/posts/hello", auth=False).text)
        fields = {
            "form_token": forms.hidden["form_token"],
            "request_key": forms.hidden["request_key"],
            "author_name": "Nora",
            "author_email": READER,
            "body": "Without script",
            "follow": "daily",
            "website": "",
        }
        sent = post_form(http, "/posts/hello/comments", fields)
        assert sent.status == 200 and "Check your inbox" in sent.text
        assert post_form(http, "/posts/hello/comments", fields).status == 200
        wait_for_confirmation(sink[0])
        [kept] = pending(blog)
        assert (kept.body, kept.follow, kept.author_name) == ("Without script", "daily", "Nora")

    def test_a_form_without_a_valid_token_is_shown_again(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """Missing, forged, or made for another client: 400, the form comes back with the
        text typed, a fresh token and an alert saying to send again; nothing is kept."""
        post_id = blog.post()
        now = epoch(utcnow())
        elsewhere = make_form_token(post_id, "198.51.100.1", now, blog.parts.keyring)
        stale = make_form_token(post_id, "127.0.0.1", now - 2 * 86400, blog.parts.keyring)
        for token in ("", "forged", elsewhere, stale):
            fields = {"form_token": token, "author_email": READER, "body": "Keep me"}
            answer = post_form(http, "/posts/hello/comments", fields)
            assert answer.status == 400
            forms = read_forms(answer.text)
            assert any("send it again" in alert for alert in forms.alerts)
            assert "Keep me" in answer.text
            assert forms.hidden["form_token"] not in ("", token)
        assert pending(blog) == []

    def test_a_field_error_is_tied_to_its_field(self, http: HttpClient, blog: Blog) -> None:
        """An address that is not one: 400, an alert, the field marked aria-invalid and
        described by its error, the other fields kept."""
        blog.post()
        token = read_forms(http.get("/posts/hello", auth=False).text).hidden["form_token"]
        fields = {"form_token": token, "author_email": "nope", "body": "Kept", "author_name": "N"}
        answer = post_form(http, "/posts/hello/comments", fields)
        assert answer.status == 400
        forms = read_forms(answer.text)
        email = forms.fields["c-email"]
        assert email["aria-invalid"] == "true"
        assert "c-email-error" in (email["aria-describedby"] or "").split()
        assert "c-email-error" in forms.ids
        assert any(alert.startswith("Email:") for alert in forms.alerts)
        assert "<title>Error: Comments on" in answer.text  # said first by screen readers
        assert forms.fields["c-name"]["value"] == "N" and "Kept" in answer.text
        assert pending(blog) == []

    def test_a_form_from_another_site_is_refused(self, http: HttpClient, blog: Blog) -> None:
        """A form posted from another site's page (Origin) is 403, even with a good token."""
        blog.post()
        token = read_forms(http.get("/posts/hello", auth=False).text).hidden["form_token"]
        fields = {"form_token": token, "author_email": READER, "body": "forged"}
        answer = post_form(http, "/posts/hello/comments", fields, {"Origin": STRANGER})
        assert answer.status == 403
        assert pending(blog) == []

    def test_the_follow_form(
        self, http: HttpClient, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """The follow form keeps a request and mails its confirmation."""
        blog.post()
        token = read_forms(http.get("/posts/hello", auth=False).text).hidden["form_token"]
        answer = post_form(
            http, "/posts/hello/follow", {"form_token": token, "email": READER, "digest": "weekly"}
        )
        assert answer.status == 200 and "Check your inbox" in answer.text
        wait_for_confirmation(sink[0])
        assert [(r.email, r.digest) for r in follow_requests(blog)] == [(READER, "weekly")]

    def test_reply_to_a_comment_without_javascript(self, http: HttpClient, blog: Blog) -> None:
        """?reply_to=ID makes the form answer that comment."""
        blog.post()
        parent = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": "ann@example.org", "author_name": "Ann", "body": "Hi"},
        )
        assert parent.status == 201, parent.text
        page = http.get(f"/posts/hello?reply_to={parent.json()['id']}", auth=False)
        forms = read_forms(page.text)
        assert forms.hidden["parent_id"] == str(parent.json()["id"])
        assert "Reply to Ann" in page.text

    def test_the_embedded_form_answers_inside_the_frame(self, http: HttpClient, blog: Blog) -> None:
        """The iframe's form result may be framed by the blog too (else it would go blank)."""
        blog.post()
        token = read_forms(http.get("/posts/hello/embed", auth=False).text).hidden["form_token"]
        answer = post_form(
            http,
            "/posts/hello/embed/comments",
            {"form_token": token, "author_email": READER, "body": "In the frame"},
        )
        assert answer.status == 200
        assert BLOG_ORIGIN in answer.headers["content-security-policy"]
        assert "x-frame-options" not in answer.headers
        assert 'href="/posts/hello/embed"' in answer.text
