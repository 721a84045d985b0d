"""`replyd feed poll`: read the blog's feed once by hand and say which posts it added."""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.common import AddCommand, CommandError, components
from service.controls import escape_controls_line


def cmd_feed_poll(args: argparse.Namespace) -> int:
    """Poll REPLYD_FEED_URL once, as `serve` does every REPLYD_FEED_SECONDS."""
    from service.feed.fetch import FeedError
    from service.feed.poll import poll_feed
    from service.outbound.new_posts import announce_post

    parts = components()
    if not parts.settings.feed_url:
        raise CommandError(
            "no feed to poll: set REPLYD_FEED_URL=https://your.blog/feed/ (its RSS or Atom "
            "feed), and REPLYD_FEED_AUTHOR_EMAIL for entries that name no author address."
        )
    try:
        result = poll_feed(
            parts.session_factory,
            parts.settings,
            announce=lambda session, post: announce_post(
                session, post, parts.book, parts.keyring
            ),
        )
    except FeedError as exc:
        raise CommandError(f"{exc}.") from None
    finally:
        parts.engine.dispose()
    if result.not_modified:
        print(f"the feed has not changed since the last poll (304): {result.url}")
        return 0
    for post in result.added:
        print(f"added post {post.slug!r}: {escape_controls_line(post.title)} <{post.url}>")
    for change in result.updated:
        print(
            f"updated post {change.slug!r}: title {escape_controls_line(change.old)!r} -> "
            f"{escape_controls_line(change.new)!r}"
        )
    for skipped in result.skipped:
        print(f"skipped entry {escape_controls_line(skipped.guid)!r}: {skipped.reason}")
    print(
        f"{len(result.added)} added, {len(result.updated)} updated, {len(result.skipped)} "
        f"skipped from {result.url}"
    )
    return 0


def register(add: AddCommand, commands: Any) -> None:
    """Add `feed poll` to the parser."""
    feed = commands.add_parser("feed", help="the blog's feed (REPLYD_FEED_URL)").add_subparsers(
        dest="feed_command", required=True, metavar="COMMAND"
    )
    add("poll", cmd_feed_poll, "read the feed once now and add its new entries as posts", feed)
