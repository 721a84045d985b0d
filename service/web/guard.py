"""HTTP connections under caps, and requests that must arrive in time.

uvicorn reads a request's header for as long as the client takes, and its limit_concurrency
only answers 503 once a header has arrived: 500 half-sent requests held 500 connections
(and file descriptors) until their clients gave up. Here a connection over a cap is answered
503 at once, and a request not in within the timeout (header and body) gets 408 and is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.inbound.connections import ConnectionCaps, ThrottledLog, refuse


def _plain_response(status: str, sentence: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 response that closes the connection, written before any request
    was read (so no framework is there to write it)."""
    body = (sentence + "\n").encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


OVER_CAP = "503 Service Unavailable"
# How long a connection over a cap may take to send its request, which is read (and thrown
# away) before the 503: a socket closed with unread data is reset, and the 503 lost with it.
REFUSAL_WAIT_SECONDS = 1.0
TOO_SLOW = _plain_response(
    "408 Request Timeout", "The request did not arrive in time; please send it again."
)


def guarded_protocol(
    caps: ConnectionCaps | None,
    request_timeout: float | None,
    refused_log: ThrottledLog | None = None,
) -> type[H11Protocol]:
    """uvicorn's h11 protocol with these caps and this request timeout (None: none)."""

    class GuardedH11Protocol(H11Protocol):
        """One HTTP connection, admitted under the caps, each request within the timeout."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._client: str | None = None
            self._refusal: bytes | None = None  # the 503 of a connection over a cap
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            """Admit the connection (or answer 503 once its request is in, and close); the
            first request's clock starts."""
            peer = transport.get_extra_info("peername")
            client = str(peer[0]) if peer else ""
            reason = caps.admit(client) if caps is not None else None
            if reason is not None:
                if refused_log is not None:
                    refused_log.warning("refused HTTP connections with 503: %s", reason)
                self.transport = transport
                self._refusal = _plain_response(OVER_CAP, reason + ".", "retry-after: 5\r\n")
                self._deadline = self.loop.call_later(REFUSAL_WAIT_SECONDS, self._refuse)
                return
            self._client = client
            super().connection_made(transport)
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            """Release the connection's place under the caps."""
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if self._refusal is not None:
                return
            if caps is not None and self._client is not None:
                caps.release(self._client)
                self._client = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            """Read the bytes of an admitted connection; a request's clock starts with its
            first byte and stops once all of it is in. A refused one is answered now."""
            if self._refusal is not None:
                self._refuse()
                return
            super().data_received(data)
            self._watch()

        def eof_received(self) -> None:
            """The client stopped sending: a refused connection is answered now."""
            if self._refusal is not None:
                self._refuse()
                return
            super().eof_received()

        def _refuse(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if self._refusal is not None and not self.transport.is_closing():
                refuse(self.transport, self._refusal)

        def _watch(self) -> None:
            if request_timeout is None or self.transport.is_closing():
                return
            arriving = self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
            if arriving and self._deadline is None:
                self._deadline = self.loop.call_later(request_timeout, self._too_slow)
            elif not arriving and self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            """The request took too long to arrive: 408 if nothing has been answered yet."""
            self._deadline = None
            if self.transport.is_closing():
                return
            if self.conn.our_state is h11.IDLE:
                refuse(self.transport, TOO_SLOW)
            else:
                self.transport.close()

    return GuardedH11Protocol
