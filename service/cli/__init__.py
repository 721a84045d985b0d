"""The `replyd` command: the parser, and the entry point that turns failures into sentences."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from service.cli import daemon, inbound, ingest, posts
from service.cli.common import CommandError


def _version() -> str:
    try:
        return version("replyd")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every replyd command."""
    parser = argparse.ArgumentParser(
        prog="replyd", description="Email replies in, blog comments out."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action="version", version=f"replyd {_version()}")
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
    ingest.register(add, commands)
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
