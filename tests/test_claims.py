"""Claims kept alive by a heartbeat, with a short lease: a dead node's messages are taken over
within a minute, a live node's never (issue 17, finding 11)."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from service.inbound.queue import claim_mail
from service.outbound.outbox import Outbox
from service.runtime.components import Components
from service.runtime.heartbeat import ClaimHeartbeat
from service.runtime.settings import DEFAULT_LEASE_SECONDS, Settings
from service.store.models import (
    Comment,
    InboundEmail,
    InboundStatus,
    OutboundEmail,
    OutboundStatus,
    utcnow,
)
from tests.conftest import Blog, free_port, make_settings, reply_message, send, wait_for
from tests.inbound_helpers import store_mail
from tests.test_nodes import (
    TERMINAL,
    Letter,
    node_env,
    seed_letters,
    start_node,
    stop_node,
    worker_processes,
)

READER = "reader@example.org"
TAKEOVER_SECONDS = 60  # what the issue asks: a dead node's messages move on within a minute


class TestHeartbeat:
    def test_claims_live_while_their_holder_beats_and_lapse_after(
        self, parts: Components, blog: Blog
    ) -> None:
        """Past the lease, another worker finds none of the rows a beating holder claimed
        (inbound and outbound), only those of a look-alike name; once the beating stops, the
        claims lapse and the other worker takes them."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "Hello")
        for _ in range(3):
            store_mail(parts, raw, READER, [address])
        lease = timedelta(seconds=1)
        holder = "host_1:42:a1b2c3"  # "_" would match any character in a LIKE pattern
        mine = claim_mail(parts.session_factory, f"{holder}/w0.0", 2, lease)
        look_alike = claim_mail(parts.session_factory, "hostX1:42:a1b2c3/w0.0", 1, lease)
        with parts.session_factory.begin() as session:
            session.add(
                OutboundEmail(kind="rejection", message_id="<n@x>", recipient=READER, raw=b"x")
            )
        outbox = Outbox(
            parts.session_factory,
            parts.settings.outbound,
            envelope_sender=lambda parcel: "",
            max_attempts=3,
            render=parts.notifier().render_queued,
            lease=lease,
        )
        [parcel] = outbox.claim_due(f"{holder}/w0.out")
        claimed_at = utcnow()
        heartbeat = ClaimHeartbeat(parts.session_factory, holder, lease)
        heartbeat.start()
        try:
            wait_for(lambda: utcnow() > claimed_at + 3 * lease, what="three leases to pass")
            taken = claim_mail(parts.session_factory, "other-node/w0.0", 10, lease)
            assert [m.id for m in taken] == [look_alike[0].id]
            assert outbox.claim_due("other-node/w0.out") == []
        finally:
            heartbeat.stop()
        taken = wait_for(
            lambda: claim_mail(parts.session_factory, "other-node/w0.0", 10, lease),
            what="the claims to lapse",
        )
        assert sorted(m.id for m in taken) == sorted(m.id for m in mine)
        assert [p.id for p in outbox.claim_due("other-node/w0.out")] == [parcel.id]


@dataclass
class SlowRelay:
    """A relay that takes `seconds` to answer each message, and counts what it received."""

    seconds: float
    received: Counter[str] = field(default_factory=Counter)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.received[str(message["Message-ID"])] += 1
        await asyncio.sleep(self.seconds)
        return "250 OK"


def settled(parts: Components) -> bool:
    """Every inbound message finished and every outbound one sent."""
    with parts.session_factory() as session:
        statuses = set(session.scalars(select(InboundEmail.status)))
        unsent = session.scalar(
            select(func.count()).where(OutboundEmail.status != OutboundStatus.SENT)
        )
    return statuses <= TERMINAL and unsent == 0


def exactly_once(parts: Components, letters: list[Letter]) -> None:
    """Each letter is one comment with one notification."""
    with parts.session_factory() as session:
        published = Counter(
            session.scalars(
                select(InboundEmail.message_id).join(
                    Comment, Comment.inbound_email_id == InboundEmail.id
                )
            )
        )
        notices = Counter(
            session.scalars(
                select(OutboundEmail.comment_id).where(OutboundEmail.kind == "notification")
            )
        )
        comment_ids = set(session.scalars(select(Comment.id)))
    assert published == Counter({letter.message_id: 1 for letter in letters})
    assert notices == Counter({comment_id: 1 for comment_id in comment_ids})


def held_by(parts: Components, pids: list[int]) -> list[int]:
    """The inbound rows that the processes `pids` hold claims on."""
    host = socket.gethostname()[:60]
    with parts.session_factory() as session:
        rows = session.execute(
            select(InboundEmail.id, InboundEmail.claimed_by).where(
                InboundEmail.status == InboundStatus.PROCESSING
            )
        ).all()
    return [
        row.id for row in rows if any(row.claimed_by.startswith(f"{host}:{pid}:") for pid in pids)
    ]


def kill_while_holding(
    node: subprocess.Popen[bytes], parts: Components, letters: list[Letter], port: int
) -> tuple[float, list[int], list[Letter]]:
    """Send the letters to the node from three connections and SIGKILL it (with its worker
    processes) as soon as they hold claims. Returns when it was killed (monotonic), the rows
    it held, and the letters it never acknowledged."""
    workers = wait_for(lambda: worker_processes(node.pid), what="the node's worker process")
    unsent: list[Letter] = []
    lock = threading.Lock()

    def client(share: list[Letter]) -> None:
        for index, letter in enumerate(share):
            try:
                send(port, letter.sender, [letter.address], letter.raw)
            except (smtplib.SMTPException, OSError):
                with lock:
                    unsent.extend(share[index:])
                return

    threads = [threading.Thread(target=client, args=(letters[n::3],)) for n in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: held_by(parts, workers), timeout=60, what="the node to hold claims")
    os.killpg(node.pid, signal.SIGKILL)
    killed = time.monotonic()
    node.wait(10)
    held = held_by(parts, workers)
    for thread in threads:
        thread.join(60)
    assert held, "the node finished what it held before it died"
    return killed, held, unsent


