"""Rate limits counted from the stored mail itself, for an entrance that runs one process per
message (`replyd ingest`), where nothing kept in memory outlives the message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from service.inbound.ratelimit import Limit
from service.store.models import InboundEmail, utcnow

# Which column each kind of limit counts by; the edge's in-memory limiter keys the same way.
_COLUMNS = {"sender": InboundEmail.sender, "address": InboundEmail.recipient}


class StoredMailLimits:
    """REPLYD_RATE_LIMITS as a sliding window over the inbound rows of the last period,
    whatever entrance stored them: at most `count` rows per key in any `seconds`."""

    def __init__(
        self, engine: Engine, limits: dict[str, Limit], clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.engine = engine
        self.limits = limits
        self.clock = clock

    def allow(self, kind: str, key: str) -> bool:
        """Whether `key` stored fewer messages than its `kind` limit within its period.
        Nothing is taken: the message counts once it is stored."""
        limit = self.limits.get(kind)
        column = _COLUMNS.get(kind)
        if limit is None or column is None:
            return True
        since = self.clock() - timedelta(seconds=limit.seconds)
        # The arrival index narrows this to the period's rows before the key is compared.
        query = select(func.count()).where(
            InboundEmail.received_at >= since, func.lower(column) == key.lower()
        )
        with self.engine.connect() as connection:
            stored = connection.execute(query).scalar_one()
        return stored < limit.count
