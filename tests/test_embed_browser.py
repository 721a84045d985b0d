"""The embed in a real browser (issue 19): a blog page on another origin embeds replyd with two
lines; headless Chromium shows the thread, a reader comments, the confirmation mail's link
publishes it, followers are mailed, and the iframe page is framable by the listed blog only."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.cdp import CHROMIUM, Browser, Tab
from tests.conftest import Blog, RunningServer, SinkHandler, free_port, wait_for
from tests.http_fixtures import API_TOKEN, HttpClient, http
from tests.reader_helpers import (
    AUTHOR,
    READER,
    comments,
    confirm_path,
    confirmation_mails,
    pending,
    text_of,
    wait_for_confirmation,
)

__all__ = ["http"]  # a fixture, imported so this module uses it

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install -y chromium); browser test skipped",
)

OTHER = "otto@example.org"
BLOG_PORT = free_port()
STRANGER_PORT = free_port()
BLOG = f"http://127.0.0.1:{BLOG_PORT}"
STRANGER = f"http://127.0.0.1:{STRANGER_PORT}"
SCREENSHOT = Path("/tmp/replyd-embed-390.png")  # kept after the run, to look at
IFRAME_SCREENSHOT = Path("/tmp/replyd-iframe-390.png")


class BlogPages(BaseHTTPRequestHandler):
    """A static blog on its own origin: a post with the two lines, and one with the iframe."""

    replyd = ""  # replyd's HTTP base, set once it runs

    def do_GET(self) -> None:
        """Serve /hello.html (script embed) or /framed.html (iframe)."""
        if self.path.split("?")[0] == "/hello.html":
            embed = (
                '<div id="replyd-thread" data-post="hello"></div>\n'
                f'<script src="{self.replyd}/embed.js" async></script>'
            )
        elif self.path == "/framed.html":
            embed = (
                f'<iframe id="comments" src="{self.replyd}/posts/hello/embed" '
                'title="Comments" style="width:100%;height:600px;border:0"></iframe>'
            )
        else:
            self.send_error(404)
            return
        page = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Hello, a blog post</title>"
            "<style>body{font-family:Georgia,serif;max-width:40rem;margin:0 auto;padding:1rem}"
            "</style></head><body><article><h1>Hello</h1><p>A post on a blog that is not "
            f"replyd.</p></article>\n{embed}\n</body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """The blog's origin is listed; the stranger's is not."""
    return {"REPLYD_API_TOKEN": API_TOKEN, "REPLYD_EMBED_ORIGINS": BLOG}


@pytest.fixture
def blogs(server: RunningServer) -> Iterator[str]:
    """The blog, and a stranger's site, each an HTTP server of its own; replyd's base."""
    replyd = f"http://127.0.0.1:{server.server.http_port}"
    BlogPages.replyd = replyd
    servers = [
        ThreadingHTTPServer(("127.0.0.1", port), BlogPages) for port in (BLOG_PORT, STRANGER_PORT)
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    yield replyd
    for running in servers:
        running.shutdown()
        running.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile."""
    running = Browser(tmp_path / "profile")
    yield running
    running.close()


def comment_bodies(tab: Tab) -> list[str]:
    """The comment texts the embed shows, in order."""
    value = tab.evaluate(
        "Array.from(document.querySelectorAll('.replyd-comment .replyd-body'))"
        ".map(e => e.textContent)"
    )
    return list(value or [])


def fill_comment(tab: Tab, body: str) -> None:
    """Type a comment into the embed's form (name and email are remembered after the
    first time) and send it with a click."""
    for name, text in (("author_name", "Rita Reader"), ("author_email", READER)):
        selector = f".replyd-comment-form [name={name}]"
        if tab.evaluate(f"document.querySelector('{selector}').value") != text:
            tab.evaluate(f"document.querySelector('{selector}').value = ''")
            tab.type_into(selector, text)
    tab.type_into(".replyd-comment-form [name=body]", body)
    tab.click(".replyd-comment-form .replyd-submit")


