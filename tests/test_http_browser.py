"""The comment page in a real browser: headless Chromium renders the thread, scripts stay text."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import Blog
from tests.http_fixtures import HttpClient, http, settings_overrides

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install -y chromium); browser test skipped",
)


class CommentCollector(HTMLParser):
    """Collects, from a DOM dump, each comment article's id and the text of its body."""

    def __init__(self) -> None:
        super().__init__()
        self.articles: list[str] = []
        self.bodies: list[str] = []
        self.tags: list[str] = []
        self._in_body = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note articles and enter comment bodies."""
        values = dict(attrs)
        self.tags.append(tag)
        if tag == "article" and values.get("id"):
            self.articles.append(values["id"] or "")
        if self._in_body:
            self._in_body += 1
        elif tag == "div" and values.get("class") == "body":
            self._in_body = 1
            self.bodies.append("")

    def handle_endtag(self, tag: str) -> None:
        """Leave nested elements of a comment body."""
        if self._in_body:
            self._in_body -= 1

    def handle_data(self, data: str) -> None:
        """Collect a comment body's text."""
        if self._in_body:
            self.bodies[-1] += data


def dump_dom(url: str, profile: Path) -> str:
    """The page's DOM after Chromium loaded it (and ran whatever scripts it would run)."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_thread_renders_and_script_stays_text(http: HttpClient, blog: Blog, tmp_path: Path) -> None:
    """Chromium shows both comments of the thread; a <script> comment is text, not code."""
    blog.post()
    first = http.post(
        "/api/posts/hello/comments",
        json_body={"author_email": "mallory@example.org", "author_name": "M", "body": HOSTILE},
    )
    assert first.status == 201, first.text
    answer = http.post(
        "/api/posts/hello/comments",
        json_body={
            "author_email": "author@example.org",
            "body": "Nice try.",
            "parent_id": first.json()["id"],
        },
    )
    assert answer.status == 201, answer.text
    dom = dump_dom(f"{http.base}/posts/hello", tmp_path / "profile")
    page = CommentCollector()
    page.feed(dom)
    assert page.articles == [f"comment-{first.json()['id']}", f"comment-{answer.json()['id']}"]
    assert page.bodies == [HOSTILE, "Nice try."]
    assert "script" not in page.tags and "img" not in page.tags
    assert "<title>Comments on Post hello" in dom  # the script did not retitle the page
