"""Prometheus metrics, counted from the database at scrape time so every node reports the same."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Float, case, cast, extract, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from service.store.models import Comment, InboundEmail, InboundStatus, OutboundEmail, OutboundStatus

# Seconds; processing is usually sub-second, delivery waits on relays and retries with backoff.
PROCESSING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
DELIVERY_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)
REASON_LABEL_MAX = 60

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|<[^>]*>|\([^)]*\)")
_NUMBERS = re.compile(r"#?\d+")


def reason_label(reason: str | None) -> str:
    """A reason reduced to its kind: no addresses, ids, subjects or exception text in labels.

    >>> reason_label("sender mismatch: From <x@example.org> is not the person ...")
    'sender mismatch'
    >>> reason_label("post 'hello' is closed to comments")
    'post is closed to comments'
    """
    if not reason:
        return ""
    head = reason.split(":", 1)[0]
    head = _NUMBERS.sub("", _QUOTED.sub("", head))
    return " ".join(head.split())[:REASON_LABEL_MAX]


def _seconds_between(
    start: InstrumentedAttribute[Any], end: InstrumentedAttribute[Any], dialect: str
) -> ColumnElement[Any]:
    """SQL for (end - start) in seconds on this database."""
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(extract("epoch", end - start), Float)


def _histogram(
    session: Session,
    name: str,
    documentation: str,
    start: InstrumentedAttribute[Any],
    end: InstrumentedAttribute[Any],
    buckets: Sequence[float],
) -> HistogramMetricFamily:
    """One histogram computed by a single aggregate query over rows where `end` is set."""
    seconds = _seconds_between(start, end, session.get_bind().dialect.name)
    columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in buckets]
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(seconds), 0.0), *columns).where(
            end.is_not(None)
        )
    ).one()
    total, seconds_sum, *counts = row
    family = HistogramMetricFamily(name, documentation)
    family.add_metric(
        [],
        [(str(float(b)), float(c or 0)) for b, c in zip(buckets, counts, strict=True)]
        + [("+Inf", float(total or 0))],
        float(seconds_sum or 0.0),
    )
    return family


class DatabaseCollector(Collector):
    """Collects replyd's metrics from its tables on each scrape."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family; one short read transaction per scrape."""
        with self.sessions() as session:
            yield from self._collect(session)

    def _collect(self, session: Session) -> Iterator[Metric]:
        inbound = GaugeMetricFamily(
            "replyd_inbound_messages",
            "Stored inbound messages by status and reason kind (an operator retry moves one "
            "back to received).",
            labels=["status", "reason"],
        )
        grouped: dict[tuple[str, str], int] = {}
        for status, reason, count in session.execute(
            select(InboundEmail.status, InboundEmail.reason, func.count()).group_by(
                InboundEmail.status, InboundEmail.reason
            )
        ):
            key = (status, reason_label(reason))
            grouped[key] = grouped.get(key, 0) + count
        for status in InboundStatus:
            grouped.setdefault((status, ""), 0)
        for (status, reason), count in sorted(grouped.items()):
            inbound.add_metric([status, reason], count)
        yield inbound

        comments = CounterMetricFamily(
            "replyd_comments_created",
            "Comments published, by where they came from.",
            labels=["source"],
        )
        by_source = dict(
            session.execute(select(Comment.source, func.count()).group_by(Comment.source)).all()
        )
        for source in sorted({"email", "web", *by_source}):
            comments.add_metric([source], by_source.get(source, 0))
        yield comments

        outbound = dict(
            session.execute(
                select(OutboundEmail.status, func.count()).group_by(OutboundEmail.status)
            ).all()
        )
        notifications = CounterMetricFamily(
            "replyd_notifications", "Outbound mail that reached an end state.", labels=["status"]
        )
        for status in (OutboundStatus.SENT, OutboundStatus.FAILED, OutboundStatus.CANCELLED):
            notifications.add_metric([status], outbound.get(status, 0))
        yield notifications
        queued = GaugeMetricFamily(
            "replyd_notifications_queued", "Outbound mail waiting for (another) delivery try."
        )
        queued.add_metric([], outbound.get(OutboundStatus.QUEUED, 0))
        yield queued

        inbound_counts = {status: 0 for status in InboundStatus}
        for (status, _), count in grouped.items():
            inbound_counts[InboundStatus(status)] += count
        depth = GaugeMetricFamily(
            "replyd_queue_depth",
            "Rows waiting or in progress, by queue and status.",
            labels=["queue", "status"],
        )
        for status in (InboundStatus.RECEIVED, InboundStatus.PROCESSING):
            depth.add_metric(["inbound", status], inbound_counts[status])
        for status in (OutboundStatus.QUEUED, OutboundStatus.SENDING):
            depth.add_metric(["outbound", status], outbound.get(status, 0))
        yield depth

        yield _histogram(
            session,
            "replyd_processing_seconds",
            "Time from receiving a message to its terminal state.",
            InboundEmail.received_at,
            InboundEmail.finished_at,
            PROCESSING_BUCKETS,
        )
        yield _histogram(
            session,
            "replyd_delivery_seconds",
            "Time from queueing a notification to its delivery.",
            OutboundEmail.created_at,
            OutboundEmail.sent_at,
            DELIVERY_BUCKETS,
        )


class RefusalCollector(Collector):
    """SMTP refusals by reply code, counted by this process's listener (not stored anywhere)."""

    def __init__(self, refusals: Callable[[], Mapping[str, int]]) -> None:
        self.refusals = refusals

    def collect(self) -> Iterator[Metric]:
        """One counter sample per reply code seen since the process started."""
        family = CounterMetricFamily(
            "replyd_smtp_refusals", "SMTP replies refusing a command, by code", labels=["code"]
        )
        for code, count in sorted(self.refusals().items()):
            family.add_metric([code], count)
        yield family


def metrics_registry(
    sessions: sessionmaker[Session], refusals: Callable[[], Mapping[str, int]] = dict
) -> CollectorRegistry:
    """A registry of its own per app, so several apps in one process do not collide."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(sessions))
    registry.register(RefusalCollector(refusals))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text exposition format."""
    return generate_latest(registry)
