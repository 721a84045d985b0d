"""`replyd import wordpress|disqus`: old comments come over whole, threaded and dated, once,
and nobody is mailed about them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.runtime.components import Components
from service.runtime.settings import Settings
from service.store.models import Comment, OutboundEmail, Person, Post
from tests.conftest import Blog, RunningServer, SinkHandler, wait_for
from tests.http_fixtures import API_TOKEN, HttpClient, http, settings_overrides  # noqa: F401
from tests.import_files import (
    SITE,
    WpComment,
    disqus,
    disqus_post,
    disqus_thread,
    wp_item,
    write,
    wxr,
)
from tests.test_cli import cli_env, run

ZOE = "Zoë Ångström"
JAPANESE = "日本語のコメントです。"


def wordpress_export() -> str:
    """A blog with two published posts (one the blog already has), a draft and an attachment;
    the first post has a thread three deep, a held, a spam, a trashed comment, a pingback,
    one with WordPress's zero GMT date and one without an address."""
    comments = [
        WpComment(11, ZOE, "zoe@example.net", "2012-05-02 08:15:00",
                  "First!\nI love this &amp; that.\n\nSecond paragraph <b>bold</b>"),
        WpComment(12, "Bob", "bob@example.net", "2012-05-02 09:00:00",
                  "Replying to Zoë", parent=11),
        WpComment(13, "Tanaka 太郎", "taro@example.jp", "2012-05-03 10:30:00",
                  JAPANESE, parent=12),
        WpComment(14, "Held Hal", "hal@example.net", "2012-05-04 11:00:00",
                  "Please approve me", approved="0"),
        WpComment(15, "Cheap Pills", "pills@spam.example", "2012-05-04 12:00:00",
                  "Buy now", approved="spam"),
        WpComment(16, "Tina", "tina@example.net", "2012-05-04 13:00:00",
                  "Thrown away", approved="trash"),
        WpComment(17, "Other Blog", "", "2012-05-05 14:00:00",
                  "[...] linked here [...]", kind="pingback"),
        WpComment(18, "Old Timer", "old@example.net", "0000-00-00 00:00:00",
                  "From before GMT dates", date_local="2012-05-06 16:45:00"),
        WpComment(19, "Anonymous Coward", "", "2012-05-07 07:07:07", "No address given"),
    ]  # fmt: skip
    matched = [WpComment(21, "Bob", "bob@example.net", "2013-01-01 00:00:00", "On the old one")]
    return wxr(
        [
            wp_item(1, "hello-world", "Hello &amp; welcome", comments),
            wp_item(2, "already", "Already here", matched, link="http://blog.example.org/hello/"),
            wp_item(3, "draft", "A draft", [], status="draft"),
            wp_item(4, "photo", "photo.jpg", [], status="inherit", post_type="attachment"),
        ]
    )


def counts(parts: Components) -> tuple[int, int, int, int]:
    """How many posts, comments, people and outbound messages the database holds."""
    with parts.session_factory() as session:
        return (
            session.scalar(select(func.count(Post.id))) or 0,
            session.scalar(select(func.count(Comment.id))) or 0,
            session.scalar(select(func.count(Person.id))) or 0,
            session.scalar(select(func.count(OutboundEmail.id))) or 0,
        )


