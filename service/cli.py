"""The `replyd` command: serve, db, post, subscribe, address, comments, inbound, extract, demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from service.config import Settings
    from service.server import Components

# Imports inside the commands are deliberate: `replyd post list` must not pay for talon (~1 s)
# or aiosmtpd; only the commands that need them load them.


class CommandError(Exception):
    """A user-facing failure: the message says what went wrong and what to do."""


def _settings() -> Settings:
    from service.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        raise CommandError(f"configuration error: {exc}") from None


def _components(*, migrated: bool = True) -> Components:
    from service.db import SchemaNotReady, check_schema
    from service.server import Components

    parts = Components.build(_settings())
    if migrated:
        try:
            check_schema(parts.engine)
        except SchemaNotReady as exc:
            raise CommandError(str(exc)) from None
    return parts


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str))


def _person(session: Session, email: str, name: str = "") -> Any:
    """The person with this address, created on first use."""
    from service.subscriptions import person_for

    email = email.strip().lower()
    if "@" not in email or any(ch.isspace() for ch in email):
        raise CommandError(f"{email!r} is not an email address; give one like ann@example.org.")
    return person_for(session, email, name)


def _post(session: Session, slug: str) -> Any:
    from sqlalchemy import select

    from service.models import Post

    post = session.scalar(select(Post).where(Post.slug == slug))
    if post is None:
        raise CommandError(
            f"no post with id {slug!r}; `replyd post list` shows the posts there are."
        )
    return post


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM."""
    import asyncio

    from service.db import SchemaNotReady
    from service.logs import configure_logging
    from service.server import ReplydServer

    settings = _settings()
    configure_logging(settings, verbose=args.verbose)
    try:
        server = ReplydServer(settings)
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
    from service.db import upgrade

    parts = _components(migrated=False)
    upgrade(parts.engine)
    print(f"database {parts.engine.url.render_as_string(hide_password=True)} is up to date")
    return 0


def cmd_post_add(args: argparse.Namespace) -> int:
    """Create a post, or update it if the blog's id is already known."""
    from service.subscriptions import save_post

    parts = _components()
    with parts.session_factory.begin() as session:
        author = _person(session, args.author_email, args.author_name or "")
        _, created = save_post(
            session, args.id, title=args.title, url=args.url, author=author, closed=args.closed
        )
    print(f"{'added' if created else 'updated'} post {args.id!r}")
    return 0


def cmd_post_close(args: argparse.Namespace) -> int:
    """Close a post: replies to it are rejected from now on."""
    parts = _components()
    with parts.session_factory.begin() as session:
        _post(session, args.id).closed = True
    print(f"closed post {args.id!r}")
    return 0


def cmd_post_list(args: argparse.Namespace) -> int:
    """List posts."""
    from sqlalchemy import select

    from service.models import Post

    parts = _components()
    with parts.session_factory() as session:
        posts = session.scalars(select(Post).order_by(Post.id)).all()
        rows = [
            {
                "id": p.slug,
                "title": p.title,
                "url": p.url,
                "author_email": p.author.email,
                "author_name": p.author.display_name,
                "closed": p.closed,
            }
            for p in posts
        ]
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            state = "closed" if row["closed"] else "open"
            print(f"{row['id']}\t{state}\t{row['title']}\t{row['url']}")
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    """Make someone follow a post, per comment or by digest."""
    from service.subscriptions import set_following

    parts = _components()
    with parts.session_factory.begin() as session:
        post = _post(session, args.post)
        person = _person(session, args.email)
        set_following(session, post.id, person.id, active=True, digest=args.digest)
        # Asking for mail again is consent to try the address again after bounces.
        person.suspended_at, person.bounce_score = None, 0.0
    print(f"{args.email} follows {args.post!r} ({args.digest or 'each comment'})")
    return 0


def cmd_unsubscribe(args: argparse.Namespace) -> int:
    """Stop someone's mail about a post (and keep them from being re-subscribed by commenting)."""
    from service.subscriptions import set_following

    parts = _components()
    with parts.session_factory.begin() as session:
        post = _post(session, args.post)
        person = _person(session, args.email)
        set_following(session, post.id, person.id, active=False)
    print(f"{args.email} no longer gets mail about {args.post!r}")
    return 0


