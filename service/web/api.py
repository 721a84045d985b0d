"""The blog's JSON API: posts, comments and subscriptions, and its OpenAPI description."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.outbound.notify import Audience
from service.store.models import Comment, InboundEmail, InboundStatus, Post
from service.store.subscriptions import person_for, save_post, set_following
from service.web.context import (
    MAX_COMMENT_CHARS,
    ApiError,
    WebContext,
    bool_field,
    context_of,
    email_field,
    find_post,
    is_authorized,
    iso,
    json_object,
    post_slug,
    require_token,
    single_line,
    text_field,
    thread_order,
    url_field,
)

DIGESTS = (None, "daily", "weekly")
INBOUND_PAGE_DEFAULT = 50
INBOUND_PAGE_MAX = 200


def post_json(session: Session, post: Post, *, private: bool) -> dict[str, Any]:
    """A post as the API shows it; addresses only to callers holding the token."""
    count = session.scalar(select(func.count(Comment.id)).where(Comment.post_id == post.id))
    data: dict[str, Any] = {
        "id": post.slug,
        "title": post.title,
        "url": post.url,
        "author_name": post.author.display_name,
        "closed": post.closed,
        "created_at": iso(post.created_at),
        "comment_count": count or 0,
    }
    if private:
        data["author_email"] = post.author.email
    return data


def comment_json(comment: Comment, depth: int, *, private: bool) -> dict[str, Any]:
    """A comment as the API shows it; the author's address only to callers holding the token."""
    data: dict[str, Any] = {
        "id": comment.id,
        "parent_id": comment.parent_id,
        "depth": depth,
        "author_name": comment.author.display_name,
        "body": comment.body,
        "elided": comment.elided,
        "source": comment.source,
        "created_at": iso(comment.created_at),
    }
    if private:
        data["author_email"] = comment.author.email
    return data


async def put_post(request: Request) -> Response:
    """POST /api/posts: create a post, or update the one with this id."""
    require_token(request)
    data = await json_object(request)
    slug = post_slug(single_line(data, "id", max_length=200))
    title = single_line(data, "title", max_length=500)
    url = url_field(data, "url")
    author_email = email_field(data, "author_email")
    author_name = single_line(data, "author_name", max_length=200, required=False)
    closed = bool_field(data, "closed", False)
    web = context_of(request)

    def store() -> tuple[bool, dict[str, Any]]:
        with web.parts.session_factory.begin() as session:
            author = person_for(session, author_email, author_name)
            post, created = save_post(
                session, slug, title=title, url=url, author=author, closed=closed
            )
            session.refresh(post)
            return created, post_json(session, post, private=True)

    created, body = await run_in_threadpool(store)
    return JSONResponse(body, status_code=201 if created else 200)


async def get_post(request: Request) -> Response:
    """GET /api/posts/{id}: one post (public)."""
    slug = post_slug(request.path_params["post_id"])
    web = context_of(request)
    private = is_authorized(request)

    def load() -> dict[str, Any]:
        with web.read_sessions() as session:
            return post_json(session, find_post(session, slug), private=private)

    return JSONResponse(await run_in_threadpool(load))


async def list_comments(request: Request) -> Response:
    """GET /api/posts/{id}/comments: a post's comments in thread order (public)."""
    slug = post_slug(request.path_params["post_id"])
    web = context_of(request)
    private = is_authorized(request)

    def load() -> list[dict[str, Any]]:
        with web.read_sessions() as session:
            post = find_post(session, slug)
            comments = session.scalars(select(Comment).where(Comment.post_id == post.id)).all()
            return [
                comment_json(t.comment, t.depth, private=private) for t in thread_order(comments)
            ]

    return JSONResponse({"post_id": slug, "comments": await run_in_threadpool(load)})


