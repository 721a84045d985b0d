"""The SMTP edge under hostile load (issue 17): DATA within its size whatever the lines,
connection caps, sessions that end, comments no longer than the web allows."""

from __future__ import annotations

import json
import resource
import smtplib
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.runtime.settings import Settings
from service.store.models import MAX_COMMENT_CHARS, Comment, InboundEmail, InboundStatus
from tests.conftest import (
    Blog,
    RunningServer,
    SinkHandler,
    free_port,
    reply_message,
    send,
    wait_for,
)
from tests.test_nodes import REPLYD, listening, node_env, stop_node
from tests.test_reply_flow import comments, delivered, final_row

READER = "reader@example.org"
MIB = 1024 * 1024


def memory_kib(pid: int, field: str) -> int:
    """VmRSS or VmHWM (the peak) of a process, in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@contextmanager
def replyd_serve(
    env: dict[str, str], log: Path, open_files: int | None = None, soft_limit: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`replyd serve` as a subprocess (with at most `open_files` files: its hard limit; its
    soft limit `soft_limit` or the same), listening; SIGTERM and exit 0 afterwards."""

    def limit_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft_limit or open_files, open_files))

    with log.open("wb") as output:
        process = subprocess.Popen(
            REPLYD, env=env, stdout=output, stderr=output, preexec_fn=limit_files
        )
    try:
        port = int(env["REPLYD_SMTP_PORT"])
        wait_for(lambda: listening(port) or process.poll() is not None, timeout=60, what="listen")
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        if process.poll() is None:
            code = stop_node(process)
            assert code == 0, log.read_text()


def connect_from(client: str, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:port from the loopback address `client` (127.0.0.2 ...)."""
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((client, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_line(sock: socket.socket) -> bytes:
    """One CRLF-ended line from a raw socket (b"" once the server closed)."""
    line = b""
    while not line.endswith(b"\n"):
        piece = sock.recv(1)
        if not piece:
            break
        line += piece
    return line


def healthz(port: int) -> tuple[int, dict[str, str]]:
    """GET /healthz on 127.0.0.1:port; its status and JSON body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def comment_count(blog: Blog) -> int:
    with blog.parts.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Comment)) or 0)


def whole_answer(sock: socket.socket) -> bytes:
    """All the server sends until it closes the connection."""
    data = b""
    while piece := sock.recv(65536):
        data += piece
    return data


