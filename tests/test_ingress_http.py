"""The HTTP ingresses over real HTTP to a running replyd, with payloads built the way each
provider documents them: Mailgun's raw-MIME route, Postmark's inbound JSON, SendGrid's Inbound
Parse with the raw message, and the relay's message/rfc822."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr

import pytest

from service.runtime.settings import Settings
from service.store.models import InboundStatus
from tests.conftest import Blog, RunningServer, reply_message, wait_for
from tests.http_fixtures import API_TOKEN, HttpClient, Reply
from tests.ingress_helpers import READER, comments, inbound_rows, store_down

PASSWORD = "ingress-password-0123456789"
MAILGUN_KEY = "mailgun-signing-key-0123456789abcdef"


def multipart(fields: list[tuple[str, bytes]], boundary: str = "xYzZY") -> tuple[str, bytes]:
    """A multipart/form-data body as providers send it (text fields, no file names)."""
    out = b""
    for name, value in fields:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    return f"multipart/form-data; boundary={boundary}", out + f"--{boundary}--\r\n".encode()


def basic(password: str, user: str = "replyd") -> dict[str, str]:
    """An Authorization header as a webhook URL's user:password@ gives it."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@dataclass
class Ingress:
    """Sends a message to one ingress as its provider would."""

    name: str
    http: HttpClient
    settings: Settings
    encoding: str = "multipart"

    def send(self, raw: bytes, recipient: str, sender: str = READER, good: bool = True) -> Reply:
        """POST the message for `recipient`; with good=False, with wrong credentials."""
        return getattr(self, f"_{self.name}")(raw, recipient, sender, good)

    def _mailgun(self, raw: bytes, recipient: str, sender: str, good: bool) -> Reply:
        timestamp, token = str(int(time.time())), secrets.token_hex(25)
        key = MAILGUN_KEY if good else "not-the-signing-key-0123456789"
        signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256)
        return mailgun_post(
            self.http,
            [
                ("recipient", recipient.encode()),
                ("sender", sender.encode()),
                ("from", f"Reader <{sender}>".encode()),
                ("subject", b"Re: Post hello"),
                ("body-mime", raw),
                ("timestamp", timestamp.encode()),
                ("token", token.encode()),
                ("signature", signature.hexdigest().encode()),
            ],
            self.encoding,
        )

    def _postmark(self, raw: bytes, recipient: str, sender: str, good: bool) -> Reply:
        payload = {
            "FromName": "Reader",
            "MessageStream": "inbound",
            "From": sender,
            "FromFull": {"Email": sender, "Name": "Reader", "MailboxHash": ""},
            "To": recipient,
            "ToFull": [{"Email": recipient, "Name": "", "MailboxHash": ""}],
            "Cc": "",
            "CcFull": [],
            "Bcc": "",
            "BccFull": [],
            "OriginalRecipient": recipient,
            "Subject": "Re: Post hello",
            "MessageID": "22c74902-a0c1-4511-804f-341342852c90",
            "ReplyTo": "",
            "MailboxHash": "",
            "Date": "Thu, 3 Dec 2026 16:59:01 +0100",
            "TextBody": "(parsed text)",
            "HtmlBody": "",
            "StrippedTextReply": "",
            "Tag": "",
            "Headers": [{"Name": "Return-Path", "Value": f"<{sender}>"}],
            "Attachments": [],
            "RawEmail": raw.decode("utf-8", "surrogateescape"),
        }
        headers = {"Content-Type": "application/json", **basic(PASSWORD if good else "wrong")}
        return self.http.post("/ingress/postmark", json_body=payload, headers=headers, auth=False)

    def _sendgrid(self, raw: bytes, recipient: str, sender: str, good: bool) -> Reply:
        content_type, body = multipart(
            [
                ("email", raw),
                ("to", recipient.encode()),
                ("from", f"Reader <{sender}>".encode()),
                ("subject", b"Re: Post hello"),
                ("sender_ip", b"192.0.2.10"),
                ("envelope", json.dumps({"to": [recipient], "from": sender}).encode()),
                ("charsets", b'{"to":"UTF-8","from":"UTF-8","subject":"UTF-8"}'),
                ("dkim", b"{@example.org : pass}"),
                ("SPF", b"pass"),
                ("spam_score", b"0.1"),
            ]
        )
        headers = {"Content-Type": content_type, **basic(PASSWORD if good else "wrong")}
        return self.http.post("/ingress/sendgrid", data=body, headers=headers, auth=False)

    def _relay(self, raw: bytes, recipient: str, sender: str, good: bool) -> Reply:
        query = urllib.parse.urlencode({"recipient": recipient, "sender": sender})
        headers = {"Content-Type": "message/rfc822", **basic(PASSWORD if good else "wrong")}
        return self.http.post(f"/ingress/relay?{query}", data=raw, headers=headers, auth=False)


