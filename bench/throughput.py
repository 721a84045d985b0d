"""Throughput of `replyd serve` end to end beside a bare aiosmtpd sink that only fsyncs mail.

Both run as real subprocesses and get the same load over real SMTP: N replies of ~3 KB with a
quoted thread, from 8 concurrent connections that each reuse one session. For replyd, a
message counts once it is accepted, its comment stored and its notifications queued; the
notes also give the time until every notification was delivered. The sink runs before and
after replyd, and b/a is taken against the mean of the two (the machine drifts). The table
is printed, not asserted: speed is measured here, correctness is proved by the tests.

    .venv/bin/python bench/throughput.py [--messages 1000] [--rounds 1] [--relay] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

DOMAIN = "replies.bench.example"
SECRET = "bench-secret-0123456789abcdef"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
TERMINAL = ("processed", "ignored", "rejected", "failed")


# --- the load -----------------------------------------------------------------------------


def quoted_reply(number: int, sender: str, to: str) -> bytes:
    """A ~3 KB reply: a few lines of own text above a quoted notification thread."""
    quoted = "\n".join(
        f"> Paragraph {line} of the post this thread is about, quoted by the mail client, "
        f"with a link <https://blog.example.org/posts/{number}#p{line}>."
        for line in range(20)
    )
    body = (
        f"Thanks for post {number}! This is a reply written on top of the quote.\n"
        "It has a second line, and a third one that says a bit more about it.\n\n"
        "-- \nRita\n\n"
        f"On Wed, Nov 25, 2026 at 9:15 AM, Example Blog <notifications@{DOMAIN}> wrote:\n"
        f"{quoted}\n"
    )
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = f"Reader {number} <{sender}>"
    message["To"] = to
    message["Subject"] = f"Re: Post {number}"
    message["Message-ID"] = f"<bench-{number}-{uuid.uuid4().hex}@client.example.net>"
    message["Date"] = "Wed, 25 Nov 2026 09:20:00 +0000"
    message.set_content(body)
    return message.as_bytes()


@dataclass
class Letter:
    """One message of the load, with its envelope."""

    sender: str
    recipient: str
    raw: bytes


@dataclass
class Run:
    """What one target did with the load."""

    seconds: float
    latencies: list[float]
    cpu_seconds: float
    refused: int

    def rate(self, count: int) -> float:
        """Messages per second."""
        return count / self.seconds


def blast(port: int, letters: list[Letter], connections: int) -> tuple[list[float], int]:
    """Send every letter over `connections` reused SMTP sessions; per-message latencies."""
    latencies: list[float] = []
    refused = 0
    lock = threading.Lock()

    def client(share: list[Letter]) -> None:
        nonlocal refused
        mine: list[float] = []
        bad = 0
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for letter in share:
                started = time.perf_counter()
                try:
                    smtp.sendmail(letter.sender, [letter.recipient], letter.raw)
                except smtplib.SMTPException:
                    bad += 1
                    smtp.rset()
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            refused += bad

    threads = [
        threading.Thread(target=client, args=(letters[n::connections],)) for n in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, refused


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until something accepts connections on the port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listened on port {port} after {timeout}s")


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (replyd's worker processes), from /proc."""
    found = [pid]
    for current in found:
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = task / "children"
            if children.exists():
                found.extend(int(child) for child in children.read_text().split())
    return found


def cpu_seconds(pid: int, *, tree: bool = True) -> float:
    """User plus system CPU of a process (and its tree), including reaped children."""
    total = 0.0
    for member in process_tree(pid) if tree else [pid]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the command name.
        total += sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    return total


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory of the process itself and of its whole tree, in MiB."""
    sizes = []
    for member in process_tree(pid):
        try:
            sizes.append(int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE_BYTES)
        except FileNotFoundError:
            continue
    return sizes[0] / 2**20, sum(sizes) / 2**20


SINK_CODE = """
import os, sys, time
from aiosmtpd.controller import Controller

class FsyncSink:
    async def handle_DATA(self, server, session, envelope):
        fd = os.open(os.path.join(sys.argv[2], f"{time.monotonic_ns()}-{id(envelope)}"),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, envelope.original_content)
            os.fsync(fd)
        finally:
            os.close(fd)
        return "250 OK"

controller = Controller(FsyncSink(), hostname="127.0.0.1", port=int(sys.argv[1]),
                        decode_data=False, server_hostname="sink.example")
