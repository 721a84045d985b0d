"""The daemon: SMTP edge, HTTP server and the workers (in it or beside it), drained on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy.orm import Session

from service.inbound.connections import ConnectionCaps, ThrottledLog
from service.inbound.edge import ReplyHandler
from service.inbound.intake import Intake
from service.inbound.protocol import SessionLimits, make_protocol
from service.inbound.queue import GroupCommit
from service.inbound.ratelimit import RateLimiter
from service.outbound.digest import PERIODS, latest_slot
from service.outbound.webhooks import webhook_loop
from service.runtime.components import Components
from service.runtime.heartbeat import ClaimHeartbeat, node_name
from service.runtime.limits import AcceptErrors, fit_caps, raise_file_limit
from service.runtime.settings import Settings, report_deprecations
from service.runtime.workers import InboundLoad, WorkerProcesses, inbound_loop, outbound_loop
from service.store.engine import make_engine
from service.store.models import Post, utcnow
from service.store.retention import purge_notices, purge_raw
from service.store.schema import check_schema
from service.web.app import HttpServer

log = logging.getLogger(__name__)

DIGEST_CHECK_SECONDS = 60.0
EXECUTOR_THREADS = 64
RETENTION_CHECK_SECONDS = 3600.0
# How often the edge reads which people were forgotten (by `replyd person forget` elsewhere):
# their old addresses are refused at RCPT this long after the erasure at most.
FORGOTTEN_CHECK_SECONDS = 1.0
DRAIN_SECONDS = 30.0


class ReplydServer:
    """Runs the listener and the workers on one event loop; CPU work goes to threads."""

    def __init__(self, settings: Settings) -> None:
        report_deprecations(settings)
        self.settings = settings
        self.parts = Components.build(settings)
        self.node = node_name()
        self.pipeline = self.parts.pipeline()
        self.lease = timedelta(seconds=settings.lease_seconds)
        # Keeps the claims of the workers in this process alive (worker processes have theirs).
        self.heartbeat = ClaimHeartbeat(self.parts.session_factory, self.node, self.lease)
        self.workers = WorkerProcesses(settings, settings.worker_processes)
        # The edge's own engine: senders wait for its commits, so on SQLite the other writers
        # let it take the write lock first.
        self._edge_engine = make_engine(settings.database_url, urgent=True)
        self.outbox = self.parts.outbox()
        self.webhooks = self.parts.webhook_sender()  # None without REPLYD_WEBHOOK_URL
        self._webhook_wakeup = asyncio.Event()
        self.handler = ReplyHandler(
            self.parts.book,
            self.parts.keyring,
            # Sessions that finish DATA together share one commit (and one fsync).
            GroupCommit(self._edge_engine),
            max_recipients=settings.max_recipients,
            max_message_bytes=settings.max_message_bytes,
            on_stored=self._wake_inbound,
            limiter=RateLimiter(settings.rate_limits),
            forgotten=self.parts.erased_people,
        )
        self.session_limits = SessionLimits(
            idle_seconds=settings.smtp_timeout,
            session_seconds=settings.smtp_session_seconds,
            max_commands=settings.smtp_max_commands,
        )
        self.smtp_connections: ConnectionCaps | None = None
        self._accept_errors: AcceptErrors | None = None
        self._inbound_wakeup = asyncio.Event()
        self._outbound_wakeup = asyncio.Event()
        self._inbound_load = InboundLoad()  # in-process workers: delivery stands back for it
        self._stopping = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.http = HttpServer(
            self.parts,
            wake_inbound=self._wake_inbound,
            wake_outbound=self._wake_outbound,
            smtp_bound=lambda: self._server is not None and self._server.is_serving(),
            smtp_refusals=lambda: self.handler.refusals,
            # The HTTP ingresses store and count as the listener does, in the same queue.
            intake=Intake(
                self.parts.book,
                self.parts.keyring,
                self.handler.store,
                self.handler.limiter,
                max_message_bytes=settings.max_message_bytes,
                max_recipients=settings.max_recipients,
                on_stored=self._wake_inbound,
                forgotten=self.parts.erased_people,
            ),
        )

    def _wake_inbound(self) -> None:
        self._inbound_wakeup.set()
        self.workers.wake()

    def _wake_outbound(self) -> None:
        self._outbound_wakeup.set()
        self._webhook_wakeup.set()  # whatever queued mail may have queued an event too
        self.workers.wake()

    async def start(self) -> None:
        """Check the schema, bind the listener and start the workers."""
        check_schema(self.parts.engine)
        self.parts.erased_people.refresh(self.parts.session_factory)
        self._loop = asyncio.get_running_loop()
        # In-process workers, the HTTP API and the edge's commits each hold a thread while
        # they wait for the database; asyncio's default pool has only CPUs + 4 threads.
        self._loop.set_default_executor(ThreadPoolExecutor(max_workers=EXECUTOR_THREADS))
        # Out of file descriptors, asyncio reports every failed accept: once a minute is enough.
        self._accept_errors = AcceptErrors(self._loop)
        self._loop.set_exception_handler(self._accept_errors)
        caps, lowered = fit_caps(self.settings, raise_file_limit())
        if lowered:
            log.warning(lowered)
        self.smtp_connections = smtp_connections = ConnectionCaps(caps.smtp)
        refused_log = ThrottledLog(log)
        hostname = self.settings.domain
        self._server = await self._loop.create_server(
            lambda: make_protocol(
                self.handler,
                self.settings.protocol,
                hostname,
                caps=smtp_connections,
                limits=self.session_limits,
                refused_log=refused_log,
            ),
            host=self.settings.smtp_host,
            port=self.settings.smtp_port,
        )
        await self.http.start(caps.http)
        if self.settings.worker_processes:
            # Parsing, extraction, rendering and delivery run in processes of their own (other
            # cores), so this one only answers SMTP and its event loop is never kept waiting.
            self.workers.start()
            self._tasks.append(asyncio.create_task(self.workers.watch(self._stopping)))
        else:
            # REPLYD_WORKER_PROCESSES=0: one inbound and one delivery loop in this process.
            self.heartbeat.start()
            self._tasks.append(asyncio.create_task(self._inbound_worker()))
            self._tasks.append(asyncio.create_task(self._outbound_worker()))
        self._tasks.append(asyncio.create_task(self._digest_scheduler()))
        self._tasks.append(asyncio.create_task(self._forgotten_people()))
        if self.webhooks is not None:
            # In this process whatever the worker processes: sending is waiting, not CPU.
            self._tasks.append(
                asyncio.create_task(
                    webhook_loop(
                        self.webhooks,
                        f"{self.node}/webhooks",
                        wakeup=self._webhook_wakeup,
                        stopping=self._stopping,
                    )
                )
            )
        if self.settings.retention_days:
            self._tasks.append(asyncio.create_task(self._retention()))
        if self.settings.feed_url:
            self._tasks.append(asyncio.create_task(self._feed_poller()))
        log.info(
            "replyd listening for %s on %s:%s (%s, outbound: %s)",
            self.settings.protocol.upper(),
            self.settings.smtp_host,
            self.settings.smtp_port,
            f"worker processes: {self.settings.worker_processes}"
            if self.settings.worker_processes
            else "workers in this process",
            self.settings.outbound.kind,
        )

    async def _inbound_worker(self) -> None:
        await inbound_loop(
            self.pipeline,
            self.parts.session_factory,
            f"{self.node}/in",
            lease=self.lease,
            wakeup=self._inbound_wakeup,
            stopping=self._stopping,
            published=self._wake_outbound,
            load=self._inbound_load,
        )

    async def _outbound_worker(self) -> None:
        await outbound_loop(
            self.outbox,
            f"{self.node}/out",
            wakeup=self._outbound_wakeup,
            stopping=self._stopping,
            inbound=self._inbound_load,
        )

    async def _digest_scheduler(self) -> None:
        """Each minute, queue the digests that fell due at REPLYD_DIGEST_HOUR (UTC; weekly ones
        on Mondays) and have not gone out since: each holds what is new since the person's
        last one, so downtime over the digest hour only delays it. Harmless on several nodes."""
        digests = self.parts.digests()
        while not self._stopping.is_set():
            now = utcnow()
            for kind in PERIODS:
                due = latest_slot(kind, now, self.settings.digest_hour)
                try:
                    count = await asyncio.to_thread(
                        digests.send, self.parts.session_factory, kind, due_before=due
                    )
                except Exception:
                    log.exception("%s digests failed; trying again in a minute", kind)
                    continue
                if count:
                    log.info("queued %s %s digest(s)", count, kind)
                    self._wake_outbound()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), DIGEST_CHECK_SECONDS)

    async def _forgotten_people(self) -> None:
        """Every second: learn of erasures made by other processes (one count query when
        there was none), so the edge refuses the forgotten people's addresses."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), FORGOTTEN_CHECK_SECONDS)
            try:
                await asyncio.to_thread(
                    self.parts.erased_people.refresh, self.parts.session_factory
                )
            except Exception:
                log.exception("could not read which people were forgotten; trying again")

    async def _feed_poller(self) -> None:
        """At start and every REPLYD_FEED_SECONDS: make the blog feed's new entries posts
        (`replyd feed poll` does one poll). Harmless on several nodes: a 304 costs nothing,
        and a post two nodes add at once is saved once."""
        from service.feed.fetch import FeedError
        from service.feed.poll import poll_feed
        from service.outbound.new_posts import announce_post

        def announce(session: Session, post: Post) -> object:
            return announce_post(session, post, self.parts.book, self.parts.keyring)

        while not self._stopping.is_set():
            try:
                result = await asyncio.to_thread(
                    poll_feed, self.parts.session_factory, self.settings, announce=announce
                )
            except FeedError as exc:
                log.warning("feed poll failed, nothing changed: %s", exc)
            except Exception:
                log.exception("feed poll failed; trying again in %s s", self.settings.feed_seconds)
            else:
                for post in result.added:
                    log.info("feed: added post %r", post.slug)
                for skipped in result.skipped:
                    log.warning("feed: skipped entry %r: %s", skipped.guid, skipped.reason)
                if result.added:
                    self._wake_outbound()  # the new posts' mail to the blog's followers
                if result.added or result.updated:
                    log.info(
                        "feed: %s post(s) added, %s title(s) updated",
                        len(result.added),
                        len(result.updated),
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.feed_seconds)

    async def _retention(self) -> None:
        """Hourly: delete raw mail finished more than REPLYD_RETENTION_DAYS ago (30 unless
        set; 0 keeps it), and the record of refusal notices as old."""
        keep = timedelta(days=self.settings.retention_days)

        def purge() -> int:
            with self.parts.session_factory.begin() as session:
                purge_notices(session, utcnow() - keep)
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
        # A message being committed gets its 250 before we go: the sender must not resend it.
        if not await self.handler.drained(DRAIN_SECONDS):
            log.warning("stopping with a DATA commit still in progress after %ss", DRAIN_SECONDS)
        await self.http.stop()
        self._stopping.set()
        self._inbound_wakeup.set()
        self._outbound_wakeup.set()
        self._webhook_wakeup.set()
        await self.workers.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.to_thread(self.heartbeat.stop)
        self.parts.engine.dispose()
        self._edge_engine.dispose()
        if self._loop is not None and self._accept_errors is not None:
            self._loop.set_exception_handler(self._accept_errors.previous)
        log.info("replyd stopped")

    async def serve_until_signalled(self) -> None:
        """Run until SIGTERM or SIGINT, then drain and return."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        # Handlers first: a SIGTERM that arrives while starting up still drains, not kills.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await self.start()
        await stop.wait()
        log.info("signal received; draining")
        await self.stop()