def mailgun_post(http: HttpClient, fields: list[tuple[str, bytes]], encoding: str) -> Reply:
    """POST Mailgun's form to the route URL ending in /mime."""
    if encoding == "multipart":
        content_type, body = multipart(fields)
    else:
        content_type = "application/x-www-form-urlencoded"
        body = "&".join(
            f"{urllib.parse.quote_plus(n)}={urllib.parse.quote_plus(v)}" for n, v in fields
        ).encode()
    headers = {"Content-Type": content_type}
    return http.post("/ingress/mailgun/mime", data=body, headers=headers, auth=False)


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """Both ingress secrets set, and the API token (to read the inbound log)."""
    return {
        "REPLYD_INGRESS_PASSWORD": PASSWORD,
        "REPLYD_MAILGUN_SIGNING_KEY": MAILGUN_KEY,
        "REPLYD_API_TOKEN": API_TOKEN,
    }


@pytest.fixture
def http(server: RunningServer) -> HttpClient:
    """A client for the running server's HTTP port (no API token)."""
    return HttpClient(f"http://127.0.0.1:{server.server.http_port}", token=None)


PROVIDERS = ["mailgun", "postmark", "sendgrid", "relay"]
# What each answers for a recipient that is not ours: its documented "do not retry".
REFUSED_STATUS = {"mailgun": 406, "postmark": 403, "sendgrid": 200, "relay": 422}


@pytest.fixture(params=PROVIDERS)
def ingress(request: pytest.FixtureRequest, http: HttpClient, settings: Settings) -> Ingress:
    """Each ingress in turn."""
    return Ingress(request.param, http, settings)


def finished(blog: Blog, count: int) -> Callable[[], bool]:
    """Whether `count` rows are stored and all of them reached a terminal state."""

    def check() -> bool:
        rows = inbound_rows(blog.parts)
        waiting = {InboundStatus.RECEIVED, InboundStatus.PROCESSING}
        return len(rows) == count and all(row.status not in waiting for row in rows)

    return check


class TestEveryIngress:
    def test_reply_becomes_a_comment(self, ingress: Ingress, blog: Blog) -> None:
        """200 once stored, raw exactly as sent, marked with its entrance; then published."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, f"Sent through {ingress.name}.")
        reply = ingress.send(raw, address)
        assert reply.status == 200, reply.text
        [row] = inbound_rows(blog.parts)
        assert reply.json()["stored"] == [row.id]
        assert (row.raw, row.recipient, row.sender, row.via) == (raw, address, READER, ingress.name)
        wait_for(lambda: comments(blog.parts), what="the comment")
        assert comments(blog.parts)[0].body == f"Sent through {ingress.name}."

    def test_wrong_credentials_refused_nothing_stored(self, ingress: Ingress, blog: Blog) -> None:
        """A bad signature or password: 401, and nothing stored."""
        address = blog.address(blog.post(), READER)
        reply = ingress.send(reply_message(READER, address, "hi"), address, good=False)
        assert reply.status == 401
        assert "error" in reply.json()
        assert inbound_rows(blog.parts) == []

    def test_provider_retry_makes_no_second_comment(self, ingress: Ingress, blog: Blog) -> None:
        """The provider sends the same message again (a retry): one comment; the second copy
        ends ignored as a duplicate."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "Only once, please.")
        assert ingress.send(raw, address).status == 200
        assert ingress.send(raw, address).status == 200
        wait_for(finished(blog, 2), what="both copies processed")
        assert len(comments(blog.parts)) == 1
        second = inbound_rows(blog.parts)[1]
        assert second.status == InboundStatus.IGNORED and "duplicate" in (second.reason or "")

    def test_store_down_answers_5xx_then_retry_succeeds(
        self, ingress: Ingress, blog: Blog, settings: Settings
    ) -> None:
        """While the store fails: 503 and nothing kept; the provider's later retry: 200."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "After the outage.")
        with store_down(settings):
            reply = ingress.send(raw, address)
        assert reply.status == 503 and reply.headers["Retry-After"]
        assert "sqlite" not in reply.text.lower()
        assert ingress.send(raw, address).status == 200
        wait_for(lambda: comments(blog.parts), what="the comment")

    def test_refused_recipient_gets_the_do_not_retry_status(
        self, ingress: Ingress, blog: Blog
    ) -> None:
        """An address that is not ours: the provider's "do not retry" status, the edge's
        sentence, nothing stored."""
        raw = reply_message(READER, "someone@elsewhere.org", "hi")
        reply = ingress.send(raw, "someone@elsewhere.org")
        assert reply.status == REFUSED_STATUS[ingress.name]
        assert reply.json()["refused"] == [
            "550 5.1.1 <someone@elsewhere.org>: this server only accepts replies to its own "
            "reply addresses"
        ]
        assert inbound_rows(blog.parts) == []


class TestInboundLog:
    def test_api_tells_the_entrance(self, http: HttpClient, settings: Settings, blog: Blog) -> None:
        """GET /api/inbound gives `via` for each message: the ingress it came through."""
        address = blog.address(blog.post(), READER)
        for name in PROVIDERS:
            Ingress(name, http, settings).send(reply_message(READER, address, name), address)
        reply = http.get("/api/inbound", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert [item["via"] for item in reply.json()["items"]] == PROVIDERS[::-1]


class TestLimits:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """A 4 KB message limit and two messages per reply address an hour."""
        return {
            "REPLYD_INGRESS_PASSWORD": PASSWORD,
            "REPLYD_MAILGUN_SIGNING_KEY": MAILGUN_KEY,
            "REPLYD_MAX_MESSAGE_BYTES": "4096",
            "REPLYD_RATE_LIMITS": "address=2/h",
        }

    def test_oversize_answers_413(self, ingress: Ingress, blog: Blog) -> None:
        """A message over REPLYD_MAX_MESSAGE_BYTES: 413 with the edge's size sentence."""
        address = blog.address(blog.post(), READER)
        reply = ingress.send(reply_message(READER, address, "x" * 8000), address)
        assert reply.status == 413
        assert reply.json()["error"] == (
            "552 5.3.4 Message too big for this service (limit 4096 bytes)"
        )
        assert inbound_rows(blog.parts) == []

    def test_rate_limit_is_the_edges(
        self, ingress: Ingress, blog: Blog, server: RunningServer
    ) -> None:
        """The SMTP listener's limits count here too: after two messages to one reply address
        (one by SMTP), the third is told to come back later (429, or 503 for SendGrid)."""
        from tests.conftest import send

        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "by SMTP"))
        assert ingress.send(reply_message(READER, address, "one"), address).status == 200
        reply = ingress.send(reply_message(READER, address, "two"), address)
        assert reply.status == (503 if ingress.name == "sendgrid" else 429)
        assert "Too many messages to this reply address" in reply.json()["error"]
        assert len(inbound_rows(blog.parts)) == 2


