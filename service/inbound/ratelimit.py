"""Rate limits per sender, per client address and per reply address (token buckets, in
memory): looked at at RCPT, counted once a message is stored."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_RULE = re.compile(r"^(sender|address|client)=(\d+)/(\d*)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_RULES = "sender=30/10m,address=20/10m"


@dataclass(frozen=True)
class Limit:
    """At most `count` messages per `seconds` for one key (a burst of `count` is allowed)."""

    count: int
    seconds: float


def parse_limits(text: str) -> dict[str, Limit]:
    """Parse REPLYD_RATE_LIMITS: "off", or rules like "sender=30/10m,address=20/h,client=300/h"."""
    text = text.strip().lower()
    if text in ("off", "none", "0", "false"):
        return {}
    limits: dict[str, Limit] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _RULE.match(part)
        if match is None or int(match.group(2)) < 1:
            raise ValueError(
                f"{part!r} is not a rate limit; write e.g. sender=30/10m,address=20/h or off"
            )
        kind, count, amount, unit = match.groups()
        limits[kind] = Limit(int(count), int(amount or 1) * _UNIT_SECONDS[unit])
    return limits


def sender_key(client: str, sender: str) -> str:
    """The key of the sender limit: the envelope sender as seen from one client address, so
    that mail forged in someone's name elsewhere does not use up their allowance."""
    return f"{client} {sender}"


def _folded(key: str) -> str:
    """Keys are addresses: compared without regard to case, as MTAs change it."""
    return key.lower()


class Bucket:
    """Token bucket: refills continuously, so a steady sender is never cut off in bursts."""

    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now


class RateLimiter:
    """Counts stored messages per key; says when a key is over its limit."""

    MAX_KEYS = 100_000  # bounded memory under a flood of distinct senders

    def __init__(
        self, limits: dict[str, Limit], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.buckets: dict[tuple[str, str], Bucket] = {}

    def allows(self, kind: str, key: str, count: int = 1) -> bool:
        """Whether `key` has room for `count` more messages under the `kind` limit; takes
        nothing (an RCPT without DATA must not use up anyone's allowance)."""
        limit = self.limits.get(kind)
        if limit is None:
            return True
        bucket = self.buckets.get((kind, _folded(key)))
        if bucket is None:
            return count <= limit.count
        return self._refilled(bucket, limit, self.clock()) >= count

    def charge(self, kind: str, key: str, count: int = 1) -> None:
        """Count `count` stored messages against `key`. Sessions that were let through at RCPT
        together may take it below zero: it then stays limited until refilled above one."""
        limit = self.limits.get(kind)
        if limit is None:
            return
        now = self.clock()
        bucket = self._bucket(kind, _folded(key), limit, now)
        bucket.tokens = max(-float(limit.count), self._refilled(bucket, limit, now) - count)
        bucket.updated = now

    def allow(self, kind: str, key: str) -> bool:
        """Take one token for `key` under the `kind` limit; False when none is left."""
        if not self.allows(kind, key):
            return False
        self.charge(kind, key)
        return True

    @staticmethod
    def _refilled(bucket: Bucket, limit: Limit, now: float) -> float:
        rate = limit.count / limit.seconds
        return min(float(limit.count), bucket.tokens + (now - bucket.updated) * rate)

    def _bucket(self, kind: str, key: str, limit: Limit, now: float) -> Bucket:
        bucket = self.buckets.get((kind, key))
        if bucket is None:
            if len(self.buckets) >= self.MAX_KEYS:
                self._forget_full(now)
            bucket = self.buckets[(kind, key)] = Bucket(float(limit.count), now)
        return bucket

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled completely: they hold no information."""
        for (kind, key), bucket in list(self.buckets.items()):
            limit = self.limits[kind]
            if self._refilled(bucket, limit, now) >= limit.count:
                del self.buckets[(kind, key)]
        if len(self.buckets) >= self.MAX_KEYS:
            self.buckets.clear()
