"""One set of rules for posts, whichever door they come in by: the real `replyd post add` and the
real HTTP API refuse the same ids, titles and URLs with the same sentence (issue 16)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from service.store.models import Post
from service.store.posts import PostInvalid, check_post, check_post_id, check_post_url
from tests.conftest import Blog
from tests.http_fixtures import HttpClient, http, settings_overrides
from tests.test_cli import env, run

__all__ = ["env", "http", "settings_overrides"]  # fixtures, imported so this module uses them

GOOD = {
    "id": "hello-world",
    "title": "Hello, world",
    "url": "https://blog.example.org/hello-world",
    "author_email": "author@example.org",
}
# (field, bad value, a piece of the sentence that explains it)
BAD = [
    ("id", "a/b", "may hold only letters, digits"),
    ("id", "", "the post id is empty"),
    ("id", "../etc", "must start with a letter or digit"),
    ("id", "x" * 201, "longer than 200"),
    ("title", "", "the post title is empty"),
    ("title", "two\nlines", "control characters"),
    ("title", "evil\u202egnp.exe", "direction overrides"),
    ("url", "javascript:alert(1)", "absolute http(s) address"),
    ("url", "data:text/html,<script>x</script>", "absolute http(s) address"),
    ("url", "https://blog.example.org@evil.example/", "must not hold a user name"),
    ("url", "/relative/path", "absolute http(s) address"),
]


def cli_add(env: dict[str, str], post: dict[str, str]) -> tuple[int, str]:
    """`replyd post add` with the post's fields; its exit status and stderr."""
    result = run(
        env,
        "post",
        "add",
        "--id",
        post["id"],
        "--title",
        post["title"],
        "--url",
        post["url"],
        "--author-email",
        post["author_email"],
        check=False,
    )
    return result.returncode, result.stderr


class TestBothDoors:
    @pytest.mark.parametrize(("field", "value", "reason"), BAD)
    def test_cli_and_api_refuse_alike(
        self, env: dict[str, str], http: HttpClient, field: str, value: str, reason: str
    ) -> None:
        """The CLI exits 2 with the sentence, the API answers 422 with the same sentence, and
        neither stores the post."""
        post = {**GOOD, field: value}
        status, stderr = cli_add(env, post)
        assert status == 2, stderr
        assert reason in stderr and "Traceback" not in stderr
        reply = http.post("/api/posts", json_body=post)
        assert reply.status == 422, reply.text
        sentence = reply.json()["error"]
        assert reason in sentence
        assert sentence in stderr  # one rule, one sentence, at both doors
        assert json.loads(run(env, "post", "list", "--json").stdout) == []

    def test_good_post_is_taken_at_both_doors(self, env: dict[str, str], http: HttpClient) -> None:
        """A post that keeps the rules is added by the CLI and updated through the API."""
        assert cli_add(env, GOOD) == (0, "")
        reply = http.post("/api/posts", json_body={**GOOD, "title": "Renamed  "})
        assert reply.status == 200, reply.text
        assert reply.json()["title"] == "Renamed"
        [listed] = json.loads(run(env, "post", "list", "--json").stdout)
        assert (listed["id"], listed["title"], listed["url"]) == (
            GOOD["id"],
            "Renamed",
            GOOD["url"],
        )

    def test_wrong_types_are_still_400(self, http: HttpClient) -> None:
        """A missing field or a number for a string is malformed JSON input, not a broken rule."""
        assert http.post("/api/posts", json_body={**GOOD, "title": 42}).status == 400
        missing = {k: v for k, v in GOOD.items() if k != "url"}
        assert http.post("/api/posts", json_body=missing).status == 400


class TestOlderRows:
    def test_stored_javascript_url_is_never_a_link(self, http: HttpClient, blog: Blog) -> None:
        """A post stored before the checks with a javascript: URL: the page shows its title
        without a link, the feed leaves out its related link."""
        post_id = blog.post()
        with blog.parts.session_factory.begin() as session:
            post = session.get(Post, post_id)
            assert post is not None
            post.url = "javascript:alert(document.cookie)"
        page = http.get("/posts/hello", auth=False)
        assert page.status == 200 and "Post hello" in page.text
        assert "javascript:" not in page.text
        feed = http.get("/posts/hello/comments.atom", auth=False)
        assert feed.status == 200 and "javascript:" not in feed.text
        links = ET.fromstring(feed.body).findall("{http://www.w3.org/2005/Atom}link")
        assert [link.get("rel") for link in links] == ["self", "alternate"]


class TestRules:
    @pytest.mark.parametrize("slug", ["hello", "2024-01-02.notes_v2~final", "café-olé", "Ä1"])
    def test_ids_blogs_use_are_taken(self, slug: str) -> None:
        """Slugs with letters (any script), digits and -_.~ pass unchanged."""
        assert check_post_id(f"  {slug} ") == slug

    @pytest.mark.parametrize("slug", [" ", ".hidden", "..", "a b", "a?b", "a%2fb", "a\x00b"])
    def test_ids_that_would_break_paths_are_refused(self, slug: str) -> None:
        """Spaces, dots first, URL delimiters, escapes and NUL are refused."""
        with pytest.raises(PostInvalid) as refused:
            check_post_id(slug)
        assert refused.value.field == "id"

    @pytest.mark.parametrize(
        "url",
        [
            "JAVASCRIPT:alert(1)",
            "vbscript:x",
            "//blog.example.org/p",
            "https://",
            "https://exa mple.org/",
            "https://blog.example.org:99999/",
            "https://u:p@blog.example.org/",
            "https://blog.example.org/\x1b[31m",
        ],
    )
    def test_urls_that_are_not_plain_web_addresses_are_refused(self, url: str) -> None:
        """Other schemes, relative or hostless URLs, bad ports, credentials and escapes."""
        with pytest.raises(PostInvalid) as refused:
            check_post_url(url)
        assert refused.value.field == "url"
        assert "\x1b" not in str(refused.value)  # quoted escaped, safe for a terminal

    def test_good_post_comes_back_trimmed(self) -> None:
        """check_post returns the fields without surrounding spaces."""
        checked = check_post(" p1 ", " Title ", " HTTP://Blog.Example.org/p1 ")
        assert (checked.slug, checked.title, checked.url) == (
            "p1",
            "Title",
            "HTTP://Blog.Example.org/p1",
        )