def test_a_reader_comments_from_the_blog_and_confirms_by_mail(
    http: HttpClient,
    blog: Blog,
    blogs: str,
    browser: Browser,
    sink: tuple[SinkHandler, int],
    tmp_path: Path,
) -> None:
    """From a page on another origin, the embed shows the thread; a comment sent there waits;
    the link in the confirmation mail (page, button) publishes it and brings the reader back
    to the blog, where it shows, with their author token kept; the followers are mailed; the
    next comment from this browser appears at once. No request goes to a third server, and
    at 390 px nothing sticks out sideways."""
    created = http.post(
        "/api/posts",
        json_body={
            "id": "hello",
            "title": "Hello",
            "url": f"{BLOG}/hello.html",
            "author_email": AUTHOR,
            "author_name": "Ann Author",
        },
    )
    assert created.status == 201, created.text
    first = http.post(
        "/api/posts/hello/comments",
        json_body={"author_email": OTHER, "author_name": "Otto", "body": "First!"},
    )
    assert first.status == 201, first.text
    tab = browser.tab(width=390)
    tab.navigate(f"{BLOG}/hello.html")
    tab.wait_for("document.querySelectorAll('.replyd-comment').length === 1", "the thread")
    assert comment_bodies(tab) == ["First!"]
    assert tab.evaluate("document.querySelector('.replyd-count').textContent") == "1 comment"

    # Sent empty: the error is announced (role=alert) and tied to the email field.
    tab.click(".replyd-comment-form .replyd-submit")
    tab.wait_for(
        "document.querySelector('.replyd-comment-form [name=author_email]')"
        ".getAttribute('aria-invalid') === 'true'",
        "the email field marked invalid",
    )
    error = tab.evaluate(
        "(() => { const f = document.querySelector('.replyd-comment-form [name=author_email]');"
        " const ids = f.getAttribute('aria-describedby').split(' ');"
        " return ids.map(i => document.getElementById(i).textContent).join(' | '); })()"
    )
    assert "give your email address" in error
    assert "check the form" in tab.evaluate("document.querySelector('.replyd-error').textContent")
    assert tab.evaluate("document.querySelector('.replyd-error').getAttribute('role')") == "alert"
    assert pending(blog) == []

    fill_comment(tab, "Sent from the blog's own page.")
    notice = tab.wait_for(
        "document.querySelector('.replyd-notice').textContent", "the notice after sending"
    )
    assert "We sent a link to r…@example.org" in notice
    assert comment_bodies(tab) == ["First!"]
    assert [p.body for p in pending(blog)] == ["Sent from the blog's own page."]
    assert len(comments(blog)) == 1

    # The reader opens the link in the confirmation mail, and presses its button.
    mail = wait_for_confirmation(sink[0])
    tab.navigate(blogs + confirm_path(mail))
    tab.wait_for("!!document.querySelector('form button')", "the confirmation page")
    assert "Sent from the blog's own page." in tab.evaluate("document.body.innerText")
    tab.click("form button")
    tab.wait_for(
        "location.href.startsWith(" + json.dumps(f"{BLOG}/hello.html") + ")"
        " && document.querySelectorAll('.replyd-comment').length === 2",
        "the blog again, with the comment",
    )
    assert comment_bodies(tab) == ["First!", "Sent from the blog's own page."]
    assert tab.evaluate("location.hash") == ""  # the token left the address bar
    stored = json.loads(tab.evaluate(f"localStorage.getItem({json.dumps('replyd:' + blogs)})"))
    assert stored["email"] == READER and stored["token"]
    assert "published" in tab.evaluate("document.querySelector('.replyd-notice').textContent")
    for follower in (AUTHOR, OTHER):
        wait_for(
            lambda f=follower: [  # type: ignore[misc]
                m for m in sink[0].to(f) if "Sent from the blog's own page." in text_of(m)
            ],
            what=f"{follower}'s notification",
        )

    # The same browser answers Otto: published at once, no second confirmation mail.
    tab.click(".replyd-comment .replyd-reply")
    assert "Replying to Otto" in tab.evaluate(
        "document.querySelector('.replyd-replying').textContent"
    )
    fill_comment(tab, "And once more, no mail needed.")
    tab.wait_for("document.querySelectorAll('.replyd-comment').length === 3", "the new comment")
    answer = tab.evaluate("document.getElementById(document.activeElement.id).innerText")
    assert "replied to Otto" in answer and "no mail needed" in answer
    assert [c.parent_id for c in comments(blog)][-1] == first.json()["id"]
    wait_for(
        lambda: [m for m in sink[0].to(AUTHOR) if "no mail needed" in text_of(m)],
        what="the author's notification of the second comment",
    )
    assert len(confirmation_mails(sink[0])) == 1

    origins = {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in tab.requested_urls()}
    assert origins <= {BLOG, blogs}, origins
    assert tab.evaluate("document.documentElement.scrollWidth") <= 390
    tab.evaluate("document.querySelector('.replyd-comment-form').scrollIntoView()")
    tab.screenshot(tmp_path / "embed-390.png")
    shutil.copy(tmp_path / "embed-390.png", SCREENSHOT)


def test_the_iframe_page_shows_on_the_listed_blog_only(
    http: HttpClient, blog: Blog, blogs: str, browser: Browser
) -> None:
    """The listed blog's iframe holds the thread; the same iframe on another origin is
    refused by the browser (frame-ancestors)."""
    blog.post()
    tab = browser.tab(width=390)
    tab.navigate(f"{BLOG}/framed.html")
    frame = _wait_frame(tab)
    assert frame["url"] == f"{blogs}/posts/hello/embed"
    tab.screenshot(IFRAME_SCREENSHOT)
    stranger = browser.tab(width=390)
    stranger.navigate(f"{STRANGER}/framed.html")
    refused = _wait_frame(stranger)
    # Chromium puts its error page where a frame it refused would be.
    assert str(refused["url"]).startswith("chrome-error://"), refused


def _wait_frame(tab: Tab) -> dict[str, object]:
    """The page's iframe once Chromium settled what it holds (a page, or its error page)."""

    def settled() -> dict[str, object] | None:
        frames = tab.frames()
        if frames and frames[0].get("url") not in ("", "about:blank"):
            return frames[0]
        return None

    return wait_for(settled, what="the iframe's document")