controller.start()
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.read()
controller.stop()
"""


@contextmanager
def fsync_sink(workdir: Path, name: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A bare aiosmtpd server that fsyncs each message into workdir/name: its port and process."""
    port = free_port()
    spool = workdir / name
    spool.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", SINK_CODE, str(port), str(spool)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        wait_listening(port, process)
        yield port, process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(30)


def run_sink(letters: list[Letter], connections: int, workdir: Path, name: str) -> Run:
    """The ceiling: aiosmtpd storing each message with one fsync, and nothing else."""
    with fsync_sink(workdir, name) as (port, process):
        blast(port, letters[:16], min(connections, 4))  # warm up
        cpu_before = cpu_seconds(process.pid)
        started = time.perf_counter()
        latencies, refused = blast(port, letters, connections)
        seconds = time.perf_counter() - started
        return Run(seconds, latencies, cpu_seconds(process.pid) - cpu_before, refused)


# --- replyd -------------------------------------------------------------------------------


@contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A fresh database on the server of base_url, dropped afterwards."""
    name = f"replyd_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def replyd_env(
    workdir: Path,
    database_url: str,
    port: int,
    worker_processes: int,
    outbound: str | None = None,
) -> dict[str, str]:
    """The environment `replyd serve` runs with in the benchmark (outbound: a Maildir unless
    a relay URL is given)."""
    return {
        **os.environ,
        "REPLYD_VAR_DIR": str(workdir),
        "REPLYD_DATABASE_URL": database_url,
        "REPLYD_DOMAIN": DOMAIN,
        "REPLYD_SECRET": SECRET,
        "REPLYD_SMTP_PORT": str(port),
        "REPLYD_HTTP_PORT": "0",
        "REPLYD_RATE_LIMITS": "off",
        "REPLYD_OUTBOUND": outbound or f"maildir://{workdir / 'outbox'}",
        "REPLYD_WORKER_PROCESSES": str(worker_processes),
    }


def seed(env: dict[str, str], count: int, posts: int) -> list[Letter]:
    """Migrate, add posts and readers, and write one reply per reader to a post's address."""
    from service.identity.addresses import ReplyTarget
    from service.runtime.components import Components
    from service.runtime.settings import load_settings
    from service.store.models import Person, Post
    from service.store.schema import upgrade

    parts = Components.build(load_settings(env))
    upgrade(parts.engine)
    letters = []
    with parts.session_factory.begin() as session:
        author = Person(email="author@blog.example.org", display_name="Ann Author")
        session.add(author)
        session.flush()
        post_ids = []
        for number in range(posts):
            post = Post(
                slug=f"post-{number}",
                title=f"Post {number}",
                url=f"https://blog.example.org/posts/{number}",
                author_id=author.id,
            )
            session.add(post)
            session.flush()
            post_ids.append(post.id)
        readers = [Person(email=f"reader{n}@example.net") for n in range(count)]
        session.add_all(readers)
        session.flush()
        for number, reader in enumerate(readers):
            target = ReplyTarget(post_ids[number % posts], None, reader.id)
            address = parts.book.reply_address(target, parts.keyring)
            letters.append(
                Letter(reader.email, address, quoted_reply(number, reader.email, address))
            )
    parts.engine.dispose()
    return letters


def count_done(engine: object) -> tuple[int, int]:
    """(inbound rows in a terminal state, comments) as the database has them now."""
    from sqlalchemy import Engine

    from service.store.models import Comment, InboundEmail

    assert isinstance(engine, Engine)
    with engine.connect() as connection:
        finished = connection.scalar(select(func.count()).where(InboundEmail.status.in_(TERMINAL)))
        made = connection.scalar(select(func.count()).select_from(Comment))
    return int(finished or 0), int(made or 0)


def count_sent(engine: object) -> int:
    """Outbound rows delivered so far."""
    from sqlalchemy import Engine

    from service.store.models import OutboundEmail, OutboundStatus

    assert isinstance(engine, Engine)
    with engine.connect() as connection:
        sent = connection.scalar(
            select(func.count()).where(OutboundEmail.status == OutboundStatus.SENT)
        )
    return int(sent or 0)


@dataclass
class ReplydRun:
    """replyd's figures: accept side, end to end, and memory."""

    accept: Run
    end_to_end_seconds: float
    cpu_seconds: float
    edge_cpu_seconds: float  # the daemon's own process: the SMTP edge (and any in-process work)
    delivered_seconds: float  # until every notification had left, too
    delivered_cpu_seconds: float
    rss_start: tuple[float, float]
    rss_end: tuple[float, float]
    comments: int
    notifications: int


