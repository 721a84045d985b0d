"""Several `replyd serve` processes on one database: worker processes; a node killed mid-load."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.inbound.queue import claim_mail, release
from service.runtime.components import Components
from service.runtime.settings import Settings
from service.store.engine import _someone_waits, _waiting
from service.store.models import Comment, InboundEmail, InboundStatus, OutboundEmail, OutboundStatus
from tests.conftest import (
    DOMAIN,
    SECRET,
    Blog,
    free_port,
    make_settings,
    reply_message,
    send,
    wait_for,
)
from tests.inbound_helpers import store_mail

REPLYD = [sys.executable, "-m", "service.cli", "serve"]
TERMINAL = {InboundStatus.PROCESSED, InboundStatus.IGNORED, InboundStatus.REJECTED}


def node_env(settings: Settings, port: int, outbox: Path, **extra: str) -> dict[str, str]:
    """The environment of one `replyd serve` process on the test's database."""
    return {
        **os.environ,
        "REPLYD_VAR_DIR": str(settings.var_dir),
        "REPLYD_DATABASE_URL": settings.database_url,
        "REPLYD_DOMAIN": DOMAIN,
        "REPLYD_SECRET": SECRET,
        "REPLYD_SMTP_PORT": str(port),
        "REPLYD_HTTP_PORT": "0",
        "REPLYD_RATE_LIMITS": "off",
        "REPLYD_OUTBOUND": f"maildir://{outbox}",
        **extra,
    }


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_node(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `replyd serve` in a process group of its own and wait until it listens."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            REPLYD, env=env, stdout=output, stderr=output, start_new_session=True
        )
    port = int(env["REPLYD_SMTP_PORT"])
    wait_for(
        lambda: listening(port) or process.poll() is not None, timeout=60, what="a node to listen"
    )
    assert process.poll() is None, log.read_text()
    return process


