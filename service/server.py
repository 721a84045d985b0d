"""The daemon: SMTP edge, inbound workers and the outbox in one process, drained on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.addresses import AddressBook, Keyring
from service.config import Settings
from service.db import check_schema, make_engine, make_sessionmaker
from service.digest import PERIODS, Digests, last_complete_period
from service.http import HttpServer
from service.inbox import claim_next, store_received
from service.models import utcnow
from service.notices import RejectionNotices
from service.notify import Notifier
from service.outbox import Outbox, Parcel
from service.pipeline import Pipeline
from service.ratelimit import RateLimiter
from service.retention import purge_raw
from service.smtp import ReplyHandler, make_protocol

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0  # how often idle workers look for rows another node stored
DIGEST_CHECK_SECONDS = 60.0
RETENTION_CHECK_SECONDS = 3600.0


@dataclass
class Components:
    """The long-lived objects a replyd process is built from, made once from Settings."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    book: AddressBook
    keyring: Keyring

    @classmethod
    def build(cls, settings: Settings) -> Components:
        """Build the database engine, address book and keyring from settings."""
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=make_sessionmaker(engine),
            book=AddressBook(settings.domain, settings.reply_prefix, settings.reply_separator),
            keyring=Keyring.from_strings(settings.secret, settings.old_secrets),
        )

    def digests(self) -> Digests:
        """The digest builder for this deployment."""
        return Digests(
            self.book,
            self.keyring,
            self.notifier(),
            from_address=self.settings.from_address,
            site_name=self.settings.site_name,
        )

    def notifier(self) -> Notifier:
        """A notifier rendering with this deployment's addresses."""
        return Notifier(
            self.book,
            self.keyring,
            from_address=self.settings.from_address,
            site_name=self.settings.site_name,
            base_url=self.settings.base_url,
        )


