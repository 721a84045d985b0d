"""Who may hold a connection: caps per client address and in total; logs at a bounded rate."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Caps:
    """How many connections one listener holds at once: in total, and from one client address
    (None: no cap)."""

    total: int | None
    per_client: int | None


class ConnectionCaps:
    """Counts the open connections of one listener by client address, and says when one more
    would be over a cap (Postfix's smtpd_client_connection_count_limit, and a total)."""

    def __init__(self, caps: Caps) -> None:
        self.caps = caps
        self.open = 0
        self.by_client: dict[str, int] = {}

    def admit(self, client: str) -> str | None:
        """Count a new connection from `client`; or the reason it is refused (then not counted)."""
        total, per_client = self.caps.total, self.caps.per_client
        if total is not None and self.open >= total:
            return "Too many connections to this server; please try again later"
        held = self.by_client.get(client, 0)
        if per_client is not None and held >= per_client:
            return "Too many connections from your address; please try again later"
        self.open += 1
        self.by_client[client] = held + 1
        return None

    def release(self, client: str) -> None:
        """Forget one connection admitted from `client`, now closed."""
        self.open -= 1
        held = self.by_client.get(client, 0) - 1
        if held > 0:
            self.by_client[client] = held
        else:
            # Dropped at zero, so the map only ever holds clients with open connections.
            self.by_client.pop(client, None)


def refuse(transport: asyncio.BaseTransport, answer: bytes) -> None:
    """Answer a connection that was not admitted, and close it.

    What the client already sent is read and dropped first (up to 64 KiB): a socket closed
    with unread data is reset at once, and its answer, still unsent, is lost with it.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            for _ in range(4):
                if not os.read(sock.fileno(), 16384):
                    break
        except OSError:  # nothing more to read (or the client has gone)
            pass
    assert isinstance(transport, asyncio.WriteTransport)
    transport.write(answer)
    transport.close()


class ThrottledLog:
    """Writes one kind of log line at most once per interval, saying how many were left out
    in between: a flood of refusals or accept errors must not become a flood of log."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: float | None = None
        self._left_out = 0

    def warning(self, message: str, *args: object) -> bool:
        """Log the warning unless one was logged within the interval; True if it was."""
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            self._left_out += 1
            return False
        if self._left_out:
            message += " (%s more like it since the last such line were not logged)"
            args = (*args, self._left_out)
        self.logger.warning(message, *args)
        self._last = now
        self._left_out = 0
        return True
