"""`replyd inbound`, `extract` and `digest`: see and replay mail, try extraction, send digests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.cli.common import (
    AddCommand,
    CommandError,
    components,
    print_json,
    row_id,
    whole_number,
)
from service.controls import escape_controls, escape_controls_line


def cmd_inbound_list(args: argparse.Namespace) -> int:
    """List stored inbound mail, newest first."""
    from sqlalchemy import select

    from service.store.models import InboundEmail, InboundStatus

    if args.status and args.status not in set(InboundStatus):
        raise CommandError(
            f"unknown status {args.status!r}; use one of {', '.join(InboundStatus)}."
        )
    parts = components()
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
                "reason_code": r.reason_code,
                "attempts": r.attempts,
                "via": r.via,
            }
            for r in session.scalars(query)
        ]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            # Senders and reasons come from strangers' mail: escaped, so no row can hold
            # terminal escape sequences or pose as several.
            sender = escape_controls_line(row["sender"])
            reason = escape_controls_line(row["reason"] or "")
            print(f"{row['id']}\t{row['received_at'][:19]}\t{row['status']}\t<{sender}>\t{reason}")
    return 0


def cmd_inbound_show(args: argparse.Namespace) -> int:
    """Show one inbound message: its state, or its raw source with --raw."""
    from sqlalchemy import select

    from service.store.models import Comment, InboundEmail

    parts = components()
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
            if sys.stdout.isatty():
                # On a terminal, the source is shown, never acted on; piped, it is exact.
                text = row.raw.decode("utf-8", "backslashreplace")
                sys.stdout.write(escape_controls(text.replace("\r\n", "\n")))
            else:
                sys.stdout.buffer.write(row.raw)
            sys.stdout.flush()
            return 0
        comment = session.scalar(select(Comment).where(Comment.inbound_email_id == row.id))
        print(f"id:          {row.id}")
        print(f"received at: {row.received_at.isoformat()}")
        print(f"message id:  {escape_controls_line(row.message_id or '-')}")
        print(f"sender:      <{escape_controls_line(row.sender)}>")
        print(f"via:         {row.via}")
        print(f"status:      {row.status}")
        print(f"reason:      {escape_controls_line(row.reason or '-')}")
        print(f"reason code: {row.reason_code or '-'}")
        print(f"attempts:    {row.attempts}")
        print(f"size:        {len(row.raw)} bytes, sha256 {row.sha256}")
        if comment is not None:
            print(f"comment:     #{comment.id} ({comment.status})\n")
            print(escape_controls(comment.body))
    return 0


def cmd_inbound_retry(args: argparse.Namespace) -> int:
    """Put failed (or one rejected/ignored) inbound mail back in the queue for the workers."""
    from service.inbound.queue import REPLAYABLE, requeue
    from service.store.models import InboundEmail

    parts = components()
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

    from service.store.models import utcnow
    from service.store.retention import purge_notices, purge_raw

    parts = components()
    days = args.older_than if args.older_than is not None else parts.settings.retention_days
    if days <= 0:
        raise CommandError(
            "say how old mail must be: --older-than DAYS, or set REPLYD_RETENTION_DAYS."
        )
    with parts.session_factory.begin() as session:
        purge_notices(session, utcnow() - timedelta(days=days))
        count = purge_raw(session, utcnow() - timedelta(days=days), failed=args.failed)
    which = "failed or finished" if args.failed else "finished"
    print(f"deleted the raw source of {count} message(s) {which} over {days} day(s) ago")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    """Print the reply extracted from message files (or bare bodies with --body)."""
    from service.extraction.extract import extract_reply

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
            from service.inbound.parse import parse_message

            message = parse_message(data)
            result = extract_reply(message.text, message.html, quotes_only=args.quotes_only)
        if args.json:
            print_json({"file": name, "reply": result.reply, "elided": result.elided})
        else:
            if len(args.files) > 1:
                print(f"==> {name} <==")
            print(result.reply)
    return 1 if failures else 0


def cmd_digest_send(args: argparse.Namespace) -> int:
    """Queue now, for everyone taking `--period` digests, what is new since their last digest
    (safe to repeat: each comment goes out once per person)."""
    parts = components()
    settings = parts.settings
    count = parts.digests().send(parts.session_factory, args.period)
    print(
        f"queued {count} {args.period} digest(s) of what is new since each person's last one; "
        "a running `replyd serve` delivers them"
    )
    # The digests are written here, with this shell's settings, not the daemon's: say which.
    print(
        f"rendered with this shell's settings: site name {settings.site_name!r} "
        f"(REPLYD_SITE_NAME), base URL {settings.base_url} (REPLYD_BASE_URL)"
    )
    return 0


def register(add: AddCommand, commands: Any) -> None:
    """Add inbound, extract and digest to the parser."""
    inbound = commands.add_parser("inbound", help="see and replay received mail").add_subparsers(
        dest="inbound_command", required=True, metavar="COMMAND"
    )
    inbound_list = add("list", cmd_inbound_list, "list received mail, newest first", inbound)
    inbound_list.add_argument(
        "--status",
        default=None,
        help="only mail in this state: received, processing, processed, ignored, rejected, failed",
    )
    inbound_list.add_argument(
        "--limit",
        type=whole_number(1, 1_000_000, "a limit"),
        default=100,
        help="at most this many (default 100)",
    )
    inbound_list.add_argument("--json", action="store_true", help="one JSON array")
    show = add("show", cmd_inbound_show, "show one received message", inbound)
    show.add_argument("id", type=row_id, help="the message's id, from `replyd inbound list`")
    show.add_argument("--raw", action="store_true", help="print the message source as received")
    retry = add("retry", cmd_inbound_retry, "process failed mail again", inbound)
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "id", type=row_id, nargs="?", help="one failed, rejected or ignored message's id"
    )
    which.add_argument("--failed", action="store_true", help="every failed message")

    purge = add(
        "purge",
        cmd_inbound_purge,
        "delete old raw mail (failed mail is kept unless --failed)",
        inbound,
    )
    purge.add_argument(
        "--older-than",
        type=whole_number(0, 36500, "a number of days"),
        default=None,
        metavar="DAYS",
        help="finished more than DAYS days ago (default: REPLYD_RETENTION_DAYS)",
    )
    purge.add_argument(
        "--failed",
        action="store_true",
        help="also failed mail (kept otherwise, so it can be retried): give up on it",
    )

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
    extract.add_argument("files", nargs="+", metavar="FILE", help=".eml files (or bodies)")

    digest = commands.add_parser("digest", help="daily and weekly digests").add_subparsers(
        dest="digest_command", required=True, metavar="COMMAND"
    )
    digest_send = add(
        "send", cmd_digest_send, "queue digests of what is new since each person's last", digest
    )
    digest_send.add_argument(
        "--period", choices=["daily", "weekly"], required=True, help="which digests to send"
    )
