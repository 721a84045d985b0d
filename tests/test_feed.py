"""The blog's feed over real HTTP: new entries become posts within one poll, by the CLI and
by the daemon; a 304 changes nothing; titles update, removed entries stay, bad feeds refused."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from service.feed.entries import entry_post_id
from service.feed.poll import PollResult, poll_feed
from service.runtime.components import Components
from service.runtime.settings import ConfigError, Settings
from service.store.models import FeedState, Post
from tests.conftest import RunningServer, SinkHandler, make_settings, wait_for
from tests.feed_helpers import BLOG, Entry, FeedServer, atom, rss, serve_feed
from tests.test_cli import REPLYD, cli_env
from tests.test_cli_imports import PROBE, heavy_modules

OWNER = "ann@example.org"
# Ann's two newest posts, as WordPress lists them: a ?p= guid and a permalink guid.
GRUESSE = Entry(
    f"{BLOG}/?p=123", "Grüße aus dem Garten &#8211; Teil&#160;2", f"{BLOG}/2026/12/gruesse/"
)
# Its title as plain text: references resolved, the no-break space a space.
GRUESSE_TITLE = "Grüße aus dem Garten \u2013 Teil 2"
TOMATEN = Entry(f"{BLOG}/2026/12/tomaten/", "Tomaten &amp; Bohnen", f"{BLOG}/2026/12/tomaten/")
BOLD = Entry(
    "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a",
    "A &lt;b&gt;bold&lt;/b&gt; start &amp;amp; more",
    f"{BLOG}/posts/bold/",
    "Bob Blogger",
    "bob@example.org",
)
# Blogger's way: every entry's author has the address noreply@blogger.com, which nobody reads.
QUIET = Entry(
    "tag:blog.example.org,2026:quiet", "Quiet days", f"{BLOG}/posts/quiet/", "Bob",
    "noreply@blogger.com",
)  # fmt: skip


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    """The blog's RSS feed with Ann's two newest posts, served on 127.0.0.1."""
    yield from serve_feed(FeedServer(body=rss([GRUESSE, TOMATEN])))


def feed_env(settings: Settings, feed: FeedServer, **extra: str) -> dict[str, str]:
    """The environment of a replyd command that polls this feed."""
    return {
        **cli_env(settings),
        "REPLYD_FEED_URL": feed.url,
        "REPLYD_FEED_AUTHOR_EMAIL": OWNER,
        **extra,
    }


def feed_poll(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`replyd feed poll` as a separate process."""
    return subprocess.run(
        [*REPLYD, "feed", "poll"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def posts(parts: Components) -> dict[str, tuple[str, str, str]]:
    """Every post by id: title, address and author's address."""
    with parts.session_factory() as session:
        return {
            post.slug: (post.title, post.url, post.author.email)
            for post in session.scalars(select(Post))
        }


class TestRss:
    def test_new_entries_become_posts_in_one_cli_poll(
        self, settings: Settings, parts: Components, feed: FeedServer
    ) -> None:
        """One `replyd feed poll` adds each entry as a post, prints them and a summary; the
        title is plain text (references resolved); the author is REPLYD_FEED_AUTHOR_EMAIL
        (dc:creator gives no address); the command loads no server, HTTP stack or talon."""
        result = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(["feed", "poll"])],
            env={**os.environ, **feed_env(settings, feed)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.splitlines()[-1])
        assert report["status"] == 0, result.stderr
        assert heavy_modules(report["modules"]) == []
        gruesse = "entry-" + hashlib.sha256(GRUESSE.guid.encode()).hexdigest()[:16]
        assert posts(parts) == {
            gruesse: (GRUESSE_TITLE, f"{BLOG}/2026/12/gruesse/", OWNER),
            "2026-12-tomaten": ("Tomaten & Bohnen", f"{BLOG}/2026/12/tomaten/", OWNER),
        }
        lines = result.stdout.splitlines()[:-2]
        assert lines == [
            f"added post {gruesse!r}: {GRUESSE_TITLE} <{BLOG}/2026/12/gruesse/>",
            f"added post '2026-12-tomaten': Tomaten & Bohnen <{BLOG}/2026/12/tomaten/>",
            f"2 added, 0 updated, 0 skipped from {feed.url}",
        ]

    def test_the_next_poll_is_conditional_and_a_304_changes_nothing(
        self, settings: Settings, parts: Components, feed: FeedServer
    ) -> None:
        """The second poll sends the ETag and Last-Modified of the first answer; the server
        answers 304 (its body changed but its validators did not), and nothing is saved."""
        env = feed_env(settings, feed)
        assert feed_poll(env).returncode == 0
        before = posts(parts)
        feed.body = rss([Entry(TOMATEN.guid, "Renamed", TOMATEN.link)])  # same "v1" ETag
        second = feed_poll(env)
        assert second.returncode == 0, second.stderr
        assert [(r.if_none_match, r.if_modified_since, r.status) for r in feed.requests] == [
            (None, None, 200),
            ('"v1"', "Thu, 03 Dec 2026 09:15:00 GMT", 304),
        ]
        assert "has not changed since the last poll (304)" in second.stdout
        assert posts(parts) == before

    def test_changed_title_updates_and_removed_entry_stays(
        self, settings: Settings, parts: Components, feed: FeedServer
    ) -> None:
        """A new version of the feed: a renamed entry updates its post's title (same id), a
        new one is added, and a post whose entry left the feed is left as it was."""
        env = feed_env(settings, feed)
        assert feed_poll(env).returncode == 0
        gruesse = entry_post_id(GRUESSE.guid)
        renamed = Entry(TOMATEN.guid, "Tomaten, Bohnen &amp; Kürbis", TOMATEN.link)
        newest = Entry(f"{BLOG}/?p=130", "Winterruhe", f"{BLOG}/2026/12/winterruhe/")
        feed.publish(rss([newest, renamed]), "v2")
        result = feed_poll(env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"added post {entry_post_id(newest.guid)!r}: Winterruhe <{newest.link}>",
            "updated post '2026-12-tomaten': title 'Tomaten & Bohnen' -> "
            "'Tomaten, Bohnen & Kürbis'",
            f"1 added, 1 updated, 0 skipped from {feed.url}",
        ]
        assert posts(parts) == {
            gruesse: (GRUESSE_TITLE, GRUESSE.link, OWNER),
            "2026-12-tomaten": ("Tomaten, Bohnen & Kürbis", TOMATEN.link, OWNER),
            entry_post_id(newest.guid): ("Winterruhe", newest.link, OWNER),
        }

    def test_a_post_added_by_hand_with_the_entry_link_is_that_entry(
        self, settings: Settings, parts: Components, feed: FeedServer
    ) -> None:
        """A post the blog added by hand (`replyd post add`) under the entry's link gets the
        feed's title and keeps its id, author and comments: no second post for one page."""
        env = feed_env(settings, feed)
        added = subprocess.run(
            [*REPLYD, "post", "add", "--id", "gruesse", "--title", "Grüße",
             "--url", GRUESSE.link, "--author-email", "editor@example.org"],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        result = feed_poll(env)
        assert result.returncode == 0, result.stderr
        assert posts(parts) == {
            "gruesse": (GRUESSE_TITLE, GRUESSE.link, "editor@example.org"),
            "2026-12-tomaten": ("Tomaten & Bohnen", TOMATEN.link, OWNER),
        }

    def test_entries_without_an_author_address_wait_for_one(
        self, settings: Settings, parts: Components, feed: FeedServer
    ) -> None:
        """Without REPLYD_FEED_AUTHOR_EMAIL an entry naming no address is skipped with the
        reason and what to set; nothing is added, and the next poll (no validators sent, so
        no 304) adds it once the setting is there, though the feed did not change."""
        env = feed_env(settings, feed, REPLYD_FEED_AUTHOR_EMAIL="")
        result = feed_poll(env)
        assert result.returncode == 0, result.stderr
        assert (
            f"skipped entry {TOMATEN.guid!r}: the entry names no author address and "
            "REPLYD_FEED_AUTHOR_EMAIL is unset; set it to the address that should be told of "
            "comments on the feed's posts" in result.stdout.splitlines()
        )
        assert result.stdout.splitlines()[-1] == f"0 added, 0 updated, 2 skipped from {feed.url}"
        assert posts(parts) == {}
        again = feed_poll(feed_env(settings, feed))  # the feed unchanged, the setting there
        assert again.stdout.splitlines()[-1] == f"2 added, 0 updated, 0 skipped from {feed.url}"
        assert [(r.if_none_match, r.status) for r in feed.requests] == [(None, 200), (None, 200)]


class TestAtom:
    @pytest.fixture
    def feed(self) -> Iterator[FeedServer]:
        """Bob's Atom feed: one entry with an address and an HTML title, one with noreply@."""
        yield from serve_feed(
            FeedServer(body=atom([BOLD, QUIET]), content_type="application/atom+xml")
        )

    def test_entries_become_posts_of_their_authors(
        self, settings: Settings, parts: Components, feed: FeedServer
    ) -> None:
        """The entry's author address owns its post; an entry whose address reads no mail
        (noreply@) goes to REPLYD_FEED_AUTHOR_EMAIL; urn and tag ids get a hashed id; an
        HTML title becomes its plain text."""
        result = feed_poll(feed_env(settings, feed))
        assert result.returncode == 0, result.stderr
        assert posts(parts) == {
            entry_post_id(BOLD.guid): ("A bold start & more", BOLD.link, "bob@example.org"),
            entry_post_id(QUIET.guid): ("Quiet days", QUIET.link, OWNER),
        }
        assert entry_post_id(BOLD.guid) == "entry-3841e5cf232f5111"

    def test_ids_stay_the_same_across_polls(
        self, settings: Settings, parts: Components, feed: FeedServer
    ) -> None:
        """Polled again after a change (another ETag), in another process, the same entries
        are the same posts: renamed, not added twice."""
        env = feed_env(settings, feed)
        assert feed_poll(env).returncode == 0
        renamed = Entry(BOLD.guid, "A calmer start", BOLD.link, BOLD.creator, BOLD.email)
        feed.publish(atom([renamed, QUIET]), "v2")
        result = feed_poll(env)
        assert result.stdout.splitlines()[-1] == f"0 added, 1 updated, 0 skipped from {feed.url}"
        assert {slug: title for slug, (title, _, _) in posts(parts).items()} == {
            entry_post_id(BOLD.guid): "A calmer start",
            entry_post_id(QUIET.guid): "Quiet days",
        }


class TestRefused:
    def test_a_malformed_feed_changes_nothing(
        self, settings: Settings, parts: Components, feed: FeedServer
    ) -> None:
        """A feed cut off halfway is refused with a sentence, exit 2: no post, and no
        validators kept (the next poll fetches it whole again)."""
        feed.body = feed.body[: len(feed.body) * 2 // 3]
        result = feed_poll(feed_env(settings, feed))
        assert result.returncode == 2
        assert f"replyd: the feed {feed.url} is not well-formed" in result.stderr
        assert "nothing was taken from it" in result.stderr
        assert posts(parts) == {}
        with parts.session_factory() as session:
            assert session.scalars(select(FeedState)).all() == []

    @pytest.mark.parametrize("send_length", [True, False], ids=["declared", "streamed"])
    def test_a_feed_over_5_mib_is_refused(
        self, settings: Settings, parts: Components, feed: FeedServer, send_length: bool
    ) -> None:
        """A body over 5 MiB is refused, whether its length is declared or not."""
        padding = "<!-- " + "x" * (5 * 1024 * 1024) + " -->"
        feed.body = feed.body.replace(b"<channel>", padding.encode() + b"<channel>")
        feed.send_length = send_length
        result = feed_poll(feed_env(settings, feed))
        assert result.returncode == 2
        assert f"replyd: the feed {feed.url} is larger than 5242880 bytes" in result.stderr
        assert posts(parts) == {}
        feed.body = rss([GRUESSE, TOMATEN])  # just under the cap, the same feed is read
        assert feed_poll(feed_env(settings, feed)).returncode == 0
        assert len(posts(parts)) == 2

    def test_no_feed_url_says_what_to_set(self, settings: Settings) -> None:
        """`replyd feed poll` without REPLYD_FEED_URL says to set it."""
        result = feed_poll(cli_env(settings))
        assert result.returncode == 2
        assert "set REPLYD_FEED_URL=https://your.blog/feed/" in result.stderr

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://blog.example.org/feed"])
    def test_only_http_feeds(self, settings: Settings, url: str) -> None:
        """Another scheme stops the command (and `serve`) with a sentence naming the setting."""
        result = feed_poll({**cli_env(settings), "REPLYD_FEED_URL": url})
        assert result.returncode == 2
        assert "REPLYD_FEED_URL must be the blog's feed as an http(s) address" in result.stderr
        with pytest.raises(ConfigError, match="REPLYD_FEED_URL"):
            make_settings(settings.var_dir, REPLYD_FEED_URL=url)

    def test_feed_seconds_must_be_positive(self, settings: Settings) -> None:
        """REPLYD_FEED_SECONDS is a number of seconds above 0, 600 unless set."""
        assert settings.feed_seconds == 600
        with pytest.raises(ConfigError, match="REPLYD_FEED_SECONDS must be between 1"):
            make_settings(settings.var_dir, REPLYD_FEED_SECONDS="0")


class TestDaemon:
    @pytest.fixture
    def settings_overrides(self, feed: FeedServer) -> dict[str, str]:
        return {
            "REPLYD_FEED_URL": feed.url,
            "REPLYD_FEED_AUTHOR_EMAIL": OWNER,
            "REPLYD_FEED_SECONDS": "1",
        }

    def test_serve_polls_at_start_and_every_feed_seconds(
        self, parts: Components, feed: FeedServer, server: RunningServer
    ) -> None:
        """`serve` adds the feed's posts right after it starts, then polls again every
        REPLYD_FEED_SECONDS with the validators, and a 304 leaves the posts as they were."""
        wait_for(lambda: len(posts(parts)) == 2, what="the feed's posts")
        wait_for(lambda: len(feed.requests) >= 2, timeout=5, what="a second poll")
        assert feed.requests[1].if_none_match == '"v1"' and feed.requests[1].status == 304
        assert set(posts(parts)) == {entry_post_id(GRUESSE.guid), "2026-12-tomaten"}
        feed.publish(rss([Entry(f"{BLOG}/?p=131", "Frost", f"{BLOG}/2026/12/frost/"),
                          GRUESSE, TOMATEN]), "v2")  # fmt: skip
        wait_for(lambda: len(posts(parts)) == 3, timeout=5, what="the new entry's post")


class TestNewPostsByEmail:
    """A post the feed adds is mailed to whoever follows the blog; the backlog a feed lists
    when it is first connected is not news, and is mailed to nobody."""

    FAN = "fan@example.org"

    @pytest.fixture
    def settings_overrides(self, feed: FeedServer) -> dict[str, str]:
        return {
            "REPLYD_FEED_URL": feed.url,
            "REPLYD_FEED_AUTHOR_EMAIL": OWNER,
            "REPLYD_FEED_SECONDS": "1",
        }

    @pytest.fixture
    def fan(self, settings: Settings) -> str:
        """A reader who follows the whole blog, from before the daemon's first poll."""
        done = subprocess.run(
            [*REPLYD, "subscribe", "--all", "--email", self.FAN],
            env={**os.environ, **cli_env(settings)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return self.FAN

    def test_a_new_entry_is_mailed_to_the_blogs_followers_but_not_the_backlog(
        self,
        parts: Components,
        fan: str,
        feed: FeedServer,
        sink: tuple[SinkHandler, int],
        server: RunningServer,
    ) -> None:
        """The first poll adds the two listed posts and mails nobody; a later entry is
        mailed to the follower, with a reply address of their own, and to nobody else. The
        mail of the later entry is the barrier: the backlog's would have been queued, and
        delivered, before it."""
        wait_for(lambda: len(posts(parts)) == 2, what="the feed's backlog as posts")
        feed.publish(rss([Entry(f"{BLOG}/?p=131", "Frost", f"{BLOG}/2026/12/frost/"),
                          GRUESSE, TOMATEN]), "v2")  # fmt: skip
        [mail] = wait_for(lambda: sink[0].to(fan), what="the new entry mailed to the follower")
        assert mail["Subject"] == "Frost"
        assert mail["Reply-To"] and mail["Reply-To"] != mail["From"]
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert len(sink[0].to(fan)) == 1
        assert [rcpts for _, rcpts, _ in sink[0].messages] == [[fan]]


def test_two_nodes_polling_at_once_add_each_post_once(
    postgres_url: str, tmp_path: Path, feed: FeedServer
) -> None:
    """Two nodes on one PostgreSQL database polling together: both succeed, each post once."""
    var = tmp_path / "var"
    var.mkdir()
    settings = make_settings(
        var, REPLYD_DATABASE_URL=postgres_url, REPLYD_FEED_URL=feed.url,
        REPLYD_FEED_AUTHOR_EMAIL=OWNER,
    )  # fmt: skip
    nodes = [Components.build(settings) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[PollResult | Exception] = []

    def node(parts: Components) -> None:
        start.wait()
        try:
            results.append(poll_feed(parts.session_factory, settings))
        except Exception as exc:  # the assertion below names it
            results.append(exc)

    threads = [threading.Thread(target=node, args=(parts,)) for parts in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        polls = [result for result in results if isinstance(result, PollResult)]
        assert len(polls) == 2, results
        # Each post added by one node or the other, never by both.
        assert sorted(post.slug for poll in polls for post in poll.added) == sorted(
            [entry_post_id(GRUESSE.guid), "2026-12-tomaten"]
        )
        assert len(posts(nodes[0])) == 2
    finally:
        for parts in nodes:
            parts.engine.dispose()


class TestPostIds:
    def test_a_permalink_gives_its_path(self) -> None:
        """A permalink guid becomes its path's words; the same guid always the same id."""
        assert entry_post_id(f"{BLOG}/2026/12/gruesse/") == "2026-12-gruesse"
        assert entry_post_id(f"{BLOG}/posts/caf%C3%A9%20noir.html") == "posts-café-noir.html"

    def test_other_guids_give_a_hash(self) -> None:
        """urn, tag and ?p= guids give entry- and 16 hex digits of their hash, the same each
        time, and different guids different ids."""
        ids = {entry_post_id(guid) for guid in (f"{BLOG}/?p=1", f"{BLOG}/?p=2", "urn:uuid:x")}
        assert len(ids) == 3
        assert all(i.startswith("entry-") and len(i) == 22 for i in ids)
        assert entry_post_id(f"{BLOG}/?p=1") == entry_post_id(f"{BLOG}/?p=1")
