"""Every `replyd` command with arguments that make it do its work, and how to find them all."""

from __future__ import annotations

import argparse
import hashlib
from datetime import timedelta
from pathlib import Path

from service.cli import build_parser
from service.runtime.components import Components
from service.store.models import Comment, InboundEmail, InboundStatus, WebhookEvent, utcnow
from tests.conftest import Blog, reply_message
from tests.import_files import WpComment, disqus, disqus_post, disqus_thread, wp_item, wxr

POST = "hello"  # the slug Blog.post() gives
FOLLOWER = "follower@example.org"


def leaf_commands(parser: argparse.ArgumentParser | None = None) -> list[tuple[str, ...]]:
    """The command paths the parser accepts, e.g. ("post", "list"), found by walking it."""
    found: list[tuple[str, ...]] = []

    def walk(node: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        groups = [a for a in node._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups:
            found.append(path)
            return
        for group in groups:
            for name, child in group.choices.items():
                walk(child, (*path, name))

    walk(parser or build_parser(), ())
    return found


def command_lines(workdir: Path) -> dict[tuple[str, ...], list[str]]:
    """For each command path, a whole command line that succeeds on a database seeded by
    `seed` (in this order: a later one may rely on an earlier one)."""
    message = workdir / "reply.eml"
    message.write_bytes(reply_message("r@example.org", "reply@x.example", "Thanks!"))
    wordpress = workdir / "wordpress.xml"
    old = WpComment(1, "Old", "old@example.org", "2012-01-01 00:00:00", "An old comment")
    wordpress.write_text(wxr([wp_item(1, "old-post", "Old post", [old])]), encoding="utf-8")
    disqus_file = workdir / "disqus.xml"
    thread = disqus_thread("1", "d-post", "https://blog.example.org/d-post", "D")
    comment = disqus_post("2", "1", "<p>Hi</p>", "2013-01-01T00:00:00Z", "D", "d@example.org")
    disqus_file.write_text(disqus([thread], [comment]), encoding="utf-8")
    return {
        ("db", "upgrade"): ["db", "upgrade"],
        ("demo",): ["demo"],
        ("post", "add"): [
            *("post", "add", "--id", "second", "--title", "Second"),
            *("--url", "https://blog.example.org/second", "--author-email", "a@example.org"),
        ],
        ("post", "close"): ["post", "close", "second"],
        ("post", "list"): ["post", "list", "--json"],
        ("subscribe",): ["subscribe", "--post", POST, "--email", FOLLOWER, "--digest", "daily"],
        ("unsubscribe",): ["unsubscribe", "--post", POST, "--email", "other@example.org"],
        ("address",): ["address", "--post", POST, "--email", FOLLOWER],
        ("comments",): ["comments", "--post", POST],
        ("inbound", "list"): ["inbound", "list"],
        ("inbound", "show"): ["inbound", "show", "1"],
        ("inbound", "retry"): ["inbound", "retry", "1"],
        ("inbound", "purge"): ["inbound", "purge", "--older-than", "30"],
        ("digest", "send"): ["digest", "send", "--period", "daily"],
        ("person", "export"): ["person", "export", "--email", "commenter@example.org", "--raw"],
        ("person", "forget"): ["person", "forget", "--email", "commenter@example.org"],
        ("extract",): ["extract", str(message)],
        ("comment", "hide"): ["comment", "hide", "1"],
        ("comment", "restore"): ["comment", "restore", "1"],
        ("comment", "approve"): ["comment", "approve", "1"],
        ("comment", "log"): ["comment", "log"],
        ("block",): ["block", "--email", "spam@example.org"],
        ("blocks", "list"): ["blocks", "list"],
        ("unblock",): ["unblock", "--email", "spam@example.org"],
        ("comment", "delete"): ["comment", "delete", "1"],
        ("import", "wordpress"): ["import", "wordpress", str(wordpress)],
        ("import", "disqus"): [
            *("import", "disqus", str(disqus_file), "--author-email", "a@example.org"),
        ],
        ("webhooks", "list"): ["webhooks", "list", "--status", "failed"],
        ("webhooks", "retry"): ["webhooks", "retry", "1"],
        # Reads a message on stdin: tests/test_ingest.py runs it with one, imports checked.
        ("ingest",): ["ingest"],
        # Polls REPLYD_FEED_URL: tests/test_feed.py runs it against a served feed, imports checked.
        ("feed", "poll"): ["feed", "poll"],
        ("serve",): ["serve"],
    }


def seed(parts: Components, blog: Blog) -> None:
    """A post with yesterday's comment (for a daily digest) and one failed inbound message."""
    post_id = blog.post(POST)
    commenter = blog.person("commenter@example.org", "Cora")
    raw = reply_message("commenter@example.org", "reply@x.example", "Nice post.")
    with parts.session_factory.begin() as session:
        session.add(
            Comment(
                post_id=post_id,
                author_id=commenter,
                body="Nice post.",
                created_at=utcnow() - timedelta(days=1),
            )
        )
        session.add(
            InboundEmail(
                raw=raw,
                sha256=hashlib.sha256(raw).hexdigest(),
                sender="commenter@example.org",
                recipient="reply@x.example",
                status=InboundStatus.FAILED,
                reason="seeded for the test",
            )
        )
        session.add(
            WebhookEvent(
                event_id="msg_seeded",
                type="comment.published",
                url="https://hooks.example.org/replyd",
                post_id=post_id,
                comment_id=1,
                comment_created_at=utcnow(),
                status="failed",
                last_error="seeded for the test",
            )
        )