def worker_processes(pid: int) -> list[int]:
    """The worker processes replyd started (not multiprocessing's resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with_children = task / "children"
        if with_children.exists():
            found.extend(int(child) for child in with_children.read_text().split())
    return [child for child in found if b"spawn_main" in _cmdline(child)]


def preparing_processes(pids: list[int]) -> list[int]:
    """The preparing processes the given worker processes started."""
    return [
        child
        for pid in pids
        for task in Path(f"/proc/{pid}/task").glob("*")
        if (task / "children").exists()
        for child in map(int, (task / "children").read_text().split())
        if b"service.runtime.preparing" in _cmdline(child)
    ]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def alive(pid: int) -> bool:
    """Whether pid exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_node(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM a node and return its exit status."""
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


@dataclass
class Letter:
    """One reply of the load: who sends it, where to, and its Message-ID."""

    sender: str
    address: str
    message_id: str
    raw: bytes


def seed_letters(parts: Components, count: int) -> list[Letter]:
    """One post per reply (so each comment notifies just the post's author), one reader each."""
    blog = Blog(parts)
    letters = []
    for number in range(count):
        post = blog.post(slug=f"post-{number}")
        sender = f"reader{number}@example.org"
        address = blog.address(post, sender)
        message_id = f"<load-{number}@client.example.net>"
        raw = reply_message(sender, address, f"Reply number {number}.", message_id=message_id)
        letters.append(Letter(sender, address, message_id, raw))
    return letters


def publish(env: dict[str, str], parts: Components, letters: list[Letter]) -> None:
    """Send each letter to the node and wait until every one of them is a comment."""
    port = int(env["REPLYD_SMTP_PORT"])
    for letter in letters:
        send(port, letter.sender, [letter.address], letter.raw)

    def published() -> int:
        with parts.session_factory() as session:
            return int(session.scalar(select(func.count()).select_from(Comment)) or 0)

    wait_for(lambda: published() == len(letters), timeout=60, what="all comments")


class TestClaims:
    def test_a_batch_claim_takes_the_oldest_rows_and_release_gives_back_the_rest(
        self, parts: Components
    ) -> None:
        """Rows claimed but never begun (a stopping worker) return with their attempt uncounted."""
        blog = Blog(parts)
        address = blog.address(blog.post(), "reader@example.org")
        ids = [store_mail(parts, b"Subject: x\r\n\r\nx", "r@x.org", [address])[0] for _ in range(5)]
        batch = [m.id for m in claim_mail(parts.session_factory, "stopping-worker", 3)]
        assert batch == ids[:3]
        assert release(parts.session_factory, "another-worker", batch) == 0  # not its claims
        assert release(parts.session_factory, "stopping-worker", batch[1:]) == 2
        with parts.session_factory() as session:
            rows = {row.id: row for row in session.scalars(select(InboundEmail))}
        assert [rows[i].status for i in ids] == [
            InboundStatus.PROCESSING,
            InboundStatus.RECEIVED,
            InboundStatus.RECEIVED,
            InboundStatus.RECEIVED,
            InboundStatus.RECEIVED,
        ]
        assert [rows[i].attempts for i in ids] == [1, 0, 0, 0, 0]
        assert rows[ids[1]].claimed_by is None
        assert [m.id for m in claim_mail(parts.session_factory, "next-worker", 10)] == ids[1:]


class TestWriterPriority:
    def test_background_writers_see_the_edge_waiting_for_sqlites_lock(self, tmp_path: Path) -> None:
        """While the edge waits for the write lock, other writers see it (and stand back)."""
        gate = tmp_path / "replyd.db-urgent"
        assert not _someone_waits(gate)
        with _waiting(gate):
            assert _someone_waits(gate)
        assert not _someone_waits(gate)


class TestWorkerProcesses:
    @pytest.fixture
    def env(self, settings: Settings, tmp_path: Path) -> dict[str, str]:
        """`replyd serve` with two worker processes beside the edge, each with a preparing
        process, on the SQLite database."""
        return node_env(
            settings,
            free_port(),
            tmp_path / "outbox",
            REPLYD_WORKER_PROCESSES="2",
            REPLYD_PREPARE_PROCESS="on",
        )

    def test_worker_processes_publish_and_stop_with_the_daemon(
        self, env: dict[str, str], parts: Components, tmp_path: Path
    ) -> None:
        """With worker processes, replies become comments; SIGTERM stops them all and their
        preparing processes, exit 0."""
        letters = seed_letters(parts, 12)
        node = start_node(env, tmp_path / "node.log")
        try:
            workers = wait_for(lambda: len(found := worker_processes(node.pid)) == 2 and found)
            children = wait_for(lambda: len(found := preparing_processes(workers)) == 2 and found)
            publish(env, parts, letters)
            outbox = tmp_path / "outbox" / "new"
            wait_for(
                lambda: outbox.exists() and len(list(outbox.iterdir())) == len(letters),
                timeout=30,
                what="a notification per comment",
            )
        finally:
            code = stop_node(node)
        assert code == 0, (tmp_path / "node.log").read_text()
        assert not [pid for pid in workers + children if alive(pid)]

    def test_worker_processes_leave_when_the_daemon_is_killed(
        self, env: dict[str, str], parts: Components, tmp_path: Path
    ) -> None:
        """SIGKILL to the daemon alone leaves no orphan worker or preparing processes behind."""
        node = start_node(env, tmp_path / "node.log")
        try:
            workers = wait_for(lambda: len(found := worker_processes(node.pid)) == 2 and found)
            children = wait_for(lambda: len(found := preparing_processes(workers)) == 2 and found)
            node.kill()
            node.wait(10)
            wait_for(
                lambda: not [pid for pid in workers + children if alive(pid)],
                timeout=30,
                what="the worker and preparing processes to exit",
            )
        finally:
            if node.poll() is None:
                node.kill()

    def test_a_killed_worker_takes_its_preparing_process_with_it(
        self, env: dict[str, str], parts: Components, tmp_path: Path
    ) -> None:
        """SIGKILL to a worker process: its preparing process exits, the daemon starts a new
        worker (with a new preparing process), and replies still become comments."""
        letters = seed_letters(parts, 4)
        node = start_node(env, tmp_path / "node.log")
        try:
            workers = wait_for(lambda: len(found := worker_processes(node.pid)) == 2 and found)
            victim = workers[0]
            orphan = wait_for(lambda: preparing_processes([victim]))[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: not alive(orphan), timeout=30, what="the preparing process to exit")
            wait_for(
                lambda: len(found := worker_processes(node.pid)) == 2 and victim not in found,
                timeout=30,
                what="a new worker process",
            )
            publish(env, parts, letters)
        finally:
            assert stop_node(node) == 0, (tmp_path / "node.log").read_text()


class TestTwoNodesOnPostgres:
    @pytest.fixture
    def settings(self, tmp_path: Path, postgres_url: str) -> Settings:
        """Both nodes' settings share the run's PostgreSQL database."""
        var_dir = tmp_path / "var"
        var_dir.mkdir()
        return make_settings(var_dir, REPLYD_DATABASE_URL=postgres_url)

    def test_node_killed_mid_load_loses_and_duplicates_nothing(
        self, settings: Settings, parts: Components, tmp_path: Path
    ) -> None:
        """Load on two nodes, one SIGKILLed: every reply is one comment with one notification."""
        letters = seed_letters(parts, 48)
        lease = {"REPLYD_LEASE_SECONDS": "2", "REPLYD_WORKER_PROCESSES": "1"}
        env_a = node_env(settings, free_port(), tmp_path / "outbox-a", **lease)
        env_b = node_env(settings, free_port(), tmp_path / "outbox-b", **lease)
        node_a = start_node(env_a, tmp_path / "a.log")
        node_b = start_node(env_b, tmp_path / "b.log")
        ports = [int(env_a["REPLYD_SMTP_PORT"]), int(env_b["REPLYD_SMTP_PORT"])]
        accepted: set[str] = set()
        lock = threading.Lock()
        acked_by_a = 0

        def client(share: list[Letter], node: int) -> list[Letter]:
            """Send over one reused session; returns the letters this node did not take."""
            nonlocal acked_by_a
            index = 0
            try:
                with smtplib.SMTP("127.0.0.1", ports[node], timeout=30) as smtp:
                    for letter in share:
                        smtp.sendmail(letter.sender, [letter.address], letter.raw)
                        index += 1
                        with lock:
                            accepted.add(letter.message_id)
                            if node == 0:
                                acked_by_a += 1
                                if acked_by_a == 8:
                                    # Mid-load: node A (edge and worker) dies at once.
                                    os.killpg(node_a.pid, signal.SIGKILL)
            except (smtplib.SMTPException, OSError):
                return share[index:]
            return []

        shares = [(letters[n::4], n % 2) for n in range(4)]  # two sessions per node
        leftovers: list[list[Letter]] = [[] for _ in shares]

        def run(number: int) -> None:
            leftovers[number] = client(*shares[number])

        threads = [threading.Thread(target=run, args=(n,)) for n in range(len(shares))]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert node_a.wait(30) == -signal.SIGKILL
            # What A did not acknowledge, the sending MTA retries at the other MX: B.
            retry = [letter for rest in leftovers for letter in rest]
            assert retry, "node A was killed before it could refuse anything"
            client(retry, 1)
            assert accepted == {letter.message_id for letter in letters}

            def settled() -> bool:
                with parts.session_factory() as session:
                    statuses = set(session.scalars(select(InboundEmail.status)))
                    unsent = session.scalar(
                        select(func.count()).where(OutboundEmail.status != OutboundStatus.SENT)
                    )
                return statuses <= TERMINAL | {InboundStatus.FAILED} and unsent == 0

            # A's claims come back when its 2-second leases lapse; B finishes them.
            wait_for(settled, timeout=90, what="every message and notification to settle")
        finally:
            if node_a.poll() is None:
                os.killpg(node_a.pid, signal.SIGKILL)
            code_b = stop_node(node_b)
        assert code_b == 0, (tmp_path / "b.log").read_text()

        with parts.session_factory() as session:
            published = Counter(
                session.scalars(
                    select(InboundEmail.message_id).join(
                        Comment, Comment.inbound_email_id == InboundEmail.id
                    )
                )
            )
            rows = session.execute(select(InboundEmail.status, InboundEmail.reason)).all()
            notices = Counter(
                session.scalars(
                    select(OutboundEmail.comment_id).where(OutboundEmail.kind == "notification")
                )
            )
            comment_ids = set(session.scalars(select(Comment.id)))
        assert published == Counter({letter.message_id: 1 for letter in letters})
        for status, reason in rows:  # a redelivery of what A stored unacknowledged, at most
            assert status == InboundStatus.PROCESSED or "duplicate" in (reason or ""), reason
        assert notices == Counter({comment_id: 1 for comment_id in comment_ids})
