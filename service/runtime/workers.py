"""Workers: the claim-and-publish and delivery loops, in the daemon or in processes beside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from sqlalchemy.orm import Session, sessionmaker

from service.inbound.pipeline import Pipeline
from service.inbound.prepare import Prepared
from service.inbound.queue import ClaimedMail, claim_mail, release
from service.outbound.outbox import CLAIM_LIMIT, Outbox
from service.runtime.components import Components
from service.runtime.heartbeat import ClaimHeartbeat, node_name
from service.runtime.logs import configure_logging
from service.runtime.preparing import PreparingProcess
from service.runtime.settings import Settings

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0  # how often idle workers look for rows another node stored
STOP_TIMEOUT_SECONDS = 60.0  # how long a worker process may take to finish the message in hand
# Rows a worker claims and records at once (with a preparing process it holds two batches:
# one being recorded, the next being prepared); small enough that nodes share a burst.
CLAIM_BATCH = 32
OUTBOUND_GATHER_SECONDS = 0.2  # how long the mail of comments published together may gather
# While replies pour in, fresh notifications wait (this long at most) so that publishing has
# the process and the database to itself; a burst's mail then leaves right after the burst.
DELIVERY_HOLD = timedelta(seconds=5)
HOLD_POLL_SECONDS = 0.2  # how often a held-back delivery loop looks whether the burst is over
BURST_GRACE_SECONDS = 0.1  # a pause between inbound batches shorter than this is the same burst
WATCH_SECONDS = 1.0  # how often the daemon checks that its worker processes are alive
_NO_HOLD = timedelta(0)
_WAKE = b""  # the whole message on a wake-up pipe: "look at the queues now"
_WAKES_PER_READ = 4096  # bytes a worker takes off its wake-up pipe at once (4 per wake-up)


async def wait_for_work(wakeup: asyncio.Event, seconds: float = IDLE_POLL_SECONDS) -> None:
    """Sleep until woken or the poll interval passes (rows stored by other nodes wake no one)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wakeup.wait(), seconds)
    wakeup.clear()


