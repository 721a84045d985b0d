"""The JSON API's inbound mail log: received mail and what became of it."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.store.models import InboundEmail
from service.web.context import MAX_ROW_ID, context_of, iso, require_token
from service.web.inbound_log import (
    INBOUND_PAGE_DEFAULT,
    INBOUND_PAGE_MAX,
    inbound_page,
    int_param,
    status_param,
)


def inbound_json(row: InboundEmail) -> dict[str, Any]:
    """An inbound message's state, without its content."""
    return {
        "id": row.id,
        "received_at": iso(row.received_at),
        "finished_at": iso(row.finished_at),
        "sender": row.sender,
        "recipient": row.recipient,
        "message_id": row.message_id,
        "status": row.status,
        "reason": row.reason,
        "attempts": row.attempts,
        "via": row.via,
    }


async def list_inbound(request: Request) -> Response:
    """GET /api/inbound: received mail, newest first, by status, a page at a time."""
    require_token(request)
    status = status_param(request)
    limit = int_param(request, "limit", INBOUND_PAGE_DEFAULT, 1, INBOUND_PAGE_MAX)
    before = int_param(request, "before", None, 1, MAX_ROW_ID)
    assert limit is not None
    web = context_of(request)

    def load() -> dict[str, Any]:
        with web.read_sessions() as session:
            rows, next_before = inbound_page(session, status, before, limit)
            return {"items": [inbound_json(r) for r in rows], "next_before": next_before}

    return JSONResponse(await run_in_threadpool(load))