def cmd_address(args: argparse.Namespace) -> int:
    """Print the reply address for a person on a post (or under a comment)."""
    from service.addresses import ReplyTarget
    from service.models import Comment

    parts = _components()
    with parts.session_factory.begin() as session:
        post = _post(session, args.post)
        person = _person(session, args.email)
        if args.comment is not None:
            comment = session.get(Comment, args.comment)
            if comment is None or comment.post_id != post.id:
                raise CommandError(
                    f"post {args.post!r} has no comment {args.comment}; "
                    f"see `replyd comments --post {args.post}`."
                )
        target = ReplyTarget(post.id, args.comment, person.id)
    print(parts.book.reply_address(target, parts.keyring))
    return 0


def cmd_comments(args: argparse.Namespace) -> int:
    """List a post's comments in thread order."""
    from sqlalchemy import select

    from service.models import Comment

    parts = _components()
    with parts.session_factory() as session:
        post = _post(session, args.post)
        comments = session.scalars(
            select(Comment).where(Comment.post_id == post.id).order_by(Comment.id)
        ).all()
        rows: list[dict[str, Any]] = [
            {
                "id": c.id,
                "parent_id": c.parent_id,
                "author_email": c.author.email,
                "author_name": c.author.display_name,
                "body": c.body,
                "elided": c.elided,
                "source": c.source,
                "inbound_id": c.inbound_email_id,
                "created_at": c.created_at.isoformat(),
            }
            for c in comments
        ]
    if args.json:
        _print_json(rows)
        return 0
    children: dict[int | None, list[dict[str, Any]]] = {}
    for row in rows:
        children.setdefault(row["parent_id"], []).append(row)

    def show(parent: int | None, depth: int) -> None:
        for row in children.get(parent, []):
            indent = "    " * depth
            print(
                f"{indent}#{row['id']} {row['author_name'] or row['author_email']} "
                f"({row['created_at'][:16]})"
            )
            for line in row["body"].splitlines():
                print(f"{indent}  {line}")
            show(row["id"], depth + 1)

    show(None, 0)
    return 0


def cmd_inbound_list(args: argparse.Namespace) -> int:
    """List stored inbound mail, newest first."""
    from sqlalchemy import select

    from service.models import InboundEmail, InboundStatus

    if args.status and args.status not in set(InboundStatus):
        raise CommandError(
            f"unknown status {args.status!r}; use one of {', '.join(InboundStatus)}."
        )
    parts = _components()
    query = select(InboundEmail).order_by(InboundEmail.id.desc()).limit(args.limit)
    if args.status:
        query = query.where(InboundEmail.status == args.status)
    with parts.session_factory() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": r.id,
                "received_at": r.received_at.isoformat(),
                "message_id": r.message_id,
                "sender": r.sender,
                "status": r.status,
                "reason": r.reason,
                "attempts": r.attempts,
            }
            for r in session.scalars(query)
        ]
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            print(
                f"{row['id']}\t{row['received_at'][:19]}\t{row['status']}\t"
                f"<{row['sender']}>\t{row['reason'] or ''}"
            )
    return 0


def cmd_inbound_show(args: argparse.Namespace) -> int:
    """Show one inbound message: its state, or its raw source with --raw."""
    from sqlalchemy import select

    from service.models import Comment, InboundEmail

    parts = _components()
    with parts.session_factory() as session:
        row = session.get(InboundEmail, args.id)
        if row is None:
            raise CommandError(
                f"no inbound message {args.id}; `replyd inbound list` shows the ids."
            )
        if args.raw:
            if row.raw_purged_at is not None:
                raise CommandError(
                    f"the source of message {args.id} was deleted by retention on "
                    f"{row.raw_purged_at:%Y-%m-%d}."
                )
            sys.stdout.buffer.write(row.raw)
            sys.stdout.flush()
            return 0
        comment = session.scalar(select(Comment).where(Comment.inbound_email_id == row.id))
        print(f"id:          {row.id}")
        print(f"received at: {row.received_at.isoformat()}")
        print(f"message id:  {row.message_id or '-'}")
        print(f"sender:      <{row.sender}>")
        print(f"status:      {row.status}")
        print(f"reason:      {row.reason or '-'}")
        print(f"attempts:    {row.attempts}")
        print(f"size:        {len(row.raw)} bytes, sha256 {row.sha256}")
        if comment is not None:
            print(f"comment:     #{comment.id}\n")
            print(comment.body)
    return 0