def by_key(parts: Components) -> dict[str, Comment]:
    """The imported comments by their number in the export (the end of the import key)."""
    with parts.session_factory() as session:
        rows = session.scalars(select(Comment).where(Comment.import_key.is_not(None))).all()
        for row in rows:
            _ = row.author.display_name, row.author.email, row.post.slug, row.post.author.email
        session.expunge_all()
    return {row.import_key.rsplit(":", 1)[1]: row for row in rows if row.import_key}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class TestWordPress:
    def test_posts_comments_threads_dates_and_approval(
        self, settings: Settings, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        """Published posts come over (one matched by its URL despite http and the slash),
        comments keep their thread, dates and approval; spam, trash and pingbacks stay out."""
        blog.post("hello")  # https://blog.example.org/hello
        export = write(tmp_path / "wordpress.xml", wordpress_export())
        result = run(cli_env(settings), "import", "wordpress", str(export))
        assert "posts: 1 added, 1 matched by URL, 2 skipped" in result.stdout
        assert "comments: 7 added (6 published, 1 held for moderation), 0 already" in result.stdout
        assert "1 deleted or trashed, 1 pingbacks, 1 spam" in result.stdout
        found = by_key(parts)
        assert sorted(found, key=int) == ["11", "12", "13", "14", "18", "19", "21"]
        assert found["11"].parent_id is None
        assert found["12"].parent_id == found["11"].id
        assert found["13"].parent_id == found["12"].id
        assert found["11"].body == "First!\nI love this & that.\n\nSecond paragraph bold"
        assert found["13"].body == JAPANESE
        assert (found["11"].author.display_name, found["11"].author.email) == (
            ZOE,
            "zoe@example.net",
        )
        assert found["13"].author.display_name == "Tanaka 太郎"
        assert found["11"].created_at == utc("2012-05-02 08:15:00")
        assert found["11"].published_at == utc("2012-05-02 08:15:00")
        assert found["13"].created_at == utc("2012-05-03 10:30:00")
        assert found["18"].created_at == utc("2012-05-06 16:45:00")  # local date, GMT was zero
        assert (found["14"].status, found["14"].published_at) == ("held", None)
        assert {found[k].status for k in ("11", "12", "13", "18", "19", "21")} == {"published"}
        assert found["19"].author.email.endswith("@anonymous.invalid")
        assert found["19"].author.display_name == "Anonymous Coward"
        assert found["21"].post.slug == "hello"  # matched, not a second post
        assert found["11"].post.slug == "hello-world"
        with parts.session_factory() as session:
            post = session.scalars(select(Post).where(Post.slug == "hello-world")).one()
            assert (post.title, post.url) == ("Hello & welcome", f"{SITE}/2012/05/hello-world/")
            assert post.author.email == "owner@example.org"
            assert post.author.display_name == "Björn Owner"
            assert post.created_at == utc("2012-05-01 10:00:00")
        assert counts(parts)[3] == 0  # nothing queued for anyone

    def test_approving_an_imported_held_comment_mails_nobody(
        self, settings: Settings, parts: Components, tmp_path: Path
    ) -> None:
        """A comment held on the old blog, approved here, is published without a mail: the
        approval of any other held comment would queue the post author's notification in
        the same transaction."""
        export = write(tmp_path / "wordpress.xml", wordpress_export())
        env = cli_env(settings)
        run(env, "import", "wordpress", str(export), "--author-email", "a@example.org")
        held = by_key(parts)["14"]
        run(env, "comment", "approve", str(held.id))
        assert by_key(parts)["14"].status == "published"
        assert counts(parts)[3] == 0

    def test_a_second_import_adds_nothing(
        self, settings: Settings, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        """Running the same import again adds no post, comment or person, and says so."""
        blog.post("hello")
        export = write(tmp_path / "wordpress.xml", wordpress_export())
        run(cli_env(settings), "import", "wordpress", str(export))
        before = counts(parts)
        again = run(cli_env(settings), "import", "wordpress", str(export))
        assert "posts: 0 added, 2 matched by URL" in again.stdout
        assert "comments: 0 added (0 published, 0 held for moderation), 7 already imported" in (
            again.stdout
        )
        assert counts(parts) == before
        assert before[:2] == (2, 7)

    @pytest.mark.parametrize("version", ["1.1", "1.0"])
    def test_older_wxr_versions(
        self, settings: Settings, parts: Components, version: str, tmp_path: Path
    ) -> None:
        """Exports of older WordPress versions (WXR 1.1, 1.0) are read the same way."""
        text = wordpress_export().replace(
            "wordpress.org/export/1.2/", f"wordpress.org/export/{version}/"
        )
        export = write(tmp_path / "wordpress.xml", text)
        result = run(cli_env(settings), "import", "wordpress", str(export))
        assert "comments: 7 added (6 published, 1 held for moderation)" in result.stdout
        assert by_key(parts)["13"].parent_id == by_key(parts)["12"].id

    def test_a_missing_author_address_asks_for_one(
        self, settings: Settings, parts: Components, tmp_path: Path
    ) -> None:
        """A post by a login the export gives no address for is refused, naming its line,
        until --author-email names one; nothing is imported meanwhile."""
        text = wxr([wp_item(1, "hi", "Hi", [], creator="ghost")])
        export = write(tmp_path / "wordpress.xml", text)
        refused = run(cli_env(settings), "import", "wordpress", str(export), check=False)
        line = text.splitlines().index("\t<item>") + 1
        assert refused.returncode == 2
        assert f"line {line}" in refused.stderr and "--author-email" in refused.stderr
        assert counts(parts)[:2] == (0, 0)
        env = cli_env(settings)
        run(env, "import", "wordpress", str(export), "--author-email", "me@example.org")
        with parts.session_factory() as session:
            post = session.scalars(select(Post)).one()
            assert post.author.email == "me@example.org"


class TestDisqus:
    def test_threads_nested_replies_out_of_order_and_once(
        self, settings: Settings, parts: Components, tmp_path: Path
    ) -> None:
        """Disqus posts land under their threads, replies under parents that come later in
        the file; spam and deleted posts and threads without comments stay out; a second
        import adds nothing."""
        threads = [
            disqus_thread("7001", "first-post", "https://blog.example.org/first-post/", "Fïrst"),
            disqus_thread("7002", "", "https://blog.example.org/2013/empty-page", "Empty"),
        ]
        posts = [
            # The deepest reply first: Disqus does not order parents before answers.
            disqus_post("9003", "7001", "<p>Third level</p>", "2013-02-03T12:00:00Z",
                        "Chloé", "chloe@example.net", parent="9002"),
            disqus_post("9002", "7001", "<p>Second &amp; level<br>two lines</p>",
                        "2013-02-02T11:00:00Z", "Bob", "bob@example.net", parent="9001"),
            disqus_post("9001", "7001", f"<p>{JAPANESE}</p><p>Zoë</p>",
                        "2013-02-01T10:00:00Z", ZOE, "zoe@example.net"),
            disqus_post("9004", "7001", "<p>Spam!</p>", "2013-02-04T00:00:00Z",
                        "Spammer", "s@spam.example", spam=True),
            disqus_post("9005", "7001", "<p>Gone</p>", "2013-02-05T00:00:00Z",
                        "Del", "del@example.net", deleted=True),
            disqus_post("9006", "7001", "<p>No address</p>", "2013-02-06T00:00:00Z",
                        "Guest", ""),
            disqus_post("9007", "7001", "<p>Awaiting approval</p>", "2013-02-07T00:00:00Z",
                        "Wendy", "wendy@example.net", approved=False, parent="9001"),
            disqus_post("9001", "7001", "<p>Listed twice</p>", "2013-02-01T10:00:00Z",
                        ZOE, "zoe@example.net"),
        ]  # fmt: skip
        export = write(tmp_path / "disqus.xml", disqus(threads, posts))
        env = cli_env(settings)
        result = run(env, "import", "disqus", str(export), "--author-email", "me@example.org")
        assert "posts: 1 added, 0 matched by URL" in result.stdout
        assert "comments: 5 added (4 published, 1 held for moderation)" in result.stdout
        assert "1 deleted or trashed, 1 listed twice in the file, 1 spam" in result.stdout
        found = by_key(parts)
        assert sorted(found) == ["9001", "9002", "9003", "9006", "9007"]
        assert (found["9007"].status, found["9007"].parent_id) == ("held", found["9001"].id)
        assert found["9006"].author.email.endswith("@anonymous.invalid")
        assert found["9001"].parent_id is None
        assert found["9002"].parent_id == found["9001"].id
        assert found["9003"].parent_id == found["9002"].id
        # Stored oldest first (pages and feeds order by id), whatever the file's order.
        ids = [found[k].id for k in ("9001", "9002", "9003", "9006", "9007")]
        assert ids == sorted(ids)
        assert found["9001"].body == f"{JAPANESE}\n\nZoë"
        assert found["9002"].body == "Second & level\ntwo lines"
        assert found["9003"].created_at == utc("2013-02-03 12:00:00")
        assert found["9001"].post.slug == "first-post"
        assert found["9001"].post.author.email == "me@example.org"
        before = counts(parts)
        again = run(env, "import", "disqus", str(export), "--author-email", "me@example.org")
        assert "comments: 0 added (0 published, 0 held for moderation), 5 already" in again.stdout
        assert "posts: 0 added, 1 matched by URL" in again.stdout
        assert counts(parts) == before
        assert before[3] == 0


class TestBadFiles:
    def test_a_missing_file_says_what_to_give(self, settings: Settings, tmp_path: Path) -> None:
        """A path that is no file is refused with a sentence saying how to get an export."""
        refused = run(
            cli_env(settings), "import", "disqus", str(tmp_path / "nope.xml"), check=False
        )
        assert refused.returncode == 2
        assert "no such file" in refused.stderr and "Export" in refused.stderr

    def test_malformed_xml_names_the_line_and_imports_nothing(
        self, settings: Settings, parts: Components, tmp_path: Path
    ) -> None:
        """An export cut off half way (valid posts before the break) names the line of the
        break, and the database is as it was."""
        text = wordpress_export()
        lines = text.splitlines()
        cut = next(i for i, line in enumerate(lines) if "<wp:comment_id>18<" in line)
        lines[cut] = "\t\t\t<wp:comment_id>18</wp:comment_idd>"
        export = write(tmp_path / "wordpress.xml", "\n".join(lines))
        refused = run(cli_env(settings), "import", "wordpress", str(export), check=False)
        assert refused.returncode == 2
        assert f"line {cut + 1}" in refused.stderr and "nothing was imported" in refused.stderr
        assert counts(parts) == (0, 0, 0, 0)

    def test_a_comment_without_its_id_names_the_line(
        self, settings: Settings, parts: Components, tmp_path: Path
    ) -> None:
        """Well-formed XML missing an element every comment needs is refused, naming the
        comment's line, after the earlier comments were read: nothing is half imported."""
        text = wordpress_export().replace("<wp:comment_id>19</wp:comment_id>", "")
        export = write(tmp_path / "wordpress.xml", text)
        refused = run(cli_env(settings), "import", "wordpress", str(export), check=False)
        start = text.index("No address given")
        line = text.count("\n", 0, text.rindex("<wp:comment>", 0, start)) + 1
        assert refused.returncode == 2
        assert f"line {line}" in refused.stderr and "wp:comment_id" in refused.stderr
        assert counts(parts) == (0, 0, 0, 0)

    def test_an_entity_bomb_is_refused_at_once(
        self, settings: Settings, parts: Components, tmp_path: Path
    ) -> None:
        """A billion-laughs DOCTYPE and an external entity are refused in moments, and no
        file is read through them."""
        laughs = ['<!ENTITY l0 "ha">'] + [
            f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10)
        ]
        secret = tmp_path / "secret.txt"
        secret.write_text("TOP SECRET")
        bomb = (
            wordpress_export()
            .replace(
                "<rss ",
                f'<!DOCTYPE rss [{"".join(laughs)}<!ENTITY x SYSTEM "file://{secret}">]>\n<rss ',
                1,
            )
            .replace("First!", "&l9; &x;")
        )
        export = write(tmp_path / "bomb.xml", bomb)
        started = time.monotonic()
        refused = run(cli_env(settings), "import", "wordpress", str(export), check=False)
        assert time.monotonic() - started < 20
        assert refused.returncode == 2 and "DOCTYPE" in refused.stderr
        assert "TOP SECRET" not in refused.stderr + refused.stdout
        assert counts(parts) == (0, 0, 0, 0)


IMPORTED_COMMENTERS = ("zoe@example.net", "bob@example.net", "taro@example.jp",
                       "hal@example.net", "old@example.net")  # fmt: skip


class TestNobodyIsMailed:
    def test_shown_publicly_and_old_commenters_hear_nothing_of_new_comments(
        self,
        settings: Settings,
        parts: Components,
        blog: Blog,
        server: RunningServer,
        http: HttpClient,  # noqa: F811
        sink: tuple[SinkHandler, int],
        tmp_path: Path,
    ) -> None:
        """With the daemon running, imported comments show on the public API (held and spam
        ones do not, nor any address), nothing is mailed for them, and a new comment after
        the import reaches the post's author but none of the imported commenters."""
        export = write(tmp_path / "wordpress.xml", wordpress_export())
        run(cli_env(settings), "import", "wordpress", str(export), "--author-email", "a@x.org")
        shown = http.get("/api/posts/hello-world/comments", auth=False)
        assert shown.status == 200
        bodies = [c["body"] for c in shown.json()["comments"]]
        assert {c["source"] for c in shown.json()["comments"]} == {"wordpress"}
        assert "Replying to Zoë" in bodies and JAPANESE in bodies
        assert "Please approve me" not in bodies and "Buy now" not in bodies
        assert "@example.net" not in shown.text and "anonymous.invalid" not in shown.text
        page = http.get("/posts/hello-world", auth=False)
        assert page.status == 200
        assert "Replying to Zoë" in page.text and "Please approve me" not in page.text
        assert "Buy now" not in page.text and "@example.net" not in page.text
        new = http.post(
            "/api/posts/hello-world/comments",
            json_body={"author_email": "newcomer@example.org", "body": "A new comment"},
        )
        assert new.status in (200, 201), new.text
        handler, _ = sink
        # The author's notification proves the outbox ran for the new comment.
        wait_for(lambda: handler.to("owner@example.org"), what="the author's notification")
        with parts.session_factory() as session:
            rows = session.execute(select(OutboundEmail.recipient, OutboundEmail.status)).all()
        assert [recipient for recipient, _ in rows] == ["owner@example.org"]
        assert not any(handler.to(address) for address in IMPORTED_COMMENTERS)

    def test_imported_comments_go_in_no_digest(
        self, settings: Settings, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        """A digest taker of a matched post gets the comment made after the import in their
        next digest, and none of the imported ones."""
        post_id = blog.post("hello")
        env = cli_env(settings)
        run(env, "subscribe", "--post", "hello", "--email", "d@example.org", "--digest", "daily")
        export = write(tmp_path / "wordpress.xml", wordpress_export())
        run(env, "import", "wordpress", str(export))
        writer = blog.person("fresh@example.org", "Fresh")
        with parts.session_factory.begin() as session:
            session.add(Comment(post_id=post_id, author_id=writer, body="Written after import"))
        run(env, "digest", "send", "--period", "daily")
        with parts.session_factory() as session:
            digests = session.scalars(select(OutboundEmail)).all()
            assert [d.recipient for d in digests] == ["d@example.org"]
            raw = (digests[0].raw or b"").decode("utf-8", "replace")
        assert "Written after import" in raw
        assert "On the old one" not in raw


class TestPostgres:
    def test_import_twice_on_postgres(self, postgres_url: str, tmp_path: Path) -> None:
        """On PostgreSQL too the import stores threads and dates, and a re-run adds nothing."""
        var = tmp_path / "var"
        var.mkdir()
        env = {
            "REPLYD_VAR_DIR": str(var),
            "REPLYD_DATABASE_URL": postgres_url,
            "REPLYD_DOMAIN": "replyd.example.org",
            "REPLYD_SECRET": "a-test-secret-that-is-long-enough-0123",
        }
        export = write(tmp_path / "wordpress.xml", wordpress_export())
        first = run(env, "import", "wordpress", str(export), "--author-email", "me@example.org")
        assert "comments: 7 added (6 published, 1 held for moderation)" in first.stdout
        again = run(env, "import", "wordpress", str(export))
        assert "0 added (0 published, 0 held for moderation), 7 already imported" in again.stdout
        from service.store.engine import make_engine

        engine = make_engine(postgres_url)
        with engine.connect() as connection:
            rows = dict(
                connection.execute(
                    select(Comment.import_key, Comment.parent_id).where(
                        Comment.import_key.is_not(None)
                    )
                ).all()
            )
            ids = dict(connection.execute(select(Comment.import_key, Comment.id)).all())
        engine.dispose()
        key = f"wordpress:{SITE}:"
        assert len(rows) == 7
        assert rows[key + "13"] == ids[key + "12"] and rows[key + "12"] == ids[key + "11"]
