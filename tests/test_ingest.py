"""`replyd ingest` as an MTA's pipe runs it: stored with exit 0, and 65, 67, 75 as sysexits
says, with the SMTP edge's own sentences."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys

import pytest

from service.runtime.settings import Settings
from tests.conftest import Blog, RunningServer, reply_message, send, wait_for
from tests.ingress_helpers import (
    READER,
    REPLYD,
    comments,
    inbound_rows,
    ingest_env,
    run_ingest,
    store_down,
)


def smtp_refusal(server: RunningServer, address: str) -> str:
    """The reply line the SMTP listener gives RCPT TO:<address>."""
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.ehlo()
        client.mail(READER)
        code, text = client.rcpt(address)
    return f"{code} {text.decode()}"


class TestStored:
    def test_pipe_delivery_becomes_a_comment(
        self, server: RunningServer, blog: Blog, settings: Settings
    ) -> None:
        """Exit 0 once stored, exactly as received, marked via=pipe; the workers publish it."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "Piped in, and it reads fine.")
        result = run_ingest(ingest_env(settings), raw, "--sender", READER, "--recipient", address)
        assert result.returncode == 0, result.stderr
        [row] = inbound_rows(blog.parts)
        assert (row.raw, row.sender, row.recipient, row.via) == (raw, READER, address, "pipe")
        wait_for(lambda: comments(blog.parts), what="the comment")
        assert comments(blog.parts)[0].body == "Piped in, and it reads fine."

    def test_recipient_and_sender_from_the_header_when_not_given(
        self, blog: Blog, settings: Settings
    ) -> None:
        """Without options, Delivered-To names the recipient and Return-Path the sender."""
        address = blog.address(blog.post(), READER)
        raw = f"Return-Path: <{READER}>\r\nDelivered-To: {address}\r\n".encode() + reply_message(
            READER, "Blog <notifications@replies.example.org>", "Hello"
        )
        result = run_ingest(ingest_env(settings), raw)
        assert result.returncode == 0, result.stderr
        [row] = inbound_rows(blog.parts)
        assert (row.recipient, row.sender) == (address, READER)

    def test_null_sender_is_kept_as_a_bounce(self, blog: Blog, settings: Settings) -> None:
        """`--sender ''` (Postfix's null_sender=) is the null sender, as MAIL FROM:<> is."""
        address = blog.address(blog.post(), READER)
        raw = reply_message("mailer-daemon@example.net", address, "Undeliverable")
        result = run_ingest(ingest_env(settings), raw, "--sender", "", "--recipient", address)
        assert result.returncode == 0, result.stderr
        assert inbound_rows(blog.parts)[0].sender == ""


class TestRefused:
    def test_bad_token_exits_67_with_the_smtp_sentence(
        self, server: RunningServer, blog: Blog, settings: Settings
    ) -> None:
        """A reply address that does not verify: EX_NOUSER, and on stderr the very line the
        SMTP listener answers RCPT with; nothing stored."""
        address = blog.address(blog.post(), READER)
        local, domain = address.split("@")
        tampered = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
        raw = reply_message(READER, tampered, "hi")
        result = run_ingest(ingest_env(settings), raw, "--sender", READER, "--recipient", tampered)
        assert result.returncode == 67
        said = smtp_refusal(server, tampered)
        assert said.startswith("550 5.1.1 ")
        assert result.stderr.decode().splitlines() == [said]
        assert inbound_rows(blog.parts) == []

    def test_foreign_address_exits_67(
        self, server: RunningServer, blog: Blog, settings: Settings
    ) -> None:
        """An address outside our domain, named only in To: EX_NOUSER with the edge's line."""
        raw = reply_message(READER, "someone@elsewhere.org", "hi")
        result = run_ingest(ingest_env(settings), raw)
        assert result.returncode == 67
        assert result.stderr.decode().strip() == smtp_refusal(server, "someone@elsewhere.org")
        assert inbound_rows(blog.parts) == []

    def test_some_recipients_ours_stores_for_those(self, blog: Blog, settings: Settings) -> None:
        """One good and one foreign recipient: stored for the good one, the other explained."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "hi")
        args = ["--recipient", address, "--recipient", "x@elsewhere.org"]
        result = run_ingest(ingest_env(settings), raw, "--sender", READER, *args)
        assert result.returncode == 0
        assert b"<x@elsewhere.org>" in result.stderr
        assert [row.recipient for row in inbound_rows(blog.parts)] == [address]


class TestDataErrors:
    def test_oversize_exits_65(self, blog: Blog, settings: Settings) -> None:
        """Over REPLYD_MAX_MESSAGE_BYTES: EX_DATAERR with the size sentence; nothing stored."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "x" * 5000)
        env = ingest_env(settings, REPLYD_MAX_MESSAGE_BYTES="2048")
        result = run_ingest(env, raw, "--recipient", address)
        assert result.returncode == 65
        assert result.stderr.decode().strip() == (
            "552 5.3.4 Message too big for this service (limit 2048 bytes)"
        )
        assert inbound_rows(blog.parts) == []

    @pytest.mark.parametrize("raw", [b"", b"\x00\x01 not mail at all\r\n"], ids=["empty", "binary"])
    def test_unreadable_exits_65(self, blog: Blog, settings: Settings, raw: bytes) -> None:
        """Nothing, or bytes that do not start with a header: EX_DATAERR; nothing stored."""
        address = blog.address(blog.post(), READER)
        result = run_ingest(ingest_env(settings), raw, "--recipient", address)
        assert result.returncode == 65
        assert b"not a mail message" in result.stderr
        assert inbound_rows(blog.parts) == []