def create_web_comment(
    web: WebContext,
    slug: str,
    author_email: str,
    author_name: str,
    body: str,
    parent_id: int | None,
) -> dict[str, Any]:
    """Store a comment made on the web, follow the thread and queue its notifications at once."""
    with web.parts.session_factory.begin() as session:
        post = find_post(session, slug)
        if post.closed:
            raise ApiError(409, f"post {slug!r} is closed to comments")
        if parent_id is not None:
            parent = session.get(Comment, parent_id)
            if parent is None or parent.post_id != post.id:
                raise ApiError(404, f"post {slug!r} has no comment {parent_id}")
        person = person_for(session, author_email, author_name)
        comment = Comment(
            post_id=post.id, parent_id=parent_id, author_id=person.id, body=body, source="web"
        )
        web.notifier.publish(session, comment, post, person, Audience(session, [post]))
        stored = session.get(Comment, comment.id)  # as the database has it
        assert stored is not None
        return comment_json(stored, 0, private=True)


async def post_comment(request: Request) -> Response:
    """POST /api/posts/{id}/comments: publish a comment made on the blog and mail followers."""
    require_token(request)
    slug = post_slug(request.path_params["post_id"])
    data = await json_object(request)
    author_email = email_field(data, "author_email")
    author_name = single_line(data, "author_name", max_length=200, required=False)
    body = text_field(data, "body", max_length=MAX_COMMENT_CHARS)
    parent_id = data.get("parent_id")
    if parent_id is not None and (
        not isinstance(parent_id, int) or isinstance(parent_id, bool) or parent_id < 1
    ):
        raise ApiError(400, "field 'parent_id' must be a comment id (a positive integer) or null")
    web = context_of(request)
    created = await run_in_threadpool(
        create_web_comment, web, slug, author_email, author_name, body, parent_id
    )
    web.wake_outbound()
    return JSONResponse(created, status_code=201)


async def subscription_request(request: Request) -> tuple[str, str, dict[str, Any]]:
    """The post id and address of a subscription call (JSON body, or query for DELETE)."""
    require_token(request)
    if request.method == "DELETE" and request.query_params:
        data: dict[str, Any] = dict(request.query_params)
    else:
        data = await json_object(request)
    return post_slug(single_line(data, "post_id", max_length=200)), email_field(data, "email"), data


async def subscribe(request: Request) -> Response:
    """POST /api/subscriptions: make someone follow a post, per comment or by digest."""
    slug, email, data = await subscription_request(request)
    digest = data.get("digest")
    if digest not in DIGESTS:
        raise ApiError(400, 'field \'digest\' must be null, "daily" or "weekly"')
    web = context_of(request)

    def store() -> None:
        with web.parts.session_factory.begin() as session:
            post = find_post(session, slug)
            set_following(
                session, post.id, person_for(session, email).id, active=True, digest=digest
            )

    await run_in_threadpool(store)
    return JSONResponse({"post_id": slug, "email": email, "active": True, "digest": digest})


async def unsubscribe(request: Request) -> Response:
    """DELETE /api/subscriptions: stop someone's mail about a post, even if they comment again."""
    slug, email, _ = await subscription_request(request)
    web = context_of(request)

    def store() -> None:
        with web.parts.session_factory.begin() as session:
            post = find_post(session, slug)
            set_following(session, post.id, person_for(session, email).id, active=False)

    await run_in_threadpool(store)
    return JSONResponse({"post_id": slug, "email": email, "active": False})


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
    }


async def list_inbound(request: Request) -> Response:
    """GET /api/inbound: received mail, newest first, by status, a page at a time."""
    require_token(request)
    status = status_param(request)
    limit = int_param(request, "limit", INBOUND_PAGE_DEFAULT, 1, INBOUND_PAGE_MAX)
    before = int_param(request, "before", None, 1, 2**63 - 1)
    assert limit is not None
    web = context_of(request)

    def load() -> dict[str, Any]:
        with web.read_sessions() as session:
            rows, next_before = inbound_page(session, status, before, limit)
            return {"items": [inbound_json(r) for r in rows], "next_before": next_before}

    return JSONResponse(await run_in_threadpool(load))


async def openapi_document(request: Request) -> Response:
    """GET /openapi.json: the OpenAPI 3.1 description of this API."""
    return JSONResponse(openapi(context_of(request).parts.settings.base_url))


