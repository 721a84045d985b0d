"""`replyd ingest`: one message on stdin from an MTA's pipe (Postfix pipe(8), Exim's pipe
transport), taken in as the SMTP edge takes it; the exit code tells the MTA what to do."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import IO, Any

from service.cli.common import AddCommand

# sysexits.h, as sendmail, Postfix's pipe(8) and Exim read them.
EX_OK = 0
EX_DATAERR = 65  # the message itself is unacceptable (too big, unreadable): bounce it
EX_NOUSER = 67  # no recipient is one of our addresses: bounce it
EX_TEMPFAIL = 75  # try again later (store unavailable, over a rate limit, misconfigured)

_CHUNK = 64 * 1024


def read_message(stream: IO[bytes], limit: int) -> bytes:
    """The message on `stream`, at most `limit` + 1 bytes of it kept (one more says "too
    big"); the rest is read and dropped, so the MTA never writes into a closed pipe."""
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        while stream.read(_CHUNK):
            pass
    return raw


def _say(*lines: str) -> None:
    for line in lines:
        print(line, file=sys.stderr)
    sys.stderr.flush()


def cmd_ingest(args: argparse.Namespace) -> int:
    """Store the message on stdin for its recipients; exit 0, 65, 67 or 75 (sysexits)."""
    # Only what storing needs is imported: an MTA starts this once per message.
    import asyncio

    from service.cli.common import CommandError, read_settings
    from service.inbound.intake import Intake
    from service.inbound.queue import GroupCommit
    from service.inbound.recipients import envelope_sender, header_recipients, header_sender
    from service.inbound.stored_limits import StoredMailLimits
    from service.runtime.components import Components
    from service.store.schema import SchemaNotReady, check_schema

    if not args.verbose:
        # An MTA puts what this writes into the bounce or its log: only the answer belongs there.
        logging.getLogger().setLevel(logging.WARNING)
    try:
        settings = read_settings()
        parts = Components.build(settings)
    except CommandError as exc:
        # Temporary: the MTA keeps the message while the operator fixes the setting.
        _say(f"replyd: {exc}", _KEPT)
        return EX_TEMPFAIL
    except Exception as exc:
        _say(f"replyd: cannot open the database ({type(exc).__name__}: {exc}).", _KEPT)
        return EX_TEMPFAIL
    try:
        raw = read_message(sys.stdin.buffer, settings.max_message_bytes)
    except OSError as exc:
        _say(f"replyd: the message could not be read from standard input: {exc.strerror}")
        return EX_DATAERR
    recipients = args.recipient or header_recipients(parts.book, raw)
    sender = envelope_sender(args.sender) if args.sender is not None else header_sender(raw)
    intake = Intake(
        parts.book,
        parts.keyring,
        GroupCommit(parts.engine),
        StoredMailLimits(parts.engine, settings.rate_limits),
        max_message_bytes=settings.max_message_bytes,
        max_recipients=settings.max_recipients,
    )
    try:
        check_schema(parts.engine)
        taken = asyncio.run(intake.take(raw, sender, recipients, "pipe"))
    except SchemaNotReady as exc:
        _say(f"replyd: {exc}", _KEPT)
        return EX_TEMPFAIL
    except Exception as exc:
        _say(f"replyd: could not store the message ({type(exc).__name__}).", _KEPT)
        return EX_TEMPFAIL
    finally:
        parts.engine.dispose()
    _say(*taken.sentences)
    return _EXIT_FOR[taken.verdict]


_KEPT = "replyd: the MTA keeps the message and tries again later."
# By verdict (service.inbound.intake.Verdict, a str).
_EXIT_FOR: dict[str, int] = {
    "stored": EX_OK,
    "refused": EX_NOUSER,
    "limited": EX_TEMPFAIL,
    "too_big": EX_DATAERR,
    "unreadable": EX_DATAERR,
}


def register(add: AddCommand, commands: Any) -> None:
    """Add ingest to the parser."""
    ingest = add(
        "ingest",
        cmd_ingest,
        "store one message from standard input, for an MTA's pipe transport "
        "(exit 0 stored, 65 unreadable or too big, 67 no such reply address, 75 try later)",
    )
    ingest.add_argument(
        "--recipient",
        action="append",
        default=[],
        metavar="ADDR",
        help="an envelope recipient (repeatable; default: Delivered-To, X-Original-To or To)",
    )
    ingest.add_argument(
        "--sender",
        default=None,
        metavar="ADDR",
        help="the envelope sender, empty for a bounce (default: Return-Path, else From)",
    )
