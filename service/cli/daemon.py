"""`replyd serve`, `db upgrade` and `demo`: run the daemon and set it up."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.cli.common import (
    AddCommand,
    CommandError,
    collect_as_usual,
    components,
    person_at,
    read_settings,
)

DEMO_READER = "reader@example.org"


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM."""
    import asyncio

    from service.runtime.daemon import ReplydServer
    from service.runtime.logs import configure_logging
    from service.store.schema import SchemaNotReady

    settings = read_settings(report=False)
    configure_logging(settings, verbose=args.verbose)
    try:
        server = ReplydServer(settings)
        collect_as_usual()  # a daemon runs for days: the default collector thresholds
        asyncio.run(server.serve_until_signalled())
    except SchemaNotReady as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(
            f"cannot listen ({exc.strerror}): SMTP wants {settings.smtp_host}:{settings.smtp_port}"
            f" and HTTP {settings.http_host}:{settings.http_port}; set REPLYD_SMTP_PORT or "
            "REPLYD_HTTP_PORT to a free port."
        ) from None
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Migrate the database to the newest schema."""
    from service.store.schema import upgrade

    parts = components(migrated=False)
    before, after = upgrade(parts.engine)
    where = parts.engine.url.render_as_string(hide_password=True)
    if before == after:
        print(f"database {where} was already at the newest schema ({after}); nothing to do")
    elif before is None:
        print(f"created replyd's tables in {where} (schema {after})")
    else:
        print(f"migrated {where} from schema {before} to {after}")
    return 0


def _shortest_path(path: Path) -> str:
    """A path relative to the current directory when it lies below it (for printed commands)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_demo(args: argparse.Namespace) -> int:
    """Add a demo post if there are no posts, and print how to send a reply to it."""
    from sqlalchemy import func, select

    from service.identity.addresses import ReplyTarget
    from service.store.models import Post
    from service.store.subscriptions import save_post

    parts = components()
    settings = parts.settings
    with parts.session_factory.begin() as session:
        if not session.scalar(select(func.count()).select_from(Post)):
            author = person_at(session, "author@example.org", "Demo Author")
            save_post(
                session,
                "demo",
                title="Hello from replyd",
                url=f"{settings.base_url}/posts/demo",
                author=author,
                closed=False,
            )
            print("added the demo post 'demo' (author: author@example.org)")
        post = session.scalar(select(Post).where(Post.slug == "demo"))
        if post is None:
            return 0
        reader = person_at(session, DEMO_READER, "Demo Reader")
        address = parts.book.reply_address(ReplyTarget(post.id, None, reader.id), parts.keyring)
    # Built from fixed text and a base32 token only, so it is safe inside the quoted command.
    message = "\\r\\n".join(
        [
            f"From: Demo Reader <{DEMO_READER}>",
            f"To: {address}",
            "Subject: Re: Hello from replyd",
            "",
            "What a great post!",
            "",
            "On Tue, Sep 8, 2009 at 11:48 AM, Demo Author wrote:",
            "> Hello",
            "",
        ]
    )
    python = _shortest_path(Path(sys.executable))
    smtp = f"smtplib.SMTP('{settings.smtp_host}', {settings.smtp_port})"
    print(f"\nreply address for {DEMO_READER} on post 'demo':\n  {address}\n")
    print("once the daemon below is listening, send a reply from another terminal with:")
    print(
        f'  {python} -c "import smtplib; {smtp}'
        f".sendmail('{DEMO_READER}', ['{address}'], b'{message}')\""
    )
    replyd = _shortest_path(Path(sys.argv[0]).absolute())
    print(f"then see the comment with:  {replyd} comments --post demo")
    if settings.outbound.kind == "maildir":
        print(f"and the author's notification in the Maildir {settings.outbound.path}\n")
    return 0


def register(add: AddCommand, commands: Any) -> None:
    """Add serve, db upgrade and demo to the parser."""
    add("serve", cmd_serve, "run the SMTP listener, HTTP server, workers and outbox until SIGTERM")
    db = commands.add_parser("db", help="the database schema").add_subparsers(
        dest="db_command", required=True, metavar="COMMAND"
    )
    add("upgrade", cmd_db_upgrade, "create or migrate the database to the newest schema", db)
    add("demo", cmd_demo, "add a demo post if there is none and print how to reply to it")
