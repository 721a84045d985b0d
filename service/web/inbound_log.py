"""The inbound mail log read a page at a time, and its query parameters (API and operator page)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request

from service.store.models import InboundEmail, InboundStatus
from service.web.context import MAX_ROW_ID, ApiError

INBOUND_PAGE_DEFAULT = 50
INBOUND_PAGE_MAX = 200


def row_id_param(request: Request, name: str) -> int | None:
    """A row id from the URL path: None unless it is 1 to MAX_ROW_ID in plain digits, so an
    id no row can have is answered 404, never an overflow in the database driver."""
    raw = request.path_params.get(name, "")
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ROW_ID else None


def int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    """A whole-number query parameter within [low, high], or a 400 ApiError."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"query parameter {name!r} must be between {low} and {high}")
    return value


def status_param(request: Request) -> str | None:
    """The `status` filter of the inbound list, checked against the known statuses."""
    status = request.query_params.get("status") or None
    if status is not None and status not in set(InboundStatus):
        known = ", ".join(InboundStatus)
        raise ApiError(400, f"query parameter 'status' must be one of {known}")
    return status


def inbound_page(
    session: Session, status: str | None, before: int | None, limit: int
) -> tuple[list[InboundEmail], int | None]:
    """Newest inbound rows first, below id `before`; returns them and the next cursor."""
    query = select(InboundEmail).order_by(InboundEmail.id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(InboundEmail.status == status)
    if before is not None:
        query = query.where(InboundEmail.id < before)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1].id if more and rows else None
