"""`replyd person export` and `person forget`: what replyd keeps about someone, and erasing it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from service.cli.common import AddCommand, CommandError, components

# service.store.erasure's COMMENT_CHOICES, written out: building the parser must not load the
# database layer (a test keeps the two equal).
COMMENT_CHOICES = ("keep-anonymous", "delete")


def _address(text: str) -> str:
    """The --email value as replyd stores addresses, or a CommandError saying what to give."""
    email = text.strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or any(ch.isspace() for ch in email):
        raise CommandError(f"{text!r} is not an email address; give one like ann@example.org.")
    return email


def cmd_person_export(args: argparse.Namespace) -> int:
    """Print everything stored about a person as one JSON document."""
    from service.store.engine import READ_ONLY
    from service.store.people import find_holdings
    from service.store.people_export import export_document

    email = _address(args.email)
    parts = components()
    with parts.session_factory() as session:
        session.connection(execution_options={READ_ONLY: True})
        holdings = find_holdings(session, email, parts.book, parts.keyring)
        document = export_document(session, holdings, raw=args.raw)
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


def cmd_person_forget(args: argparse.Namespace) -> int:
    """Erase everything stored about a person; their address is kept only as a salted hash."""
    from service.store.erasure import forget_person

    email = _address(args.email)
    parts = components()
    report = forget_person(
        parts.session_factory,
        parts.engine,
        email,
        parts.book,
        parts.keyring,
        comments=args.comments,
        webhooks=parts.webhook_queue(),
    )
    print(f"forgot {email}: {report.summary()}")
    print("a running `replyd serve` refuses their old reply addresses within a second")
    return 0


def register(add: AddCommand, commands: Any) -> None:
    """Add `person export` and `person forget` to the parser."""
    person = commands.add_parser(
        "person", help="what replyd keeps about someone, and forgetting it"
    ).add_subparsers(dest="person_command", required=True, metavar="COMMAND")
    export = add(
        "export", cmd_person_export, "print everything stored about a person (JSON)", person
    )
    export.add_argument("--email", required=True, help="the person's email address")
    export.add_argument(
        "--raw", action="store_true", help="include the source of each message of theirs"
    )
    forget = add(
        "forget",
        cmd_person_forget,
        "erase everything stored about a person (their address stays only as a salted hash, "
        "so they are never mailed again)",
        person,
    )
    forget.add_argument("--email", required=True, help="the person's email address")
    forget.add_argument(
        "--comments",
        choices=COMMENT_CHOICES,
        default=COMMENT_CHOICES[0],
        help="keep their comments as 'A former reader' with their address and name removed "
        "(default), or delete them (answers by others stay, under a placeholder)",
    )
