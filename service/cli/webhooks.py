"""`replyd webhooks list` and `replyd webhooks retry`: the outgoing webhook events."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from service.cli.common import AddCommand, CommandError, components, print_json

STATUSES = ("queued", "sending", "delivered", "failed", "cancelled")


def cmd_webhooks_list(args: argparse.Namespace) -> int:
    """List webhook events, newest first: id, type, post, comment, where, status, attempts,
    next attempt and the last error."""
    from service.store.webhook_events import list_events

    parts = components()
    with parts.session_factory() as session:
        lines = list_events(session, args.status, args.limit)
    if args.json:
        print_json([asdict(line) for line in lines])
        return 0
    if not lines:
        which = f"{args.status} " if args.status else ""
        configured = parts.settings.webhooks is not None
        print(
            f"no {which}webhook events" + ("" if configured else " (REPLYD_WEBHOOK_URL is unset)")
        )
        return 0
    print("id\ttype\tpost\tcomment\tendpoint\tstatus\tattempts\tnext attempt\tlast error")
    for e in lines:
        print(
            f"{e.id}\t{e.type}\tpost #{e.post_id}\tcomment #{e.comment_id}\t{e.endpoint}\t"
            f"{e.status}\t{e.attempts}\t{e.next_attempt_at}\t{e.last_error or '-'}"
        )
    return 0


def cmd_webhooks_retry(args: argparse.Namespace) -> int:
    """Send an event again now (same webhook-id), whatever became of it."""
    from service.store.webhook_events import retry_event

    parts = components()
    with parts.session_factory.begin() as session:
        found = retry_event(session, args.id)
    if not found:
        raise CommandError(
            f"there is no webhook event #{args.id}; `replyd webhooks list` shows their ids."
        )
    print(f"webhook event #{args.id} queued again; a running `replyd serve` sends it now")
    return 0


def register(add: AddCommand, commands: Any) -> None:
    """Add `webhooks list` and `webhooks retry` to the parser."""
    webhooks = commands.add_parser(
        "webhooks", help="outgoing webhook events (REPLYD_WEBHOOK_URL)"
    ).add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")
    listing = add("list", cmd_webhooks_list, "list webhook events, newest first", webhooks)
    listing.add_argument("--status", choices=STATUSES, help="only events in this state")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of lines")
    retry = add("retry", cmd_webhooks_retry, "send an event again now", webhooks)
    retry.add_argument("id", type=int, help="the event's id, from `replyd webhooks list`")