def run_replyd(
    letters: list[Letter],
    connections: int,
    workdir: Path,
    database_url: str,
    worker_processes: int,
    relay: bool = False,
) -> ReplydRun:
    """`replyd serve` as a subprocess, end to end: accepted, comment stored, mail queued;
    notifications go to a Maildir, or with `relay` to another fsync sink over SMTP."""
    with fsync_sink(workdir, "relay") if relay else nullcontext((0, None)) as (relay_port, _):
        outbound = f"smtp://127.0.0.1:{relay_port}" if relay else None
        return _run_replyd(letters, connections, workdir, database_url, worker_processes, outbound)


def _run_replyd(
    letters: list[Letter],
    connections: int,
    workdir: Path,
    database_url: str,
    worker_processes: int,
    outbound: str | None,
) -> ReplydRun:
    from service.store.models import OutboundEmail

    port = free_port()
    env = replyd_env(workdir, database_url, port, worker_processes, outbound)
    warmup, load = letters[:16], letters[16:]
    engine = create_engine(database_url)
    log = open(workdir / "replyd.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"], env=env, stdout=log, stderr=log
    )
    try:
        wait_listening(port, process)
        blast(port, warmup, 4)
        deadline = time.monotonic() + 120
        while count_done(engine)[0] < len(warmup):  # worker processes have started
            if time.monotonic() > deadline:
                raise SystemExit(f"replyd did not process the warm-up; see {workdir}/replyd.log")
            time.sleep(0.05)
        rss_start = rss_mib(process.pid)
        cpu_before = cpu_seconds(process.pid)
        edge_before = cpu_seconds(process.pid, tree=False)
        started = time.perf_counter()
        latencies, refused = blast(port, load, connections)
        accepted = time.perf_counter() - started
        while count_done(engine)[0] < len(letters) - refused:
            time.sleep(0.01)
        end_to_end = time.perf_counter() - started
        cpu = cpu_seconds(process.pid) - cpu_before
        edge_cpu = cpu_seconds(process.pid, tree=False) - edge_before
        rss_end = rss_mib(process.pid)
        comments = count_done(engine)[1]
        with engine.connect() as connection:
            notifications = int(
                connection.scalar(select(func.count()).select_from(OutboundEmail)) or 0
            )
        # Delivery may stand back during a burst: also time it until every mail has left.
        while count_sent(engine) < notifications:
            if time.perf_counter() - started > 300:
                raise SystemExit(f"replyd did not deliver its mail; see {workdir}/replyd.log")
            time.sleep(0.01)
        delivered = time.perf_counter() - started
        cpu_delivered = cpu_seconds(process.pid) - cpu_before
        return ReplydRun(
            Run(accepted, latencies, cpu, refused),
            end_to_end,
            cpu,
            edge_cpu,
            delivered,
            cpu_delivered,
            rss_start,
            rss_end,
            comments,
            notifications,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(120)
        log.close()
        engine.dispose()
        if code != 0:
            print(f"warning: replyd serve exited {code}; see {workdir}/replyd.log", file=sys.stderr)


# --- report -------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def row(name: str, rate: float, latencies: list[float], cpu: float, count: int, ratio: str) -> str:
    """One line of the table."""
    return (
        f"| {name:<46} | {rate:>8.0f} | {percentile(latencies, 0.5) * 1000:>8.1f} | "
        f"{percentile(latencies, 0.99) * 1000:>8.1f} | {cpu / count * 1000:>9.2f} | {ratio:>5} |"
    )


def main() -> None:
    """Run the load against the sink and replyd (SQLite, then PostgreSQL if given)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--worker-processes", type=int, default=1)
    parser.add_argument(
        "--replies-per-post",
        type=int,
        default=1,
        help="replies to each post; every commenter follows the post, so each reply is "
        "mailed to the author and the earlier commenters (default 1: to the author only)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="sink and replyd take turns this many times (each replyd round on a fresh "
        "database), and the median ratio is printed too: the machine drifts within seconds",
    )
    parser.add_argument(
        "--relay",
        action="store_true",
        help="replyd sends its notifications over SMTP to another fsync sink (a relay) "
        "instead of filing them into a Maildir",
    )
    parser.add_argument("--postgres", default=os.environ.get("REPLYD_TEST_POSTGRES_URL"))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    total = args.messages + 16  # 16 warm up each server first
    posts = max(1, total // args.replies_per_post)
    count = args.messages

    header = (
        f"| {'target':<46} | {'msg/s':>8} | {'p50 ms':>8} | {'p99 ms':>8} | {'CPU ms/msg':>9} |"
        f" {'b/a':>5} |"
    )
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    notes = []
    stores = [] if args.no_sqlite else [("sqlite", None)]
    if args.postgres:
        stores.append(("postgresql", args.postgres))
    for store, base_url in stores:
        ratios: list[float] = []
        p99_ratios: list[float] = []
        sink: Run | None = None  # the sink run after one round is the one before the next
        for number in range(1, args.rounds + 1):
            label = store if args.rounds == 1 else f"{store}, round {number}"
            with tempfile.TemporaryDirectory(prefix="replyd-bench-") as tmp:
                workdir = Path(tmp)
                with (
                    postgres_database(base_url) if base_url else _sqlite_url(workdir)
                ) as database_url:
                    port_env = replyd_env(workdir, database_url, free_port(), args.worker_processes)
                    letters = seed(port_env, total, posts)
                    before = sink or run_sink(letters[16:], args.connections, workdir, "before")
                    replyd = run_replyd(
                        letters,
                        args.connections,
                        workdir,
                        database_url,
                        args.worker_processes,
                        args.relay,
                    )
                    # Measured again afterwards: on a shared machine the ceiling drifts, and
                    # the ratios are taken against the mean of the two.
                    after = sink = run_sink(letters[16:], args.connections, workdir, "after")
            sink_rate = (before.rate(count) + after.rate(count)) / 2
            e2e_rate = count / replyd.end_to_end_seconds
            ratios.append(e2e_rate / sink_rate)
            if number == 1:
                lines.append(sink_row(f"(a) fsync sink, before [{label}]", before, count))
            lines.append(
                row(
                    f"(b) replyd accept [{label}]",
                    replyd.accept.rate(count),
                    replyd.accept.latencies,
                    replyd.cpu_seconds,
                    count,
                    "",
                )
            )
            lines.append(
                row(
                    f"(b) replyd end to end [{label}]",
                    e2e_rate,
                    replyd.accept.latencies,
                    replyd.cpu_seconds,
                    count,
                    f"{ratios[-1]:.2f}",
                )
            )
            lines.append(sink_row(f"(a) fsync sink, after [{label}]", after, count))
            sink_p99 = (percentile(before.latencies, 0.99) + percentile(after.latencies, 0.99)) / 2
            p99_ratios.append(percentile(replyd.accept.latencies, 0.99) / sink_p99)
            notes.append(
                f"{label}: RSS of replyd serve {replyd.rss_start[0]:.0f} -> "
                f"{replyd.rss_end[0]:.0f} MiB (with worker processes {replyd.rss_start[1]:.0f}"
                f" -> {replyd.rss_end[1]:.0f} MiB); {replyd.comments} comments, "
                f"{replyd.notifications} notifications queued, "
                f"{before.refused + after.refused + replyd.accept.refused} refused; accept p99 b/a "
                f"{p99_ratios[-1]:.1f}; CPU per message: edge process "
                f"{replyd.edge_cpu_seconds / count * 1000:.2f} ms, worker processes "
                f"{(replyd.cpu_seconds - replyd.edge_cpu_seconds) / count * 1000:.2f} ms; "
                f"every notification delivered after {replyd.delivered_seconds:.2f} s "
                f"({count / replyd.delivered_seconds:.0f} msg/s, "
                f"{replyd.delivered_cpu_seconds / count * 1000:.2f} ms CPU per message)"
            )
        if args.rounds > 1:
            notes.append(
                f"{store}: end to end b/a by round {', '.join(f'{r:.2f}' for r in ratios)}; "
                f"median {statistics.median(ratios):.2f}. Accept p99 b/a by round "
                f"{', '.join(f'{r:.1f}' for r in p99_ratios)}; "
                f"median {statistics.median(p99_ratios):.1f}"
            )
    print(
        f"{args.messages} messages of ~{len(letters[-1].raw) // 1000} KB, "
        f"{args.connections} connections, {os.cpu_count()} CPUs, "
        f"REPLYD_WORKER_PROCESSES={args.worker_processes}, "
        f"notifications to {'an SMTP relay' if args.relay else 'a Maildir'}"
    )
    print("\n".join(lines))
    print("\n".join(notes))


def sink_row(name: str, sink: Run, count: int) -> str:
    """The table line of one sink run."""
    return row(name, sink.rate(count), sink.latencies, sink.cpu_seconds, count, "")


@contextmanager
def _sqlite_url(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'replyd.db'}"


if __name__ == "__main__":
    main()