class TestMailgun:
    def signed(
        self, raw: bytes, address: str, timestamp: str, token: str
    ) -> list[tuple[str, bytes]]:
        """Mailgun's raw-MIME route fields for one message, correctly signed."""
        signature = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256)
        return [
            ("recipient", address.encode()),
            ("sender", READER.encode()),
            ("body-mime", raw),
            ("timestamp", timestamp.encode()),
            ("token", token.encode()),
            ("signature", signature.hexdigest().encode()),
        ]

    def test_stale_timestamp_refused(self, http: HttpClient, blog: Blog) -> None:
        """A correctly signed request from ten minutes ago: 401, nothing stored."""
        address = blog.address(blog.post(), READER)
        stale = str(int(time.time()) - 600)
        fields = self.signed(reply_message(READER, address, "hi"), address, stale, "t" * 50)
        reply = mailgun_post(http, fields, "multipart")
        assert reply.status == 401 and "stale" in reply.json()["error"]
        assert inbound_rows(blog.parts) == []

    def test_replayed_token_refused(self, http: HttpClient, blog: Blog) -> None:
        """The very same signed request sent twice: the second gets 401 and stores nothing."""
        address = blog.address(blog.post(), READER)
        now = str(int(time.time()))
        fields = self.signed(reply_message(READER, address, "hi"), address, now, "r" * 50)
        assert mailgun_post(http, fields, "multipart").status == 200
        again = mailgun_post(http, fields, "multipart")
        assert again.status == 401 and "used before" in again.json()["error"]
        assert len(inbound_rows(blog.parts)) == 1

    @pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
    def test_8bit_message_stored_byte_for_byte(
        self, http: HttpClient, settings: Settings, blog: Blog, encoding: str
    ) -> None:
        """A windows-1251 8-bit body (not UTF-8) arrives in either form encoding and is
        stored exactly as sent, and read in its own charset."""
        address = blog.address(blog.post(), READER)
        raw = (
            f"From: Reader <{READER}>\r\nTo: {address}\r\nSubject: Re: Post hello\r\n"
            "Message-ID: <cp1251@client.example.net>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=windows-1251\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode() + "Привет, отличный пост!\r\n".encode("cp1251")
        sender = Ingress("mailgun", http, settings, encoding)
        assert sender.send(raw, address).status == 200
        assert inbound_rows(blog.parts)[0].raw == raw
        wait_for(lambda: comments(blog.parts), what="the comment")
        assert comments(blog.parts)[0].body == "Привет, отличный пост!"

    def test_route_without_mime_is_told_what_to_change(self, http: HttpClient, blog: Blog) -> None:
        """A route forwarding the parsed form (no body-mime): 400 saying to end the URL in
        /mime; nothing stored."""
        address = blog.address(blog.post(), READER)
        fields = [
            f
            for f in self.signed(b"", address, str(int(time.time())), "p" * 50)
            if f[0] != "body-mime"
        ] + [("body-plain", b"hi")]
        reply = mailgun_post(http, fields, "urlencoded")
        assert reply.status == 400 and "/mime" in reply.json()["error"]
        assert inbound_rows(blog.parts) == []


class TestBasicAuth:
    @pytest.mark.parametrize("path", ["/ingress/postmark", "/ingress/sendgrid", "/ingress/relay"])
    def test_no_credentials_asks_for_them(self, http: HttpClient, path: str) -> None:
        """No Authorization at all: 401 with a Basic challenge."""
        reply = http.post(path, data=b"{}", headers={"Content-Type": "message/rfc822"}, auth=False)
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"].startswith("Basic")

    def test_any_user_name_with_the_password(self, http: HttpClient, blog: Blog) -> None:
        """The user name is not checked (Action Mailbox's relay uses its own); the password is."""
        address = blog.address(blog.post(), READER)
        headers = {"Content-Type": "message/rfc822", **basic(PASSWORD, user="anything")}
        reply = http.post(
            "/ingress/relay", data=reply_message(READER, address, "hi"), headers=headers, auth=False
        )
        assert reply.status == 200

    def test_relay_takes_recipient_and_sender_from_the_header(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """No query: X-Original-To names the recipient and Return-Path the sender."""
        address = blog.address(blog.post(), READER)
        raw = f"Return-Path: <{READER}>\r\nX-Original-To: {address}\r\n".encode() + reply_message(
            READER, "notifications@replies.example.org", "hi"
        )
        headers = {"Content-Type": "message/rfc822", **basic(PASSWORD)}
        assert http.post("/ingress/relay", data=raw, headers=headers, auth=False).status == 200
        [row] = inbound_rows(blog.parts)
        assert (row.recipient, row.sender) == (address, READER)

    def test_relay_wants_rfc822(self, http: HttpClient) -> None:
        """Another content type: 415 saying which one."""
        headers = {"Content-Type": "text/plain", **basic(PASSWORD)}
        reply = http.post(
            "/ingress/relay", data=b"Subject: x\r\n\r\nx", headers=headers, auth=False
        )
        assert reply.status == 415 and "message/rfc822" in reply.json()["error"]

    def test_postmark_without_raw_email_is_told_the_setting(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """Postmark's JSON without RawEmail: 400 naming the setting; nothing stored."""
        headers = {"Content-Type": "application/json", **basic(PASSWORD)}
        payload = {"OriginalRecipient": "x@replies.example.org", "TextBody": "hi"}
        reply = http.post("/ingress/postmark", json_body=payload, headers=headers, auth=False)
        assert reply.status == 400 and "Include raw email content" in reply.json()["error"]
        assert inbound_rows(blog.parts) == []

    def test_postmark_forwarded_copy_finds_our_address_in_to(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """Mail forwarded to Postmark's own inbound address: our reply address in ToFull."""
        address = blog.address(blog.post(), READER)
        payload = {
            "OriginalRecipient": "abc123@inbound.postmarkapp.com",
            "ToFull": [{"Email": address, "Name": ""}],
            "RawEmail": reply_message(READER, address, "hi").decode(),
        }
        headers = {"Content-Type": "application/json", **basic(PASSWORD)}
        assert (
            http.post("/ingress/postmark", json_body=payload, headers=headers, auth=False).status
            == 200
        )
        assert parseaddr(inbound_rows(blog.parts)[0].recipient)[1] == address


class TestClosed:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """No ingress secret set."""
        return {}

    @pytest.mark.parametrize("path", ["/ingress/mailgun", "/ingress/relay"])
    def test_unconfigured_ingress_is_closed(self, http: HttpClient, blog: Blog, path: str) -> None:
        """Without its secret an ingress answers 503 naming the setting (the provider keeps
        the mail), and stores nothing."""
        reply = http.post(path, data=b"x", headers={"Content-Type": "message/rfc822"}, auth=False)
        assert reply.status == 503 and "REPLYD_" in reply.json()["error"]
        assert inbound_rows(blog.parts) == []