def finished(parts: Components, held: list[int]) -> None:
    """The rows the dead node held reached their end states."""
    with parts.session_factory() as session:
        statuses = session.scalars(select(InboundEmail.status).where(InboundEmail.id.in_(held)))
        assert set(statuses) <= TERMINAL


def taken_over_in_time(parts: Components, killed: float) -> None:
    """Everything settles, the dead node's claims included, within a minute of its death."""
    left = TAKEOVER_SECONDS - (time.monotonic() - killed)
    wait_for(lambda: settled(parts), timeout=left, what="every message to settle")


class TestOneMachine:
    @pytest.fixture
    def env(self, settings: Settings, tmp_path: Path) -> dict[str, str]:
        """`replyd serve` on SQLite with a worker and a preparing process, default lease."""
        assert settings.lease_seconds == DEFAULT_LEASE_SECONDS <= TAKEOVER_SECONDS / 2
        return node_env(
            settings,
            free_port(),
            tmp_path / "outbox",
            REPLYD_WORKER_PROCESSES="1",
            REPLYD_PREPARE_PROCESS="on",
        )

    def test_the_restarted_daemon_takes_over_within_a_minute_after_kill_9(
        self, env: dict[str, str], parts: Components, tmp_path: Path
    ) -> None:
        """SIGKILL to `replyd serve` and its worker processes while they hold claims: the
        restarted daemon finishes those messages within a minute, each exactly once."""
        letters = seed_letters(parts, 150)
        port = int(env["REPLYD_SMTP_PORT"])
        node = start_node(env, tmp_path / "first.log")
        try:
            killed, held, unsent = kill_while_holding(node, parts, letters, port)
        finally:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
        again = start_node(env, tmp_path / "again.log")
        try:
            for letter in unsent:  # the sender's MTA tries again
                send(port, letter.sender, [letter.address], letter.raw)
            taken_over_in_time(parts, killed)
        finally:
            assert stop_node(again) == 0, (tmp_path / "again.log").read_text()
        exactly_once(parts, letters)
        finished(parts, held)


class TestTwoNodesOnPostgres:
    @pytest.fixture
    def settings(self, tmp_path: Path, postgres_url: str) -> Settings:
        """Both nodes' settings share the run's PostgreSQL database."""
        var_dir = tmp_path / "var"
        var_dir.mkdir()
        return make_settings(var_dir, REPLYD_DATABASE_URL=postgres_url)

    def test_another_node_takes_over_a_killed_nodes_claims_within_a_minute(
        self, settings: Settings, parts: Components, tmp_path: Path
    ) -> None:
        """Node A is SIGKILLed while it holds claims; node B, running beside it with the
        default lease, finishes them within a minute, each exactly once."""
        letters = seed_letters(parts, 150)
        env_a = node_env(settings, free_port(), tmp_path / "outbox-a", REPLYD_WORKER_PROCESSES="1")
        env_b = node_env(settings, free_port(), tmp_path / "outbox-b", REPLYD_WORKER_PROCESSES="1")
        node_a = start_node(env_a, tmp_path / "a.log")
        node_b = start_node(env_b, tmp_path / "b.log")
        try:
            killed, held, unsent = kill_while_holding(
                node_a, parts, letters, int(env_a["REPLYD_SMTP_PORT"])
            )
            with smtplib.SMTP("127.0.0.1", int(env_b["REPLYD_SMTP_PORT"]), timeout=30) as smtp:
                for letter in unsent:  # the sender's MTA tries the other MX
                    smtp.sendmail(letter.sender, [letter.address], letter.raw)
            taken_over_in_time(parts, killed)
        finally:
            if node_a.poll() is None:
                os.killpg(node_a.pid, signal.SIGKILL)
            code_b = stop_node(node_b)
        assert code_b == 0, (tmp_path / "b.log").read_text()
        exactly_once(parts, letters)
        finished(parts, held)

    def test_a_delivery_longer_than_the_lease_is_not_taken_over(
        self, settings: Settings, parts: Components, tmp_path: Path
    ) -> None:
        """A relay that takes three seconds per message, a one-second lease, two nodes: the
        heartbeat keeps each claim alive, so no notification is sent twice."""
        relay = SlowRelay(seconds=3)
        port = free_port()
        controller = Controller(relay, hostname="127.0.0.1", port=port)
        controller.start()
        letters = seed_letters(parts, 4)
        options = {
            "REPLYD_LEASE_SECONDS": "1",
            "REPLYD_WORKER_PROCESSES": "1",
            "REPLYD_OUTBOUND": f"smtp://127.0.0.1:{port}",
        }
        env_a = node_env(settings, free_port(), tmp_path / "unused-a", **options)
        env_b = node_env(settings, free_port(), tmp_path / "unused-b", **options)
        node_a = start_node(env_a, tmp_path / "a.log")
        node_b = start_node(env_b, tmp_path / "b.log")
        try:
            for letter in letters:
                send(int(env_a["REPLYD_SMTP_PORT"]), letter.sender, [letter.address], letter.raw)
            wait_for(lambda: settled(parts), timeout=60, what="every notification to be sent")
        finally:
            codes = [stop_node(node_a), stop_node(node_b)]
            controller.stop()
        assert codes == [0, 0], (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
        assert len(relay.received) == len(letters)
        assert set(relay.received.values()) == {1}, relay.received
        exactly_once(parts, letters)