class ReplydServer:
    """Runs the listener and the workers on one event loop; CPU work goes to threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.parts = Components.build(settings)
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self.pipeline = Pipeline(
            self.parts.session_factory,
            self.parts.book,
            self.parts.keyring,
            self.parts.notifier(),
            RejectionNotices(
                from_address=settings.from_address,
                site_name=settings.site_name,
                domain=settings.domain,
            ),
            own_addresses={settings.from_address},
            quotes_only=settings.quotes_only,
            trust_authserv_id=settings.trust_authserv_id,
        )
        self.outbox = Outbox(
            self.parts.session_factory,
            settings.outbound,
            envelope_sender=self._envelope_sender,
            max_attempts=settings.outbound_max_attempts,
            local_hostname=settings.domain,
        )
        self.handler = ReplyHandler(
            self.parts.book,
            self.parts.keyring,
            lambda raw, sender, rcpts: store_received(
                self.parts.session_factory, raw, sender, rcpts
            ),
            max_recipients=settings.max_recipients,
            max_message_bytes=settings.max_message_bytes,
            on_stored=self._wake_inbound,
            lmtp=settings.protocol == "lmtp",
            limiter=RateLimiter(settings.rate_limits),
        )
        self._inbound_wakeup = asyncio.Event()
        self._outbound_wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.http = HttpServer(
            self.parts,
            wake_inbound=self._wake_inbound,
            wake_outbound=self._outbound_wakeup.set,
            smtp_bound=lambda: self._server is not None and self._server.is_serving(),
        )

    def _envelope_sender(self, parcel: Parcel) -> str:
        """VERP per message, so a bounce names what bounced; "" (null) for our auto-replies."""
        if parcel.kind == "rejection" or parcel.recipient_id is None:
            return ""  # RFC 3834: automatic responses go out with a null return path
        return self.parts.book.bounce_address(parcel.id, parcel.recipient_id, self.parts.keyring)

    def _wake_inbound(self) -> None:
        self._inbound_wakeup.set()

    async def start(self) -> None:
        """Check the schema, bind the listener and start the workers."""
        check_schema(self.parts.engine)
        self._loop = asyncio.get_running_loop()
        hostname = self.settings.domain
        self._server = await self._loop.create_server(
            lambda: make_protocol(self.handler, self.settings.protocol, hostname),
            host=self.settings.smtp_host,
            port=self.settings.smtp_port,
        )
        await self.http.start()
        for number in range(self.settings.workers):
            self._tasks.append(asyncio.create_task(self._inbound_worker(f"{self.node}/in{number}")))
        self._tasks.append(asyncio.create_task(self._outbound_worker(f"{self.node}/out")))
        self._tasks.append(asyncio.create_task(self._digest_scheduler()))
        if self.settings.retention_days:
            self._tasks.append(asyncio.create_task(self._retention()))
        log.info(
            "replyd listening for %s on %s:%s (workers: %s, outbound: %s)",
            self.settings.protocol.upper(),
            self.settings.smtp_host,
            self.settings.smtp_port,
            self.settings.workers,
            self.settings.outbound.kind,
        )

    async def _wait(self, event: asyncio.Event) -> None:
        """Sleep until woken, the poll interval passes, or we are stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), IDLE_POLL_SECONDS)
        event.clear()

    async def _inbound_worker(self, name: str) -> None:
        while not self._stopping.is_set():
            try:
                row_id = await asyncio.to_thread(claim_next, self.parts.session_factory, name)
                if row_id is None:
                    await self._wait(self._inbound_wakeup)
                    continue
                outcome = await asyncio.to_thread(self.pipeline.process, row_id, name)
                if outcome is not None and outcome.comment_id is not None:
                    self._outbound_wakeup.set()
            except Exception:
                # The database may be briefly unavailable; the row's lease brings it back.
                log.exception("inbound worker %s hit an error; retrying shortly", name)
                await asyncio.sleep(IDLE_POLL_SECONDS)

    async def _outbound_worker(self, name: str) -> None:
        while not self._stopping.is_set():
            try:
                if not await self.outbox.run_once(name):
                    await self._wait(self._outbound_wakeup)
            except Exception:
                log.exception("outbound worker hit an error; retrying shortly")
                await asyncio.sleep(IDLE_POLL_SECONDS)

    async def _digest_scheduler(self) -> None:
        """Queue each digest period once its hour has come; repeats are harmless (idempotent)."""
        digests = self.parts.digests()
        done: set[str] = set()
        while not self._stopping.is_set():
            now = utcnow()
            if now.hour >= self.settings.digest_hour:
                for kind in PERIODS:
                    period = last_complete_period(kind, now)
                    if period.key in done:
                        continue
                    try:
                        count = await asyncio.to_thread(
                            digests.send, self.parts.session_factory, period
                        )
                    except Exception:
                        log.exception("digest %s failed; trying again in a minute", period.key)
                        continue
                    done.add(period.key)
                    if count:
                        log.info("queued %s digest(s) for %s", count, period.key)
                        self._outbound_wakeup.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), DIGEST_CHECK_SECONDS)

    async def _retention(self) -> None:
        """Hourly: delete raw mail finished more than REPLYD_RETENTION_DAYS ago."""
        keep = timedelta(days=self.settings.retention_days)

        def purge() -> int:
            with self.parts.session_factory.begin() as session:
                return purge_raw(session, utcnow() - keep)

        while not self._stopping.is_set():
            try:
                count = await asyncio.to_thread(purge)
                if count:
                    log.info("retention deleted the raw source of %s message(s)", count)
            except Exception:
                log.exception("retention run failed; trying again in an hour")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RETENTION_CHECK_SECONDS)

    @property
    def port(self) -> int:
        """The port the listener is bound to."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def http_port(self) -> int:
        """The port the HTTP server is bound to."""
        return self.http.port

    async def stop(self) -> None:
        """Drain: refuse new mail with 421, finish the message in hand, stop the workers."""
        self.handler.draining = True
        if self._server is not None:
            self._server.close()
        await self.http.stop()
        self._stopping.set()
        self._inbound_wakeup.set()
        self._outbound_wakeup.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.parts.engine.dispose()
        log.info("replyd stopped")

    async def serve_until_signalled(self) -> None:
        """Run until SIGTERM or SIGINT, then drain and return."""
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("signal received; draining")
        await self.stop()