class InboundLoad:
    """Whether a process's inbound loops are working through replies, so that delivery,
    which can wait a few seconds, stands back for them."""

    def __init__(self) -> None:
        self._batches = 0
        self._last_end = -BURST_GRACE_SECONDS

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Mark one batch of inbound mail in hand for the duration of the block."""
        self._batches += 1
        try:
            yield
        finally:
            self._batches -= 1
            self._last_end = time.monotonic()

    def busy(self) -> bool:
        """A batch is in hand, or one ended so recently that more are likely to follow."""
        return self._batches > 0 or time.monotonic() - self._last_end < BURST_GRACE_SECONDS


async def inbound_loop(
    pipeline: Pipeline,
    session_factory: sessionmaker[Session],
    name: str,
    *,
    lease: timedelta,
    wakeup: asyncio.Event,
    stopping: asyncio.Event,
    published: Callable[[], None],
    load: InboundLoad | None = None,
    preparing: PreparingProcess | None = None,
) -> None:
    """Claim and process inbound rows until `stopping` is set; the batch being recorded is
    finished, and rows claimed but not recorded go back. `load` is told while a batch is in
    hand. With `preparing`, the next batch is claimed and prepared in that process while
    this one is recorded."""
    load = load or InboundLoad()
    prepare = preparing.prepare if preparing else pipeline.preparer.prepare_all
    held: list[ClaimedMail] = []  # claimed, not yet recorded
    ahead: asyncio.Future[list[Prepared]] | None = None  # the next batch, being prepared
    while not stopping.is_set():
        try:
            # A few rows per claim, and one commit records them all.
            claimed = await asyncio.to_thread(claim_mail, session_factory, name, CLAIM_BATCH, lease)
            held += claimed
            if stopping.is_set():
                break  # given back below
            started: asyncio.Future[list[Prepared]] | None = None
            if claimed:
                started = asyncio.ensure_future(asyncio.to_thread(prepare, claimed))
            if preparing is None:
                current, ahead = started, None
            else:
                current, ahead = ahead, started
            if current is None:
                if ahead is None:
                    await wait_for_work(wakeup)
                continue
            with load.batch():
                prepared = await current
                outcomes = await asyncio.to_thread(pipeline.record_batch, prepared, name)
            recorded = {item.mail.id for item in prepared}
            held = [mail for mail in held if mail.id not in recorded]
            if any(outcome is not None and outcome.comment_id for outcome in outcomes):
                published()
        except Exception:
            # The database may be briefly unavailable; the rows' leases bring them back.
            log.exception("inbound worker %s hit an error; retrying shortly", name)
            ahead = None
            await _give_back(session_factory, name, held)
            held = []
            await asyncio.sleep(IDLE_POLL_SECONDS)
    # Stopping: rows claimed but not begun go back to the queue now.
    await _give_back(session_factory, name, held)


async def _give_back(
    session_factory: sessionmaker[Session], name: str, mails: list[ClaimedMail]
) -> None:
    """Release claimed rows at once (if that fails too, their leases bring them back)."""
    if mails:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(release, session_factory, name, [mail.id for mail in mails])


async def outbound_loop(
    outbox: Outbox,
    name: str,
    *,
    wakeup: asyncio.Event,
    stopping: asyncio.Event,
    inbound: InboundLoad | None = None,
) -> None:
    """Deliver due mail until `stopping` is set; the batch in hand is finished and recorded.
    While `inbound` is busy, only mail due for DELIVERY_HOLD is sent."""
    while not stopping.is_set():
        try:
            holding = inbound is not None and inbound.busy()
            sent = await outbox.run_once(name, held_back=DELIVERY_HOLD if holding else _NO_HOLD)
            if sent >= CLAIM_LIMIT:
                continue  # more may be due already
            if holding:
                # Every published batch sets `wakeup`; look again on a clock instead, so a
                # burst costs a few claims a second, not one per batch.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), HOLD_POLL_SECONDS)
                continue
            if not sent:
                await wait_for_work(wakeup)
            # Let the mail of a burst gather, so one claim and one record commit serve many
            # notifications instead of each comment's few (at most this much later).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), OUTBOUND_GATHER_SECONDS)
        except Exception:
            log.exception("outbound worker %s hit an error; retrying shortly", name)
            await asyncio.sleep(IDLE_POLL_SECONDS)


class WorkerProcesses:
    """The daemon's side of its worker processes: start, wake, restart if dead, drain.

    Each process gets the reading end of a pipe. The daemon writes an empty message on it
    when mail was stored or queued, so workers need not poll; its end closing, even when the
    daemon is SIGKILLed, tells the worker to finish what it holds and exit, so no worker
    outlives its daemon.
    """

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess | None] = [None] * count
        self._pipes: list[Connection | None] = [None] * count
        self._stopping = False

    def start(self) -> None:
        """Start every worker process."""
        for number in range(self.count):
            self._spawn(number)

    def _spawn(self, number: int) -> None:
        theirs, ours = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main,
            args=(self.settings, theirs, number, log.getEffectiveLevel() <= logging.DEBUG),
            name=f"replyd-worker-{number}",
            # Daemonic: should the daemon die of an exception, multiprocessing still stops us.
            daemon=True,
        )
        process.start()
        theirs.close()
        os.set_blocking(ours.fileno(), False)
        self._processes[number] = process
        self._pipes[number] = ours

    def wake(self) -> None:
        """Tell every worker process that there is mail to claim or to deliver."""
        for pipe in self._pipes:
            if pipe is None:
                continue
            # A full pipe already holds a wake-up the worker has yet to read.
            with contextlib.suppress(BlockingIOError, OSError):
                pipe.send_bytes(_WAKE)

    async def watch(self, stopping: asyncio.Event) -> None:
        """Restart worker processes that died (their claimed rows return when leases lapse)."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), WATCH_SECONDS)
            if stopping.is_set() or self._stopping:
                return
            for number, process in enumerate(self._processes):
                if process is not None and not process.is_alive():
                    log.warning(
                        "worker process %s exited with %s; starting a new one",
                        number,
                        process.exitcode,
                    )
                    self._close_pipe(number)
                    self._spawn(number)

    def _close_pipe(self, number: int) -> None:
        pipe = self._pipes[number]
        if pipe is not None:
            pipe.close()
            self._pipes[number] = None

    async def stop(self) -> None:
        """SIGTERM every worker process, let it finish the work in hand, and reap it."""
        self._stopping = True
        for process in self._processes:
            if process is not None and process.is_alive():
                process.terminate()
        for number, process in enumerate(self._processes):
            if process is None:
                continue
            await asyncio.to_thread(process.join, STOP_TIMEOUT_SECONDS)
            if process.is_alive():
                log.error("worker process %s did not stop in time; killing it", number)
                process.kill()
                await asyncio.to_thread(process.join)
            self._close_pipe(number)