def cmd_inbound_retry(args: argparse.Namespace) -> int:
    """Put failed (or one rejected/ignored) inbound mail back in the queue for the workers."""
    from service.inbox import REPLAYABLE, requeue
    from service.models import InboundEmail

    parts = _components()
    with parts.session_factory.begin() as session:
        if args.failed:
            count = requeue(session)
        else:
            row = session.get(InboundEmail, args.id)
            if row is None:
                raise CommandError(
                    f"no inbound message {args.id}; `replyd inbound list` shows the ids."
                )
            if row.status not in REPLAYABLE:
                raise CommandError(
                    f"inbound message {args.id} is {row.status}; only failed, rejected or ignored "
                    "messages can be retried."
                )
            count = requeue(session, [args.id])
    print(f"requeued {count} message(s); a running `replyd serve` picks them up")
    return 0


def cmd_inbound_purge(args: argparse.Namespace) -> int:
    """Delete the raw source of finished (not failed) inbound mail older than N days."""
    from datetime import timedelta

    from service.models import utcnow
    from service.retention import purge_raw

    parts = _components()
    days = args.older_than if args.older_than is not None else parts.settings.retention_days
    if days <= 0:
        raise CommandError(
            "say how old mail must be: --older-than DAYS, or set REPLYD_RETENTION_DAYS."
        )
    with parts.session_factory.begin() as session:
        count = purge_raw(session, utcnow() - timedelta(days=days))
    print(f"deleted the raw source of {count} message(s) finished over {days} day(s) ago")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    """Print the reply extracted from message files (or bare bodies with --body)."""
    from service.extract import extract_reply

    failures = 0
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            print(f"replyd: cannot read {name}: {exc.strerror}", file=sys.stderr)
            failures += 1
            continue
        if args.body:
            result = extract_reply(
                data.decode("utf-8", errors="replace"), quotes_only=args.quotes_only
            )
        else:
            from service.parse import parse_message

            message = parse_message(data)
            result = extract_reply(message.text, message.html, quotes_only=args.quotes_only)
        if args.json:
            _print_json({"file": name, "reply": result.reply, "elided": result.elided})
        else:
            if len(args.files) > 1:
                print(f"==> {name} <==")
            print(result.reply)
    return 1 if failures else 0


def cmd_digest_send(args: argparse.Namespace) -> int:
    """Queue the last complete period's digests now (safe to repeat: each is sent once)."""
    from service.digest import last_complete_period
    from service.models import utcnow

    parts = _components()
    period = last_complete_period(args.period, utcnow())
    count = parts.digests().send(parts.session_factory, period)
    print(
        f"queued {count} {args.period} digest(s) for {period.start:%Y-%m-%d} to "
        f"{period.end:%Y-%m-%d}; a running `replyd serve` delivers them"
    )
    return 0


DEMO_READER = "reader@example.org"


