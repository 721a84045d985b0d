"""The SMTP/LMTP session on the wire: LMTP after LHLO and SMTP after EHLO/HELO on one port,
DATA read within the size limit whatever its lines, and caps on connections, commands and time."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from service.inbound.connections import ConnectionCaps, ThrottledLog, refuse
from service.inbound.edge import (
    S451_STORE_FAILED,
    S552_TOO_BIG,
    ReplyEnvelope,
    ReplyHandler,
    ReplySession,
    replies_after_data,
)
from service.inbound.syntax import PLAIN_PATH, with_enhanced_code

log = logging.getLogger(__name__)

S354_GO_AHEAD = "354 End data with <CR><LF>.<CR><LF>"
S421_CAPPED = "421 4.7.0 {host} {reason}"
S421_TIMEOUT = "421 4.4.2 {host} Error: timeout exceeded"
S421_SESSION_TOO_LONG = "421 4.4.2 {host} This session has lasted too long; please reconnect"
S421_TOO_MANY_COMMANDS = "421 4.7.0 {host} Too many commands in one session; please reconnect"
S500_LINE_TOO_LONG = "500 5.5.2 Line too long (see RFC 5321 4.5.3.1.6)"
# Forever, for a limit that is off: asyncio's timers want a number.
FOREVER_SECONDS = 365 * 86400.0


@dataclass(frozen=True)
class SessionLimits:
    """How long a session may sit idle (like Postfix's smtpd_timeout: each command or piece
    of DATA starts it again), how long it may last in all, and how many commands it may
    send without delivering a message (None: no limit)."""

    idle_seconds: float | None = 300.0
    session_seconds: float | None = 600.0
    max_commands: int | None = 1000


class _Refused(Exception):
    """DATA was refused and answered; the session goes on (or was dropped)."""


class ReplyProtocol(SMTP):
    """One connection to the edge, SMTP or LMTP as its client greets, within its limits."""

    # RFC 5321 allows 1000 octets; broken clients send longer lines and their replies
    # are still worth having, so lines up to 128 KiB are taken.
    line_length_limit = 128 * 1024

    def __init__(
        self,
        handler: Any,
        *,
        hostname: str,
        max_message_bytes: int = 10 * 1024 * 1024,
        lmtp_greeting: bool = False,
        caps: ConnectionCaps | None = None,
        limits: SessionLimits = SessionLimits(),
        refused_log: ThrottledLog | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # hostname given: otherwise aiosmtpd calls getfqdn() on every connection.
        super().__init__(
            handler,
            hostname=hostname,
            # REPLYD_PROTOCOL only chooses the greeting: the client's LHLO or EHLO decides.
            ident="LMTP replyd" if lmtp_greeting else "ESMTP replyd",
            data_size_limit=max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=limits.idle_seconds or FOREVER_SECONDS,
            loop=loop,
        )
        self.max_message_bytes = max_message_bytes
        self.caps = caps
        self.limits = limits
        self.refused_log = refused_log
        self._client: str | None = None  # set once the connection is admitted under the caps
        self._refused = False
        self._commands = 0
        self._session_timer: asyncio.TimerHandle | None = None
        self._answering = False  # a DATA reply is on its way: the timers wait for it
        self._in_data = False
        self._last_read = 0.0  # loop time of the last piece of DATA read
        self._closing_reply: str | None = None  # what to say after it, before hanging up
        if limits.max_commands is not None:
            self._smtp_methods = {
                name: self._counted(method) for name, method in self._smtp_methods.items()
            }

    def _create_session(self) -> Session:
        return ReplySession(self.loop)

    def _create_envelope(self) -> Envelope:
        return ReplyEnvelope()

    # --- the connection: caps, and how long it may last ----------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection under the caps (or say 421 and hang up), then greet."""
        if self._client is None:
            peer = transport.get_extra_info("peername")
            client = str(peer[0]) if peer else ""
            reason = self.caps.admit(client) if self.caps is not None else None
            if reason is not None:
                self._refused = True
                self._count_refusal("421 4.7.0")
                if self.refused_log is not None:
                    self.refused_log.warning("refused SMTP connections with 421: %s", reason)
                reply = S421_CAPPED.format(host=self.hostname, reason=reason)
                refuse(transport, reply.encode() + b"\r\n")
                return
            self._client = client
        super().connection_made(transport)
        assert isinstance(self.session, ReplySession)
        self.session.client = self._client
        if self.limits.session_seconds is not None:
            self._session_timer = self.loop.call_later(
                self.limits.session_seconds,
                self._hang_up,
                S421_SESSION_TOO_LONG.format(host=self.hostname),
            )

    def connection_lost(self, error: Exception | None) -> None:
        """Release the connection's place under the caps."""
        if self._refused:
            return
        if self._session_timer is not None:
            self._session_timer.cancel()
        if self.caps is not None and self._client is not None:
            self.caps.release(self._client)
            self._client = None
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        """Read a connection's bytes, unless it was refused (they are not wanted)."""
        if not self._refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        """The client closed its side: end the session (nothing to do for a refused one)."""
        if self._refused:
            return False
        return super().eof_received()

    def _timeout_cb(self) -> None:
        """Idle too long: say so, as Postfix does, and hang up. While DATA arrives the timer
        runs from the last piece read (a timer per line would cost the edge more than the line)."""
        idle = self.limits.idle_seconds
        if self._in_data and idle is not None:
            quiet = self.loop.time() - self._last_read
            if quiet < idle:
                self._reset_timeout(idle - quiet)
                return
        self._hang_up(S421_TIMEOUT.format(host=self.hostname))

    def _hang_up(self, reply: str) -> None:
        """Send a 421 and close; after the DATA reply, if one is being prepared (a message
        being stored must get its answer, or its sender sends it again)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self._answering:
            self._closing_reply = reply
            return
        self._count_refusal(" ".join(reply.split(" ", 2)[:2]))
        assert isinstance(self.transport, asyncio.WriteTransport)
        self.transport.write(reply.encode() + b"\r\n")
        self._hang_up_now()

    def _counted(
        self, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        """`method`, counting towards the session's limit of commands between messages
        accepted (its syntax kept for HELP)."""
        limit = self.limits.max_commands
        assert limit is not None

        @functools.wraps(method)
        async def counted(arg: str | None) -> None:
            self._commands += 1
            if self._commands > limit:
                self._hang_up(S421_TOO_MANY_COMMANDS.format(host=self.hostname))
                return
            await method(arg)

        return counted

    def _count_refusal(self, code: str) -> None:
        refusals = getattr(self.event_handler, "refusals", None)
        if refusals is not None:
            refusals[code] += 1

    # --- replies and greetings -------------------------------------------------------------

    async def push(self, status: Any) -> None:
        """Send a reply line, adding the enhanced code aiosmtpd leaves out; count refusals."""
        if isinstance(status, str) and status[:1] in ("4", "5"):
            if "\r\n" not in status:  # several lines (LMTP's replies to DATA) are ours
                status = with_enhanced_code(status, self.max_message_bytes)
            self._count_refusal(" ".join(status.split(" ", 2)[:2]))
        await super().push(status)

    @syntax("LHLO hostname")
    async def smtp_LHLO(self, hostname: str) -> None:
        """The LMTP greeting (RFC 2033): this session answers DATA once per recipient."""
        await super().smtp_EHLO(hostname)
        assert isinstance(self.session, ReplySession)
        self.session.lmtp = bool(self.session.host_name)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        """The ESMTP greeting: an SMTP session, whatever REPLYD_PROTOCOL says."""
        assert isinstance(self.session, ReplySession)
        self.session.lmtp = False
        await super().smtp_EHLO(hostname)

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        """The SMTP greeting."""
        assert isinstance(self.session, ReplySession)
        self.session.lmtp = False
        await super().smtp_HELO(hostname)

    local_part_limit: int

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The address of a MAIL or RCPT path and what follows it, as aiosmtpd's own parser
        gives them; the usual <local@domain> is read with one regular expression.

        aiosmtpd parses every path with the email package's RFC 5322 parser, and builds a
        class on each call: that was a quarter of the edge's CPU per message.
        """
        plain = PLAIN_PATH.match(arg)
        if plain is None:
            return super()._getaddr(arg)
        address, rest = plain.groups()
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    # --- DATA ----------------------------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """Read the message within REPLYD_MAX_MESSAGE_BYTES, store it, answer.

        aiosmtpd's own DATA kept every piece of an over-long line until its CRLF came, and
        only counted the size: 200 MiB without a line end took 200 MiB of memory.
        """
        if await self.check_helo_needed():
            return
        assert self.envelope is not None and self.session is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push(S354_GO_AHEAD)
        self._in_data, self._last_read = True, self.loop.time()
        try:
            content = await self._read_content()
        except _Refused:
            self._set_post_data_state()
            return
        finally:
            self._in_data = False
        self.envelope.content = self.envelope.original_content = content
        self._answering = True
        try:
            status = await self._call_handler_hook("DATA")
        except Exception as error:  # still one answer per recipient, never aiosmtpd's 500
            log.error("error storing a message: %r", error)
            status = replies_after_data(self.session, self.envelope, S451_STORE_FAILED)
        finally:
            self._answering = False
        self._set_post_data_state()
        if status.startswith("250"):
            self._commands = 0  # a session that delivers mail is not wasting commands
        await self.push(status)
        if self._closing_reply is not None:
            self._hang_up(self._closing_reply)

    async def _read_content(self) -> bytes:
        """The message up to the lone dot, dot-unstuffed (RFC 5321 4.5.2); raises _Refused
        once it has answered a message that is too big (and hung up) or has too long a line.

        Memory is bounded by the size limit: lines are counted as their pieces arrive, an
        over-long line is dropped piece by piece, and the connection is dropped as soon as
        the message is over the limit (Postfix's message_size_limit, counted while reading).
        """
        assert self.envelope is not None and self.session is not None
        limit = self.max_message_bytes
        lines: list[bytes] = []
        pieces: list[bytes] = []  # of the current line, until its CRLF comes
        pending = 0  # bytes in pieces
        size = 0
        too_long = False
        at_line_start = True
        reader = self._reader
        clock = self.loop.time
        while True:
            try:
                piece = await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as over:
                # No CRLF within the reader's limit: take what it holds as part of a line.
                piece = await reader.read(over.consumed)
            except asyncio.IncompleteReadError:
                raise _Refused from None  # the client went away
            self._last_read = clock()  # progress, as Postfix's smtpd_timeout counts it
            if at_line_start and piece == b".\r\n":
                break
            size += len(piece)
            if size > limit:
                too_big = S552_TOO_BIG.format(limit=limit)
                await self.push(replies_after_data(self.session, self.envelope, too_big))
                self._hang_up_now()
                raise _Refused
            at_line_start = piece.endswith(b"\r\n")
            if too_long:
                continue
            pending += len(piece)
            if pending > self.line_length_limit:
                too_long = True  # read on to the end, keeping nothing
                lines.clear()
                pieces.clear()
            elif at_line_start:
                if pieces:
                    pieces.append(piece)
                    piece = b"".join(pieces)
                    pieces.clear()
                lines.append(piece)
                pending = 0
            else:
                pieces.append(piece)
        if too_long:
            await self.push(replies_after_data(self.session, self.envelope, S500_LINE_TOO_LONG))
            raise _Refused
        content = b"".join(lines)
        # Transparency: a line starting with a dot had one more dot put in front of it.
        if content.startswith(b"."):
            content = content[1:]
        return content.replace(b"\r\n.", b"\r\n")

    def _hang_up_now(self) -> None:
        """Close the connection after what was written, and end the session's command loop
        (as QUIT does): what the client sent after is never read."""
        if self.transport is not None:
            self.transport.close()
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()


def make_protocol(
    handler: ReplyHandler,
    protocol: str,
    hostname: str,
    *,
    caps: ConnectionCaps | None = None,
    limits: SessionLimits = SessionLimits(),
    refused_log: ThrottledLog | None = None,
) -> SMTP:
    """One protocol instance per connection, as asyncio's create_server wants."""
    return ReplyProtocol(
        handler,
        hostname=hostname,
        max_message_bytes=handler.max_message_bytes,
        lmtp_greeting=protocol == "lmtp",
        caps=caps,
        limits=limits,
        refused_log=refused_log,
    )