def worker_main(settings: Settings, pipe: Connection, number: int, verbose: bool = False) -> None:
    """Entry point of one worker process: run the loops until SIGTERM or orphaned."""
    configure_logging(settings, verbose=verbose)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    asyncio.run(_serve(settings, pipe, number))


async def _serve(settings: Settings, pipe: Connection, number: int) -> None:
    # Inbound commits skip the flush to disk (see make_engine); the outbox's do not, because
    # its claim is what makes everything before it durable before any mail leaves.
    parts = Components.build(settings, durable=False)
    delivery = Components.build(settings)
    pipeline = parts.pipeline()
    preparing = PreparingProcess(settings, pipeline.preparer) if settings.prepare_process else None
    if preparing is not None:
        await asyncio.to_thread(preparing.start)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    inbound = asyncio.Event()
    outbound = asyncio.Event()
    load = InboundLoad()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    def wake() -> None:
        inbound.set()
        outbound.set()

    def listen() -> None:
        while True:
            # Raw reads, not recv_bytes: one read takes every wake-up sent since the last, so
            # a burst of stored mail wakes the loop once, not once per message.
            try:
                woken = os.read(pipe.fileno(), _WAKES_PER_READ)
            except OSError:
                woken = b""
            if not woken:
                # The daemon is gone: finish what we hold and leave.
                loop.call_soon_threadsafe(stopping.set)
                loop.call_soon_threadsafe(wake)
                return
            loop.call_soon_threadsafe(wake)

    threading.Thread(target=listen, name="wakeups", daemon=True).start()
    node = node_name()
    lease = timedelta(seconds=settings.lease_seconds)
    # Every claim below is named node/...: the heartbeat keeps them all alive while we live.
    heartbeat = ClaimHeartbeat(parts.session_factory, node, lease)
    heartbeat.start()
    # One inbound loop per process: a second one only contends for the same write lock (it
    # was measured); more concurrency is more processes (REPLYD_WORKER_PROCESSES).
    tasks = [
        asyncio.create_task(
            inbound_loop(
                pipeline,
                parts.session_factory,
                f"{node}/w{number}.in",
                lease=lease,
                wakeup=inbound,
                stopping=stopping,
                published=outbound.set,
                load=load,
                preparing=preparing,
            )
        ),
        asyncio.create_task(
            outbound_loop(
                delivery.outbox(),
                f"{node}/w{number}.out",
                wakeup=outbound,
                stopping=stopping,
                inbound=load,
            )
        ),
    ]
    log.info("worker process %s ready (pid %s)", number, os.getpid())
    await stopping.wait()
    wake()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.to_thread(heartbeat.stop)
    if preparing is not None:
        await asyncio.to_thread(preparing.close)
    parts.engine.dispose()
    delivery.engine.dispose()
    log.info("worker process %s stopped", number)