def _shortest_path(path: Path) -> str:
    """A path relative to the current directory when it lies below it (for printed commands)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_demo(args: argparse.Namespace) -> int:
    """Add a demo post if there are no posts, and print how to send a reply to it."""
    from sqlalchemy import func, select

    from service.addresses import ReplyTarget
    from service.models import Post

    parts = _components()
    settings = parts.settings
    with parts.session_factory.begin() as session:
        if not session.scalar(select(func.count()).select_from(Post)):
            author = _person(session, "author@example.org", "Demo Author")
            session.add(
                Post(
                    slug="demo",
                    title="Hello from replyd",
                    url=f"{settings.base_url}/posts/demo",
                    author_id=author.id,
                )
            )
            session.flush()
            print("added the demo post 'demo' (author: author@example.org)")
        post = session.scalar(select(Post).where(Post.slug == "demo"))
        if post is None:
            return 0
        reader = _person(session, DEMO_READER, "Demo Reader")
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every replyd command."""
    parser = argparse.ArgumentParser(
        prog="replyd", description="Email replies in, blog comments out."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str, sub: Any = commands
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    add("serve", cmd_serve, "run the SMTP listener, workers and outbox until SIGTERM")
    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    add("upgrade", cmd_db_upgrade, "migrate the database to the newest schema", db)

    post = commands.add_parser("post", help="add, close or list posts").add_subparsers(
        dest="post_command", required=True
    )
    post_add = add("add", cmd_post_add, "add a post (or update one with the same id)", post)
    post_add.add_argument("--id", required=True, help="the post's id on the blog")
    post_add.add_argument("--title", required=True)
    post_add.add_argument("--url", required=True)
    post_add.add_argument("--author-email", required=True)
    post_add.add_argument("--author-name", default="")
    post_add.add_argument("--closed", action="store_true", help="refuse replies to this post")
    add("close", cmd_post_close, "refuse further replies to a post", post).add_argument("id")
    add("list", cmd_post_list, "list posts", post).add_argument("--json", action="store_true")

    sub = add("subscribe", cmd_subscribe, "make someone follow a post")
    sub.add_argument("--post", required=True)
    sub.add_argument("--email", required=True)
    sub.add_argument("--digest", choices=["daily", "weekly"], default=None)
    unsub = add("unsubscribe", cmd_unsubscribe, "stop someone's mail about a post")
    unsub.add_argument("--post", required=True)
    unsub.add_argument("--email", required=True)

    address = add("address", cmd_address, "print a person's reply address for a post or comment")
    address.add_argument("--post", required=True)
    address.add_argument("--email", required=True)
    address.add_argument("--comment", type=int, default=None)

    comments = add("comments", cmd_comments, "show a post's comments")
    comments.add_argument("--post", required=True)
    comments.add_argument("--json", action="store_true")

    inbound = commands.add_parser("inbound", help="see and replay received mail").add_subparsers(
        dest="inbound_command", required=True
    )
    inbound_list = add("list", cmd_inbound_list, "list received mail, newest first", inbound)
    inbound_list.add_argument("--status", default=None)
    inbound_list.add_argument("--limit", type=int, default=100)
    inbound_list.add_argument("--json", action="store_true")
    show = add("show", cmd_inbound_show, "show one received message", inbound)
    show.add_argument("id", type=int)
    show.add_argument("--raw", action="store_true", help="print the message source as received")
    retry = add("retry", cmd_inbound_retry, "process failed mail again", inbound)
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?")
    which.add_argument("--failed", action="store_true", help="every failed message")

    purge = add("purge", cmd_inbound_purge, "delete old raw mail (failed mail is kept)", inbound)
    purge.add_argument("--older-than", type=int, default=None, metavar="DAYS")

    extract = add("extract", cmd_extract, "print the reply part of message files")
    extract.add_argument(
        "--body", action="store_true", help="files are bare text bodies, not whole messages"
    )
    extract.add_argument(
        "--quotes-only", action="store_true", help="cut quotes but keep signatures"
    )
    extract.add_argument(
        "--json", action="store_true", help='one {"file", "reply", "elided"} line per file'
    )
    extract.add_argument("files", nargs="+", metavar="FILE")

    digest = commands.add_parser("digest", help="daily and weekly digests").add_subparsers(
        dest="digest_command", required=True
    )
    digest_send = add("send", cmd_digest_send, "queue the last complete period's digests", digest)
    digest_send.add_argument("--period", choices=["daily", "weekly"], required=True)

    add("demo", cmd_demo, "add a demo post if there is none and print how to reply to it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the replyd console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # aiosmtpd's "mail.log" logs every command line, reply addresses (tokens) included.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    from sqlalchemy.exc import OperationalError

    try:
        return int(args.handler(args))
    except CommandError as exc:
        print(f"replyd: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        print(
            f"replyd: the database cannot be used ({exc.orig}); check REPLYD_DATABASE_URL and "
            "run `replyd db upgrade`.",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
