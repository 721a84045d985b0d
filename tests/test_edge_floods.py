"""Floods at the edge (issue 17): connection caps under the open file limit, accept errors
logged at a bounded rate, HTTP requests that must arrive in time."""

from __future__ import annotations

import smtplib
import socket
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from service.runtime.settings import Settings
from tests.conftest import Blog, RunningServer, free_port, reply_message, send, wait_for
from tests.test_edge_limits import (
    READER,
    connect_from,
    healthz,
    read_line,
    replyd_serve,
    whole_answer,
)
from tests.test_nodes import node_env


class TestUnderTheFileLimit:
    def test_the_open_file_limit_is_raised_to_the_hard_limit(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """Started with a soft limit of 256 open files under a hard one of 1024, `replyd
        serve` runs with 1024, under which its default caps fit."""
        env = node_env(settings, free_port(), tmp_path / "outbox")
        log = tmp_path / "node.log"
        with replyd_serve(env, log, open_files=1024, soft_limit=256) as node:
            limits = Path(f"/proc/{node.pid}/limits").read_text()
            line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
            assert line.split()[3:5] == ["1024", "1024"], line
        # 1024 files hold the default caps (500 SMTP, 200 HTTP) and what replyd needs besides.
        assert "the open file limit" not in log.read_text()

    def test_a_flood_of_connections_leaves_room_for_honest_mail_and_healthz(
        self, settings: Settings, blog: Blog, tmp_path: Path
    ) -> None:
        """`replyd serve` limited to 512 open files; one client opens 600 SMTP connections and
        300 half-sent HTTP requests. Caps (lowered to fit the limit) refuse the excess with
        421 and 503, honest mail from elsewhere gets 250, /healthz answers 200, the half-sent
        requests let in get 408 when their time is up, and no accept error is logged."""
        address = blog.address(blog.post(), READER)
        port, http_port = free_port(), free_port()
        log = tmp_path / "node.log"
        env = node_env(
            settings,
            port,
            tmp_path / "outbox",
            REPLYD_HTTP_PORT=str(http_port),
            REPLYD_HTTP_REQUEST_TIMEOUT="2",
        )
        with replyd_serve(env, log, open_files=512), ExitStack() as stack:
            held = [stack.enter_context(connect_from("127.0.0.2", port)) for _ in range(600)]
            half = []
            for _ in range(300):
                sock = stack.enter_context(connect_from("127.0.0.2", http_port))
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: replyd\r\n")
                half.append(sock)
            greetings = [read_line(sock)[:9] for sock in held]
            assert greetings.count(b"220 repli") == 20
            assert greetings.count(b"421 4.7.0") == 580
            assert healthz(http_port) == (
                200,
                {"status": "ok", "database": "ok", "listener": "bound"},
            )
            assert send(port, READER, [address], reply_message(READER, address, "Hi")) == {}
            answers = [whole_answer(sock)[:12] for sock in half]
            assert answers.count(b"HTTP/1.1 503") == 250
            assert answers.count(b"HTTP/1.1 408") == 50  # after two seconds
        text = log.read_text()
        assert "the open file limit (512) leaves room for 192 connections" in text, text
        assert not [line for line in text.splitlines() if _about_accepting(line)], text

    def test_a_flood_from_many_addresses_is_refused_not_dropped(
        self, settings: Settings, blog: Blog, tmp_path: Path
    ) -> None:
        """Limited to 512 open files, 600 SMTP connections and 300 half-sent HTTP requests
        from 40 addresses fill the total caps (lowered to fit): every connection past them
        is answered 421 or 503, none is left unanswered, and once the flood is gone honest
        mail gets 250. (A process starved of CPU by the flood may run out of files for a
        moment while refused connections wait to be closed: logged once at most.)"""
        address = blog.address(blog.post(), READER)
        port, http_port = free_port(), free_port()
        log = tmp_path / "node.log"
        env = node_env(
            settings,
            port,
            tmp_path / "outbox",
            REPLYD_HTTP_PORT=str(http_port),
            REPLYD_HTTP_REQUEST_TIMEOUT="2",
        )
        clients = [f"127.0.0.{n}" for n in range(2, 42)]
        with replyd_serve(env, log, open_files=512):
            with ExitStack() as stack:
                held = [
                    stack.enter_context(connect_from(clients[n % 40], port)) for n in range(600)
                ]
                half = []
                for n in range(300):
                    sock = stack.enter_context(connect_from(clients[n % 40], http_port))
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: replyd\r\n")
                    half.append(sock)
                greetings = [read_line(sock)[:9] for sock in held]
                # 500 and 200 wanted; 137 and 54 fit under 512 files beside what replyd needs.
                assert greetings.count(b"220 repli") == 137
                assert greetings.count(b"421 4.7.0") == 463
                answers = [whole_answer(sock)[:12] for sock in half]
                assert answers.count(b"HTTP/1.1 503") == 246
                assert answers.count(b"HTTP/1.1 408") == 54
            wait_for(lambda: healthz(http_port)[0] == 200, what="/healthz once the flood is gone")
            assert send(port, READER, [address], reply_message(READER, address, "Hi")) == {}
        text = log.read_text()
        assert len([line for line in text.splitlines() if _about_accepting(line)]) <= 1, text


class TestAcceptErrors:
    def test_out_of_files_is_logged_once_a_minute(self, settings: Settings, tmp_path: Path) -> None:
        """With caps off and 128 open files, a flood of connections runs the server out of
        file descriptors: asyncio fails an accept every second, replyd logs it once."""
        port = free_port()
        log = tmp_path / "node.log"
        env = node_env(
            settings,
            port,
            tmp_path / "outbox",
            REPLYD_MAX_CONNECTIONS="off",
            REPLYD_MAX_CONNECTIONS_PER_CLIENT="off",
            REPLYD_WORKER_PROCESSES="0",
        )
        with replyd_serve(env, log, open_files=128), ExitStack() as stack:
            held = []
            for _ in range(150):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                held.append(stack.enter_context(sock))
            wait_for(
                lambda: "could not accept a connection" in log.read_text(),
                what="the server to run out of files",
            )
            time.sleep(3.5)  # asyncio retries (and reports) a failed accept every second
            lines = [line for line in log.read_text().splitlines() if _about_accepting(line)]
            assert len(lines) == 1, lines
            for sock in held:
                sock.close()
            wait_for(lambda: _greets(port), timeout=10, what="the listener to accept again")


def _about_accepting(line: str) -> bool:
    return "could not accept" in line or "out of system resource" in line


def _greets(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            return client.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


class TestHttpRequests:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """A request must arrive within a second."""
        return {"REPLYD_HTTP_REQUEST_TIMEOUT": "1"}

    def test_half_sent_requests_are_answered_and_closed(self, server: RunningServer) -> None:
        """500 connections from one address each send half a request: 50 at a time are let
        in and get 408 after a second, the rest 503 at once; all are closed; /healthz from
        another address answers 200 meanwhile."""
        http_port = server.server.http_port
        with ExitStack() as stack:
            half = []
            for _ in range(500):
                sock = stack.enter_context(connect_from("127.0.0.2", http_port))
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: replyd\r\n")
                half.append(sock)
            assert healthz(http_port)[0] == 200
            started = time.monotonic()
            answers = [whole_answer(sock) for sock in half]
            assert time.monotonic() - started < 5
        statuses = [answer.split(b" ", 2)[1] for answer in answers]
        # 50 at a time are let in; once they are answered, later ones may take their places.
        assert statuses.count(b"408") >= 50 and statuses.count(b"503") >= 300
        assert statuses.count(b"408") + statuses.count(b"503") == 500

    def test_a_prompt_request_on_a_kept_alive_connection_is_served(
        self, server: RunningServer
    ) -> None:
        """Two requests a second apart on one connection, each sent whole: both answered."""
        http_port = server.server.http_port
        with connect_from("127.0.0.1", http_port) as sock:
            for _ in range(2):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: replyd\r\n\r\n")
                head = _read_until(sock, b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                _read_exactly(sock, length)
                time.sleep(0.7)


class TestHttpCaps:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Two HTTP connections per client address."""
        return {"REPLYD_HTTP_MAX_CONNECTIONS_PER_CLIENT": "2"}

    def test_a_connection_over_the_cap_is_answered_503_even_if_it_sends_nothing(
        self, server: RunningServer
    ) -> None:
        """Past two connections from one address, a third that sends nothing gets its 503
        within a second or so and is closed; another address is served."""
        http_port = server.server.http_port
        with ExitStack() as stack:
            for _ in range(2):
                stack.enter_context(connect_from("127.0.0.2", http_port))
            silent = stack.enter_context(connect_from("127.0.0.2", http_port))
            started = time.monotonic()
            answer = whole_answer(silent)
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
            assert answer.endswith(
                b"Too many connections from your address; please try again later.\n"
            )
            assert time.monotonic() - started < 5
            with connect_from("127.0.0.3", http_port) as other:
                other.sendall(b"GET /healthz HTTP/1.1\r\nHost: replyd\r\nConnection: close\r\n\r\n")
                assert whole_answer(other).startswith(b"HTTP/1.1 200")


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        piece = sock.recv(1)
        assert piece, "closed early"
        data += piece
    return data


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        piece = sock.recv(count - len(data))
        assert piece, "closed early"
        data += piece
    return data
