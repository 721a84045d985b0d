"""A real HTTP receiver on 127.0.0.1 for replyd's webhooks, and the Standard Webhooks check
written here from the specification, independently of replyd's code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The signing key the tests configure, as Standard Webhooks gives it: whsec_ and base64.
KEY = bytes(range(1, 33))
WHSEC = "whsec_" + base64.b64encode(KEY).decode()


@dataclass(frozen=True)
class Arrival:
    """One request as it arrived: header fields (lower-case names), exact body bytes."""

    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value

    @property
    def comment_id(self) -> int:
        return int(self.event["comment"]["id"])


def expected_signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks: base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}", as "v1,..."."""
    content = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def check_signed(arrival: Arrival, key: bytes = KEY) -> None:
    """The request is signed as the specification says, over the very bytes received."""
    webhook_id = arrival.headers["webhook-id"]
    timestamp = arrival.headers["webhook-timestamp"]
    assert timestamp.isdigit() and abs(int(timestamp) - time.time()) < 120
    signatures = arrival.headers["webhook-signature"].split(" ")
    assert expected_signature(key, webhook_id, timestamp, arrival.body) in signatures


# Decides the answer to a request from its event and how many times that event came
# before: (HTTP status, seconds to wait before answering).
Rule = Callable[[dict[str, Any], int], tuple[int, float]]


class Receiver:
    """A ThreadingHTTPServer recording every POST; `rule` picks each answer."""

    def __init__(self, port: int = 0) -> None:
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        self.rule: Rule = lambda event, seen: (200, 0.0)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrival = Arrival(
                    {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with receiver.lock:
                    seen = sum(
                        1
                        for a in receiver.arrivals
                        if a.headers.get("webhook-id") == arrival.headers.get("webhook-id")
                    )
                    receiver.arrivals.append(arrival)
                status, delay = receiver.rule(json.loads(body), seen)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # replyd gave up waiting (the timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def got(self) -> list[Arrival]:
        with self.lock:
            return list(self.arrivals)

    def of_type(self, kind: str) -> list[Arrival]:
        return [a for a in self.got() if a.event["type"] == kind]