class TestDataWithinItsSize:
    def test_200_mib_without_a_line_end_leaves_memory_bounded(
        self, settings: Settings, blog: Blog, tmp_path: Path
    ) -> None:
        """200 MiB of DATA with no line end: the server answers 552 5.3.4 and hangs up once
        past REPLYD_MAX_MESSAGE_BYTES, and its memory (peak) grows by less than 20 MiB."""
        address = blog.address(blog.post(), READER)
        port = free_port()
        env = node_env(settings, port, tmp_path / "outbox", REPLYD_WORKER_PROCESSES="0")
        with replyd_serve(env, tmp_path / "node.log") as node:
            # Warm up: one reply all the way to a comment, so what it loads is counted before.
            send(port, READER, [address], reply_message(READER, address, "Warm-up"))
            wait_for(lambda: comment_count(blog) == 1, timeout=30, what="the warm-up comment")
            before = memory_kib(node.pid, "VmRSS")
            sent, reply = 0, (0, b"")
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo()
                client.mail(READER)
                client.rcpt(address)
                assert client.docmd("DATA")[0] == 354
                chunk = b"x" * MIB
                try:
                    while sent < 200 * MIB:
                        client.sock.sendall(chunk)
                        sent += len(chunk)
                except OSError:
                    pass  # dropped, as it should be
                with suppress(smtplib.SMTPServerDisconnected):
                    reply = client.getreply()
            growth = memory_kib(node.pid, "VmHWM") - before
            assert growth < 20 * 1024, f"peak memory grew by {growth} KiB"
            assert sent < 100 * MIB, "the server read on past its size limit"
            assert reply[0] == 552 and reply[1].startswith(b"5.3.4 "), reply
            # The listener still takes honest mail.
            assert send(port, READER, [address], reply_message(READER, address, "Again")) == {}

    def test_lines_longer_than_the_reader_s_buffer_are_still_taken(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """A line of 100 KiB (past asyncio's read buffer, within the 128 KiB line limit) and a
        dot-stuffed line arrive as sent."""
        address = blog.address(blog.post(), READER)
        head = f"From: {READER}\r\nTo: {address}\r\nSubject: Re: hello\r\n\r\n".encode()
        raw = head + b"A reply.\r\n" + b"y" * 100_000 + b"\r\n.starts with a dot\r\n"
        assert send(server.port, READER, [address], raw) == {}
        with blog.parts.session_factory() as session:
            stored = session.scalars(select(InboundEmail)).one()
            assert stored.raw == raw


class TestConnectionCaps:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Three connections per client address, five in all."""
        return {"REPLYD_MAX_CONNECTIONS_PER_CLIENT": "3", "REPLYD_MAX_CONNECTIONS": "5"}

    def test_per_client_and_total_caps_answer_421(self, server: RunningServer, blog: Blog) -> None:
        """A client past its three connections gets 421 4.7.0, another client still gets in;
        past five in all everyone gets 421; a closed connection frees its place."""
        address = blog.address(blog.post(), READER)
        with ExitStack() as stack:
            first = [stack.enter_context(connect_from("127.0.0.1", server.port)) for _ in range(3)]
            assert all(read_line(sock).startswith(b"220 ") for sock in first)
            refused = stack.enter_context(connect_from("127.0.0.1", server.port))
            line = read_line(refused)
            assert line.startswith(b"421 4.7.0 ") and b"from your address" in line, line
            assert read_line(refused) == b""  # and hung up
            # Another client address is not held back by the first one's connections.
            other = [stack.enter_context(connect_from("127.0.0.2", server.port)) for _ in range(2)]
            assert all(read_line(sock).startswith(b"220 ") for sock in other)
            full = stack.enter_context(connect_from("127.0.0.3", server.port))
            line = read_line(full)
            assert line.startswith(b"421 4.7.0 ") and b"Too many connections to" in line, line
            first[0].close()
            wait_for(lambda: server.server.smtp_connections.open == 4, what="a place to free")
            raw = reply_message(READER, address, "Let in again")
            assert send(server.port, READER, [address], raw) == {}


class TestSessionLimits:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """An idle timeout of 1 s, sessions of 3 s, 20 commands."""
        return {
            "REPLYD_SMTP_TIMEOUT": "1",
            "REPLYD_SMTP_SESSION_SECONDS": "3",
            "REPLYD_SMTP_MAX_COMMANDS": "20",
        }

    def test_an_idle_session_gets_421_and_is_closed(self, server: RunningServer) -> None:
        """After EHLO and a second of silence: 421 4.4.2, as Postfix's smtpd_timeout says it."""
        with connect_from("127.0.0.1", server.port) as sock:
            assert read_line(sock).startswith(b"220 ")
            sock.sendall(b"EHLO client.example.net\r\n")
            while read_line(sock).startswith(b"250-"):
                pass
            line = read_line(sock)
            assert line.startswith(b"421 4.4.2 ") and b"timeout" in line, line
            assert read_line(sock) == b""

    def test_noop_keeps_a_session_from_idling_but_not_past_its_length(
        self, server: RunningServer
    ) -> None:
        """NOOP every 0.4 s keeps the idle timer from firing, but after 3 s the session ends
        with 421 4.4.2."""
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            started = time.monotonic()
            client.ehlo()
            codes = []
            with pytest.raises(smtplib.SMTPServerDisconnected):
                while time.monotonic() - started < 15:
                    time.sleep(0.4)
                    codes.append(client.noop())
            assert codes[-1][0] == 421 and codes[-1][1].startswith(b"4.4.2 "), codes[-1]
            assert {code for code, _ in codes[:-1]} == {250}
            assert 2.5 < time.monotonic() - started < 6

    def test_commands_past_the_limit_end_the_session(self, server: RunningServer) -> None:
        """The 21st command of a session that delivers nothing is answered 421 4.7.0 and the
        connection closed."""
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            codes = [client.noop()[0] for _ in range(19)]
            code, text = client.noop()
            assert codes == [250] * 19
            assert (code, text[:6]) == (421, b"4.7.0 "), text
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()

    def test_a_session_that_delivers_mail_may_go_on(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """Ten messages in one session (31 commands) are all accepted: the command limit
        counts commands since the last message accepted."""
        post = blog.post()
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            for n in range(10):
                address = blog.address(post, f"r{n}@example.org")
                raw = reply_message(f"r{n}@example.org", address, "Hi")
                assert client.sendmail(f"r{n}@example.org", [address], raw) == {}

    def test_slow_but_steady_data_is_not_idle(self, server: RunningServer, blog: Blog) -> None:
        """DATA arriving in pieces 0.4 s apart for 1.6 s (longer than the idle timeout) is
        progress, not idleness: it is stored."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "Slowly typed.")
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            client.mail(READER)
            client.rcpt(address)
            assert client.docmd("DATA")[0] == 354
            step = -(-len(raw) // 4)  # four pieces, 1.6 s in all
            for start in range(0, len(raw), step):
                client.sock.sendall(raw[start : start + step])
                time.sleep(0.4)
            client.sock.sendall(b".\r\n")
            reply = client.getreply()
            assert reply[0] == 250, reply

    def test_a_message_being_stored_gets_its_250_before_the_session_ends(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """The session's time runs out while its message waits for the database: it still
        gets its 250 (or its sender would send it again), then the 421."""
        address = blog.address(blog.post(), READER)
        database = server.settings.database_url.removeprefix("sqlite:///")
        lock = sqlite3.connect(database, isolation_level=None)
        with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
            client.ehlo()
            client.mail(READER)
            client.rcpt(address)
            lock.execute("BEGIN IMMEDIATE")  # the edge's commit now waits for this lock
            client.putcmd("DATA")
            assert client.getreply()[0] == 354
            client.send(reply_message(READER, address, "Stored in time") + b".\r\n")
            wait_for(lambda: server.server.handler.storing == 1, what="the commit to start")
            # A session started now, whose idle time runs out after the first one's did.
            with connect_from("127.0.0.1", server.port) as witness:
                assert read_line(witness).startswith(b"220 ")
                line = read_line(witness)
                assert line.startswith(b"421 4.4.2 "), line
            lock.execute("COMMIT")
            lock.close()
            assert client.getreply()[0] == 250
            code, text = client.getreply()
            assert (code, text[:6]) == (421, b"4.4.2 ")


def text_of_length(count: int) -> str:
    """Text of exactly `count` characters, in lines of 80 (no line ends in a space)."""
    line = "Thisreplygoesonandon,longerthananythingacommentfieldwouldtake;itnevertires.1234"
    text = "\n".join([line[:79]] * (count // 80 + 1))[:count]
    return text[:-1] + "." if text.endswith("\n") else text


class TestCommentLength:
    def test_emailed_comments_are_capped_as_web_ones_are(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A reply of 50,000 characters becomes a comment; one of 50,001 is rejected, its
        sender is told why, and none of the post's followers is mailed any of it."""
        post = blog.post()
        address = blog.address(post, READER)
        longest = text_of_length(MAX_COMMENT_CHARS)
        raw = reply_message(READER, address, longest, message_id="<longest@client.example>")
        send(server.port, READER, [address], raw)
        assert final_row(blog).status == InboundStatus.PROCESSED
        assert [len(comment.body) for comment in comments(blog)] == [MAX_COMMENT_CHARS]
        delivered(sink, "author@example.org")  # the author is told of the first one
        too_long = text_of_length(MAX_COMMENT_CHARS + 1)
        raw = reply_message(READER, address, too_long, message_id="<too-long@client.example>")
        send(server.port, READER, [address], raw)
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED
        assert (
            row.reason
            == "too long: the reply has 50001 characters, over the 50000 a comment may have"
        )
        [notice] = delivered(sink, READER)
        assert (
            "longer than the 50,000 characters a comment may have"
            in notice.get_body(("plain",)).get_content()
        )
        assert len(comments(blog)) == 1
        assert len(sink[0].to("author@example.org")) == 1  # mailed about the first one only
