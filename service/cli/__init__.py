"""The `replyd` command: the parser, and the entry point that turns failures into sentences."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from service.cli import (
    daemon,
    feed,
    imports,
    inbound,
    ingest,
    moderation,
    people,
    posts,
    webhooks,
)
from service.cli.common import CommandError, collect_rarely
from service.files import keep_files_private


class _Version(argparse.Action):
    """--version: looks the version up only when asked (importlib.metadata costs every command
    a few hundredths of a second)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("replyd")
        except PackageNotFoundError:  # run from a checkout that was never installed
            number = "unknown"
        print(f"replyd {number}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every replyd command."""
    parser = argparse.ArgumentParser(
        prog="replyd", description="Email replies in, blog comments out."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action=_Version, help="print replyd's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str, sub: Any = commands
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    daemon.register(add, commands)
    posts.register(add, commands)
    inbound.register(add, commands)
    moderation.register(add, commands)
    ingest.register(add, commands)
    people.register(add, commands)
    feed.register(add, commands)
    imports.register(add, commands)
    webhooks.register(add, commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the replyd console script (it sets how this process collects garbage)."""
    collect_rarely()
    try:
        return _run(argv)
    finally:
        # The process ends next: the collection Python runs on the way out would walk every
        # object loaded, to free nothing that the process's end does not free anyway.
        gc.freeze()


def _run(argv: Sequence[str] | None) -> int:
    """Parse the command line and run the command, its failures turned into sentences."""
    args = build_parser().parse_args(argv)
    keep_files_private()  # the database, the secret, the outbox Maildir: this user's only
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # aiosmtpd's "mail.log" logs every command line, reply addresses (tokens) included.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    from sqlalchemy.exc import OperationalError

    from service.store.engine import DriverMissing

    try:
        return int(args.handler(args))
    except (CommandError, DriverMissing) as exc:
        print(f"replyd: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        print(
            f"replyd: the database cannot be used ({exc.orig}); check REPLYD_DATABASE_URL and "
            "run `replyd db upgrade`.",
            file=sys.stderr,
        )
        return 2
