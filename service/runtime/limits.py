"""The process's file limit, raised at start; the listeners' connection caps kept below it;
accept errors logged at a bounded rate."""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass, replace
from typing import Any

from service.inbound.connections import Caps, ThrottledLog
from service.runtime.settings import Settings

log = logging.getLogger(__name__)

# Files a running replyd holds besides its client connections: database connections (up
# to 15 pooled per engine, three engines; SQLite's WAL files beside each), pipes to worker
# processes, logs, outbound SMTP (17 measured under the benchmark's load, up to about 90);
# and room for a burst of connections accepted before their refusal closes them (asyncio
# accepts as many at once as the listen queue holds: 100 for SMTP, 128 for HTTP). A flood
# that outruns a starved process may still run it out of files for a moment: asyncio then
# stops accepting for a second, and AcceptErrors logs it once a minute.
RESERVED_FILES = 320
_ACCEPT_ERROR = "socket.accept() out of system resource"


def raise_file_limit() -> int:
    """Raise the soft limit on open files to the hard one (as far as allowed); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.warning("could not raise the open file limit from %s to %s: %s", soft, hard, error)
    return soft


@dataclass(frozen=True)
class ListenerCaps:
    """The connection caps of the SMTP and the HTTP listener."""

    smtp: Caps
    http: Caps


def fit_caps(
    settings: Settings, file_limit: int, reserved: int = RESERVED_FILES
) -> tuple[ListenerCaps, str | None]:
    """The caps of the settings, lowered (in proportion) so that both listeners full still
    leave `reserved` files under the limit; and a warning saying so, if they were lowered."""
    smtp = Caps(settings.max_connections, settings.max_connections_per_client)
    http = Caps(settings.http_max_connections, settings.http_max_connections_per_client)
    wanted = (smtp.total or 0) + (http.total or 0)
    room = max(2, file_limit - reserved)
    note = None
    if wanted > room:
        smtp, http = (_share(caps, room, wanted) for caps in (smtp, http))
        note = (
            f"the open file limit ({file_limit}) leaves room for {room} connections: SMTP "
            f"connections are capped at {smtp.total} (REPLYD_MAX_CONNECTIONS="
            f"{settings.max_connections}), HTTP at {http.total} (REPLYD_HTTP_MAX_CONNECTIONS="
            f"{settings.http_max_connections}); raise the limit (ulimit -n, LimitNOFILE=) for more"
        )
    return ListenerCaps(_per_client_within(smtp), _per_client_within(http)), note


def _share(caps: Caps, room: int, wanted: int) -> Caps:
    if caps.total is None:
        return caps
    return replace(caps, total=max(1, caps.total * room // wanted))


def _per_client_within(caps: Caps) -> Caps:
    if caps.total is None or caps.per_client is None or caps.per_client <= caps.total:
        return caps
    return replace(caps, per_client=caps.total)


class AcceptErrors:
    """A loop exception handler: asyncio's "socket.accept() out of system resource" (EMFILE
    and the like; it comes again every second a listener retries) is logged at most once a
    minute; anything else goes to the handler that was there before."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 60.0) -> None:
        self.previous = loop.get_exception_handler()
        self.throttled = ThrottledLog(log, interval)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Handle one error reported by the loop."""
        if context.get("message") == _ACCEPT_ERROR:
            self.throttled.warning(
                "could not accept a connection (%s): the process is out of file descriptors "
                "or memory; new connections wait in the listen queue",
                context.get("exception"),
            )
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)
