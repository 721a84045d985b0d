"""Token-bucket throttles in memory, and the REPLYD_WEB_LIMITS rules: operator logins, web
comments per client and token, readers' comments and follows per client and address."""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

# login: wrong tokens at /admin/login per client address; client and token: requests to
# POST /api/posts/{id}/comments per client address and per bearer token; public: readers'
# comments and follows without the token (the embed, the page's form) per client address;
# email: of those, the ones that mail a confirmation, per address written to.
WEB_LIMIT_KINDS = ("login", "client", "token", "public", "email")
DEFAULT_WEB_LIMITS = "login=5/15m,client=120/10m,token=1200/10m,public=20/10m,email=5/h"
_RULE = re.compile(r"^(login|client|token|public|email)=(\d+)/(\d*)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class WebLimit:
    """At most `count` tries per `seconds` for one key (a burst of `count` is allowed)."""

    count: int
    seconds: float

    def describe(self) -> str:
        """The limit as a sentence part: "5 per 15 minutes"."""
        for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if self.seconds % seconds == 0:
                amount = int(self.seconds // seconds)
                return (
                    f"{self.count} per {unit}"
                    if amount == 1
                    else (f"{self.count} per {amount} {unit}s")
                )
        return f"{self.count} per {int(self.seconds)} seconds"


def parse_web_limits(text: str) -> dict[str, WebLimit]:
    """Parse REPLYD_WEB_LIMITS: "off", or rules like "login=5/15m,client=120/10m,token=1200/h";
    kinds not named are not limited."""
    text = text.strip().lower()
    if text in ("off", "none", "0", "false"):
        return {}
    limits: dict[str, WebLimit] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _RULE.match(part)
        if match is None or int(match.group(2)) < 1 or match.group(3) == "0":
            raise ValueError(
                f"{part!r} is not a web limit; write e.g. {DEFAULT_WEB_LIMITS} (kinds: "
                f"{', '.join(WEB_LIMIT_KINDS)}) or off"
            )
        kind, count, amount, unit = match.groups()
        limits[kind] = WebLimit(int(count), int(amount or 1) * _UNIT_SECONDS[unit])
    return limits


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now


class Throttle:
    """Token buckets per (kind, key), in this process's memory: say how long a key must wait."""

    MAX_KEYS = 100_000  # bounded memory under a flood of distinct clients

    def __init__(
        self, limits: dict[str, WebLimit], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def _bucket(self, kind: str, key: str, limit: WebLimit) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get((kind, key))
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._forget_full(now)
            bucket = self._buckets[(kind, key)] = _Bucket(float(limit.count), now)
        rate = limit.count / limit.seconds
        bucket.tokens = min(float(limit.count), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        return bucket

    def wait(self, kind: str, key: str) -> int:
        """Whole seconds until `key` may try again under `kind` (0: now), taking nothing."""
        limit = self.limits.get(kind)
        if limit is None:
            return 0
        bucket = self._bucket(kind, key, limit)
        if bucket.tokens >= 1:
            return 0
        return max(1, math.ceil((1 - bucket.tokens) * limit.seconds / limit.count))

    def take(self, kind: str, key: str) -> int:
        """Count one try of `key` under `kind`: 0 when allowed, else the seconds to wait (and
        nothing is counted)."""
        waiting = self.wait(kind, key)
        if waiting == 0 and kind in self.limits:
            self._buckets[(kind, key)].tokens -= 1
        return waiting

    def describe(self, kind: str) -> str:
        """The limit of `kind` as a sentence part, for refusals."""
        limit = self.limits.get(kind)
        return limit.describe() if limit is not None else "unlimited"

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled completely: they hold no information."""
        for (kind, key), bucket in list(self._buckets.items()):
            limit = self.limits[kind]
            if bucket.tokens + (now - bucket.updated) * limit.count / limit.seconds >= limit.count:
                del self._buckets[(kind, key)]
        if len(self._buckets) >= self.MAX_KEYS:
            self._buckets.clear()


def client_key(host: str | None) -> str:
    """Whom a request counts against: its IPv4 address, or its IPv6 /64 (one subscriber gets
    a whole /64 and could otherwise take a fresh address for every try)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
