"""Inbound mail in tests the way production moves it: stored as the edge, recorded as workers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from service.inbound.outcome import Outcome
from service.inbound.pipeline import Pipeline
from service.inbound.queue import ClaimedMail, GroupCommit
from service.runtime.components import Components


def store_mail(parts: Components, raw: bytes, sender: str, recipients: Iterable[str]) -> list[int]:
    """Store one message as the SMTP edge does, through a GroupCommit; its row ids in order."""
    return asyncio.run(GroupCommit(parts.engine)(raw, sender, list(recipients)))


def record(pipeline: Pipeline, mails: list[ClaimedMail], worker: str) -> list[Outcome | None]:
    """Prepare claimed mail and record it as the worker that claimed it, as `inbound_loop` does
    (service.runtime.workers); the outcome of each, None for a claim lost meanwhile."""
    return pipeline.record_batch(pipeline.preparer.prepare_all(mails), worker)
