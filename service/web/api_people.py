"""The JSON API's people: export what replyd keeps about someone, or forget them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.store.engine import READ_ONLY
from service.store.erasure import COMMENT_CHOICES, KEEP_ANONYMOUS, forget_person
from service.store.people import find_holdings
from service.store.people_export import export_document
from service.web.context import ApiError, WebContext, context_of, email_field, require_token

_TRUE = ("1", "true", "yes")


def _query_email(request: Request) -> str:
    """The `email` query parameter, checked like every address the API takes."""
    return email_field(dict(request.query_params), "email")


async def export_person(request: Request) -> Response:
    """GET /api/people/export?email=E: everything stored about a person (raw mail with raw=true)."""
    require_token(request)
    email = _query_email(request)
    raw = request.query_params.get("raw", "").lower() in _TRUE
    web = context_of(request)

    def load() -> dict[str, Any]:
        # The writers' sessions, read-only: the export must see the erasure tables as they are.
        with web.parts.session_factory() as session:
            session.connection(execution_options={READ_ONLY: True})
            holdings = find_holdings(session, email, web.parts.book, web.parts.keyring)
            return export_document(session, holdings, raw=raw)

    return JSONResponse(await run_in_threadpool(load))


def erase(web: WebContext, email: str, comments: str) -> dict[str, Any]:
    """Forget `email` and tell this process's SMTP edge at once; what was done, in counts."""
    report = forget_person(
        web.parts.session_factory,
        web.parts.engine,
        email,
        web.parts.book,
        web.parts.keyring,
        comments=comments,
        webhooks=web.parts.webhook_queue(),
    )
    if report.person_id is not None:
        web.parts.erased_people.add(report.person_id)
    return asdict(report)


async def forget_person_now(request: Request) -> Response:
    """DELETE /api/people?email=E[&comments=keep-anonymous|delete]: forget a person."""
    require_token(request)
    email = _query_email(request)
    comments = request.query_params.get("comments", KEEP_ANONYMOUS)
    if comments not in COMMENT_CHOICES:
        raise ApiError(400, "comments must be keep-anonymous (the default) or delete")
    web = context_of(request)
    done = await run_in_threadpool(erase, web, email, comments)
    # Neither the address nor the name comes back: the caller has the one, the other is gone.
    return JSONResponse({"erased": True, **done})


def openapi_paths(error: dict[str, Any], protected: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The people endpoints for the OpenAPI document (`error` is an error answer's schema)."""
    email = {
        "name": "email",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "format": "email"},
    }

    def answers(description: str) -> dict[str, Any]:
        texts = {
            "400": "The email (or comments) parameter is missing or malformed.",
            "401": "Missing or wrong bearer token.",
            "503": "REPLYD_API_TOKEN is not set, so protected endpoints are disabled.",
        }
        out: dict[str, Any] = {
            "200": {
                "description": description,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        }
        for code, text in texts.items():
            out[code] = {"description": text, "content": {"application/json": {"schema": error}}}
        return out

    return {
        "/api/people/export": {
            "get": {
                "summary": "Everything stored about a person (their comments, subscriptions, "
                "mail, bounces), as one document",
                "operationId": "exportPerson",
                "security": protected,
                "parameters": [
                    email,
                    {
                        "name": "raw",
                        "in": "query",
                        "description": "true: include the source of each message of theirs.",
                        "schema": {"type": "boolean", "default": False},
                    },
                ],
                "responses": answers("The export."),
            }
        },
        "/api/people": {
            "delete": {
                "summary": "Forget a person: their mail, subscriptions, address and name go; "
                "the address stays only as a salted hash so they are never mailed again",
                "operationId": "forgetPerson",
                "security": protected,
                "parameters": [
                    email,
                    {
                        "name": "comments",
                        "in": "query",
                        "description": "keep-anonymous: their comments stay as 'A former "
                        "reader'; delete: they go (answers stay, under a placeholder).",
                        "schema": {"enum": list(COMMENT_CHOICES), "default": KEEP_ANONYMOUS},
                    },
                ],
                "responses": answers("Erased; what was done, in counts."),
            }
        },
    }