ROUTES = [
    Route("/api/posts", put_post, methods=["POST"]),
    Route("/api/posts/{post_id}", get_post, methods=["GET"]),
    Route("/api/posts/{post_id}/comments", list_comments, methods=["GET"]),
    Route("/api/posts/{post_id}/comments", post_comment, methods=["POST"]),
    Route("/api/subscriptions", subscribe, methods=["POST"]),
    Route("/api/subscriptions", unsubscribe, methods=["DELETE"]),
    Route("/api/inbound", list_inbound, methods=["GET"]),
    Route("/openapi.json", openapi_document, methods=["GET"]),
]


# --- OpenAPI ----------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "Malformed input; the message says which field.",
        401: "Missing or wrong bearer token.",
        404: "No such post (or comment).",
        409: "The post is closed to comments.",
        413: "Request body too large.",
        503: "REPLYD_API_TOKEN is not set, so protected endpoints are disabled.",
    }
    return {str(code): _json(_ref("Error"), texts[code]) for code in codes}


_PROTECTED: list[dict[str, list[str]]] = [{"bearer": []}]
_POST_ID = {
    "name": "post_id",
    "in": "path",
    "required": True,
    "description": "The blog's id of the post.",
    "schema": {"type": "string", "maxLength": 200},
}


def openapi(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON API."""
    nullable_string = {"type": ["string", "null"]}
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "PostInput": {
            "type": "object",
            "required": ["id", "title", "url", "author_email"],
            "properties": {
                "id": {"type": "string", "maxLength": 200, "description": "No '/'."},
                "title": {"type": "string", "maxLength": 500},
                "url": {"type": "string", "format": "uri", "maxLength": 2000},
                "author_email": {"type": "string", "format": "email"},
                "author_name": {"type": "string", "maxLength": 200},
                "closed": {"type": "boolean", "default": False},
            },
        },
        "Post": {
            "type": "object",
            "required": ["id", "title", "url", "author_name", "closed", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "title": {"type": "string"},
                "url": {"type": "string"},
                "author_name": {"type": "string"},
                "author_email": {
                    "type": "string",
                    "description": "Only for callers that send the bearer token.",
                },
                "closed": {"type": "boolean"},
                "created_at": {"type": "string", "format": "date-time"},
                "comment_count": {"type": "integer"},
            },
        },
        "CommentInput": {
            "type": "object",
            "required": ["author_email", "body"],
            "properties": {
                "author_email": {"type": "string", "format": "email"},
                "author_name": {"type": "string", "maxLength": 200},
                "body": {"type": "string", "maxLength": MAX_COMMENT_CHARS},
                "parent_id": {"type": ["integer", "null"], "minimum": 1},
            },
        },
        "Comment": {
            "type": "object",
            "required": ["id", "parent_id", "depth", "author_name", "body", "source"],
            "properties": {
                "id": {"type": "integer"},
                "parent_id": {"type": ["integer", "null"]},
                "depth": {"type": "integer", "description": "0 for top-level comments."},
                "author_name": {"type": "string"},
                "author_email": {
                    "type": "string",
                    "description": "Only for callers that send the bearer token.",
                },
                "body": {"type": "string", "description": "Plain text."},
                "elided": {"type": "string", "description": "Quote and signature cut away."},
                "source": {"type": "string", "enum": ["email", "web"]},
                "created_at": {"type": "string", "format": "date-time"},
            },
        },
        "CommentList": {
            "type": "object",
            "required": ["post_id", "comments"],
            "properties": {
                "post_id": {"type": "string"},
                "comments": {
                    "type": "array",
                    "items": _ref("Comment"),
                    "description": "Thread order: each comment followed by its answers.",
                },
            },
        },
        "SubscriptionInput": {
            "type": "object",
            "required": ["post_id", "email"],
            "properties": {
                "post_id": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "digest": {"enum": [None, "daily", "weekly"]},
            },
        },
        "Subscription": {
            "type": "object",
            "required": ["post_id", "email", "active"],
            "properties": {
                "post_id": {"type": "string"},
                "email": {"type": "string"},
                "active": {"type": "boolean"},
                "digest": {"enum": [None, "daily", "weekly"]},
            },
        },
        "Inbound": {
            "type": "object",
            "required": ["id", "received_at", "sender", "recipient", "status", "reason"],
            "properties": {
                "id": {"type": "integer"},
                "received_at": {"type": "string", "format": "date-time"},
                "finished_at": {"type": ["string", "null"], "format": "date-time"},
                "sender": {"type": "string"},
                "recipient": {"type": "string"},
                "message_id": nullable_string,
                "status": {"type": "string", "enum": list(InboundStatus)},
                "reason": nullable_string,
                "attempts": {"type": "integer"},
            },
        },
        "InboundPage": {
            "type": "object",
            "required": ["items", "next_before"],
            "properties": {
                "items": {"type": "array", "items": _ref("Inbound")},
                "next_before": {
                    "type": ["integer", "null"],
                    "description": "Pass as `before` for the next page; null on the last.",
                },
            },
        },
    }
    subscription_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref("SubscriptionInput")}},
    }
    paths: dict[str, Any] = {
        "/api/posts": {
            "post": {
                "summary": "Create a post, or update the one with this id",
                "operationId": "putPost",
                "security": _PROTECTED,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PostInput")}},
                },
                "responses": {
                    "200": _json(_ref("Post"), "Updated."),
                    "201": _json(_ref("Post"), "Created."),
                    **_errors(400, 401, 413, 503),
                },
            }
        },
        "/api/posts/{post_id}": {
            "get": {
                "summary": "One post",
                "operationId": "getPost",
                "parameters": [_POST_ID],
                "responses": {"200": _json(_ref("Post"), "The post."), **_errors(400, 404)},
            }
        },
        "/api/posts/{post_id}/comments": {
            "get": {
                "summary": "A post's comments in thread order",
                "operationId": "listComments",
                "parameters": [_POST_ID],
                "responses": {
                    "200": _json(_ref("CommentList"), "The comments."),
                    **_errors(400, 404),
                },
            },
            "post": {
                "summary": "Publish a comment made on the blog; its followers are mailed",
                "operationId": "postComment",
                "security": _PROTECTED,
                "parameters": [_POST_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CommentInput")}},
                },
                "responses": {
                    "201": _json(_ref("Comment"), "Published."),
                    **_errors(400, 401, 404, 409, 413, 503),
                },
            },
        },
        "/api/subscriptions": {
            "post": {
                "summary": "Make someone follow a post (each comment, or a digest)",
                "operationId": "subscribe",
                "security": _PROTECTED,
                "requestBody": subscription_body,
                "responses": {
                    "200": _json(_ref("Subscription"), "Following."),
                    **_errors(400, 401, 404, 503),
                },
            },
            "delete": {
                "summary": "Stop someone's mail about a post (commenting does not undo it)",
                "operationId": "unsubscribe",
                "security": _PROTECTED,
                "description": "Takes the same JSON body as POST, or post_id and email as query "
                "parameters.",
                "parameters": [
                    {"name": "post_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "email", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(_ref("Subscription"), "Not following any more."),
                    **_errors(400, 401, 404, 503),
                },
            },
        },
        "/api/inbound": {
            "get": {
                "summary": "Received mail and what became of it, newest first",
                "operationId": "listInbound",
                "security": _PROTECTED,
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(InboundStatus)},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": INBOUND_PAGE_MAX,
                            "default": INBOUND_PAGE_DEFAULT,
                        },
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "description": "Only messages with a smaller id (the previous page's "
                        "next_before).",
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                "responses": {
                    "200": _json(_ref("InboundPage"), "One page."),
                    **_errors(400, 401, 503),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "replyd",
            "version": "1",
            "description": "Blog comments by email: posts, comments, subscriptions and the "
            "inbound mail log. Endpoints with a security requirement want "
            "'Authorization: Bearer <REPLYD_API_TOKEN>'.",
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
