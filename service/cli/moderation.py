"""`replyd comment approve|hide|restore|delete|log`, `block`, `unblock` and `blocks list`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from service.cli.common import AddCommand, CommandError, components, print_json

if TYPE_CHECKING:
    from service.moderation.log import Actor

# What each command says it did, by the status a comment ends in.
_DONE = {
    "approve": "approved",
    "hide": "hid",
    "restore": "restored",
    "delete": "deleted",
}


def cli_actor() -> Actor:
    """Who runs the command, as the moderation log names them: the operating-system user."""
    import getpass

    from service.moderation.log import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no password entry (some containers)
        user = "operator"
    return Actor(user, "cli")


def cmd_comment(args: argparse.Namespace) -> int:
    """Approve, hide, restore or delete one comment, with the same effects as everywhere."""
    from service.moderation.actions import ModerationError

    parts = components()
    moderation = parts.moderation()
    action = args.comment_command
    try:
        with parts.session_factory.begin() as session:
            change = getattr(moderation, action)(session, args.id, cli_actor())
    except ModerationError as exc:
        hint = "; `replyd comments --post P --status all` shows the ids" if exc.missing else ""
        raise CommandError(f"{exc}{hint}.") from None
    if not change.changed:
        print(f"comment #{change.comment_id} was {change.after} already; nothing to do")
        return 0
    said = f"{_DONE[action]} comment #{change.comment_id}: {change.before} -> {change.after}"
    if change.notified:
        said += f"; {change.notified} notification(s) queued (a running `replyd serve` sends them)"
    if change.cancelled:
        said += f"; {change.cancelled} queued mail(s) cancelled"
    print(said)
    return 0


def cmd_comment_log(args: argparse.Namespace) -> int:
    """Show the moderation log, newest first: of one comment, or of everything."""
    from sqlalchemy import select

    from service.store.models import ModerationEvent

    parts = components()
    query = select(ModerationEvent).order_by(ModerationEvent.id.desc()).limit(args.limit)
    if args.id is not None:
        query = query.where(ModerationEvent.comment_id == args.id)
    with parts.session_factory() as session:
        rows: list[dict[str, Any]] = [
            {
                "at": e.created_at.isoformat(),
                "comment_id": e.comment_id,
                "action": e.action,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "by": e.actor,
                "via": e.via,
                "note": e.note,
            }
            for e in session.scalars(query)
        ]
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        what = f"#{row['comment_id']}" if row["comment_id"] is not None else "-"
        moved = f"{row['from_status'] or ''}->{row['to_status']}" if row["to_status"] else ""
        print(
            f"{row['at'][:19]}\t{what}\t{row['action']}\t{moved}\t"
            f"{row['by']} ({row['via']})\t{row['note']}"
        )
    return 0


def _kind_and_value(args: argparse.Namespace) -> tuple[str, str]:
    return ("email", args.email) if args.email else ("domain", args.domain)


def cmd_block(args: argparse.Namespace) -> int:
    """Refuse a sender's (or a domain's) mail silently, and remove their held comments."""
    from service.moderation.blocks import block

    kind, value = _kind_and_value(args)
    parts = components()
    try:
        with parts.session_factory.begin() as session:
            new, removed = block(session, parts.moderation(), kind, value, cli_actor())
    except ValueError as exc:
        raise CommandError(f"{exc}.") from None
    state = "blocked" if new else "was blocked already:"
    print(f"{state} {kind} {value.strip().lower()}; {len(removed)} held comment(s) removed")
    return 0


def cmd_unblock(args: argparse.Namespace) -> int:
    """Lift a block (comments it removed stay hidden; restore them one by one)."""
    from service.moderation.blocks import unblock

    kind, value = _kind_and_value(args)
    parts = components()
    try:
        with parts.session_factory.begin() as session:
            gone = unblock(session, kind, value, cli_actor())
    except ValueError as exc:
        raise CommandError(f"{exc}.") from None
    if not gone:
        raise CommandError(f"{kind} {value} is not blocked; `replyd blocks list` shows the blocks.")
    print(f"unblocked {kind} {value.strip().lower()}")
    return 0


def cmd_blocks_list(args: argparse.Namespace) -> int:
    """List the blocks, oldest first."""
    from service.moderation.blocks import all_blocks

    parts = components()
    with parts.session_factory() as session:
        rows = [
            {
                "kind": b.kind,
                "value": b.value,
                "created_at": b.created_at.isoformat(),
                "by": b.actor,
            }
            for b in all_blocks(session)
        ]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            print(f"{row['kind']}\t{row['value']}\t{row['created_at'][:19]}\t{row['by']}")
    return 0


def _who(command: argparse.ArgumentParser) -> None:
    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument("--email", help="one sender's address")
    which.add_argument("--domain", help="a domain (its subdomains too)")


def register(add: AddCommand, commands: Any) -> None:
    """Add comment, block, unblock and blocks to the parser."""
    comment = commands.add_parser(
        "comment", help="approve, hide, restore or delete a comment"
    ).add_subparsers(dest="comment_command", required=True, metavar="COMMAND")
    helps = {
        "approve": "publish a held comment; its followers are mailed now",
        "hide": "remove a comment from everywhere, restorably; its queued mail is cancelled",
        "restore": "bring a hidden comment back as it was, without mailing anyone again",
        "delete": "delete a comment's text for good (answers under it stay)",
    }
    for name, help_text in helps.items():
        command = add(name, cmd_comment, help_text, comment)
        command.add_argument("id", type=int, help="the comment's id, from `replyd comments`")
    history = add("log", cmd_comment_log, "show the moderation log, newest first", comment)
    history.add_argument("id", type=int, nargs="?", help="only this comment's entries")
    history.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    history.add_argument("--json", action="store_true", help="one JSON array instead of lines")

    _who(add("block", cmd_block, "refuse a sender's mail silently; remove their held comments"))
    _who(add("unblock", cmd_unblock, "lift a block"))
    blocks = commands.add_parser("blocks", help="blocked senders").add_subparsers(
        dest="blocks_command", required=True, metavar="COMMAND"
    )
    listing = add("list", cmd_blocks_list, "list blocked addresses and domains", blocks)
    listing.add_argument("--json", action="store_true", help="one JSON array instead of lines")