class TestTemporary:
    def test_store_unavailable_exits_75_then_stores(self, blog: Blog, settings: Settings) -> None:
        """The store fails: EX_TEMPFAIL (the MTA keeps it), no traceback; the retry stores."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "hi")
        args = ["--sender", READER, "--recipient", address]
        with store_down(settings):
            result = run_ingest(ingest_env(settings), raw, *args)
        assert result.returncode == 75
        assert b"tries again later" in result.stderr and b"Traceback" not in result.stderr
        assert run_ingest(ingest_env(settings), raw, *args).returncode == 0
        assert len(inbound_rows(blog.parts)) == 1

    def test_unmigrated_database_exits_75(self, tmp_path: object, settings: Settings) -> None:
        """A database without the schema: EX_TEMPFAIL, saying to run `replyd db upgrade`."""
        env = ingest_env(settings, REPLYD_DATABASE_URL=f"sqlite:///{settings.var_dir}/new.db")
        raw = reply_message(READER, "x@replies.example.org", "hi")
        result = run_ingest(env, raw, "--recipient", "x@replies.example.org")
        assert result.returncode == 75
        assert b"replyd db upgrade" in result.stderr

    def test_rate_limit_counts_across_processes(self, blog: Blog, settings: Settings) -> None:
        """The limit holds although every delivery is a new process: the third message to one
        reply address in the hour exits 75 with the edge's 450 sentence."""
        address = blog.address(blog.post(), READER)
        env = ingest_env(settings, REPLYD_RATE_LIMITS="address=2/h")
        codes = []
        for number in range(3):
            raw = reply_message(READER, address, f"reply {number}")
            result = run_ingest(env, raw, "--sender", READER, "--recipient", address)
            codes.append(result.returncode)
        assert codes == [0, 0, 75]
        assert result.stderr.decode().strip() == (
            "450 4.7.1 Too many messages to this reply address; please try again later"
        )
        assert len(inbound_rows(blog.parts)) == 2
        off = ingest_env(settings, REPLYD_RATE_LIMITS="off")
        assert run_ingest(off, raw, "--sender", READER, "--recipient", address).returncode == 0


class TestStart:
    def test_ingest_does_not_load_the_server_stack(self, blog: Blog, settings: Settings) -> None:
        """An MTA starts it per message: no HTTP stack, SMTP server, alembic or talon."""
        address = blog.address(blog.post(), READER)
        code = (
            "import sys\n"
            "from service.cli import main\n"
            f"code = main(['ingest', '--recipient', {address!r}])\n"
            "heavy = ['starlette', 'uvicorn', 'aiosmtpd', 'alembic', 'talon', 'multipart']\n"
            "print(code, [m for m in heavy if m in sys.modules or "
            "any(k.startswith(m + '.') for k in sys.modules)])\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            input=reply_message(READER, address, "hi"),
            env={**os.environ, **ingest_env(settings)},
            capture_output=True,
            timeout=60,
        )
        assert result.stdout.decode().split() == ["0", "[]"], result.stderr

    def test_inbound_list_tells_each_entrance(
        self, server: RunningServer, blog: Blog, settings: Settings
    ) -> None:
        """`replyd inbound list --json` gives `via`: smtp for the listener, pipe for ingest;
        `inbound show` says it too."""
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "by SMTP"))
        raw = reply_message(READER, address, "by pipe")
        run_ingest(ingest_env(settings), raw, "--sender", READER, "--recipient", address)
        env = {**os.environ, **ingest_env(settings)}
        listed = subprocess.run(
            [*REPLYD, "inbound", "list", "--json"], env=env, capture_output=True, timeout=60
        )
        assert [row["via"] for row in json.loads(listed.stdout)] == ["pipe", "smtp"]
        newest = inbound_rows(blog.parts)[-1].id
        shown = subprocess.run(
            [*REPLYD, "inbound", "show", str(newest)], env=env, capture_output=True, timeout=60
        )
        assert "via:         pipe" in shown.stdout.decode()
