"""The OpenAPI 3.1 description of the JSON API, and the route that serves it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.inbound.intake import VIAS
from service.store.idempotency import MAX_KEY_CHARS
from service.store.models import MAX_COMMENT_CHARS, InboundStatus
from service.web.api_people import openapi_paths as people_paths
from service.web.context import context_of
from service.web.inbound_log import INBOUND_PAGE_DEFAULT, INBOUND_PAGE_MAX


async def openapi_document(request: Request) -> Response:
    """GET /openapi.json: the OpenAPI 3.1 description of this API."""
    return JSONResponse(openapi(context_of(request).parts.settings.base_url))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "Malformed input; the message says which field.",
        401: "Missing or wrong bearer token.",
        403: "The comment's author is blocked (replyd block), or a browser sent it from a page "
        "not in REPLYD_EMBED_ORIGINS.",
        404: "No such post (or comment).",
        409: "The post is closed to comments (or the comment cannot take this action).",
        413: "Request body too large.",
        415: "Without the token, the body must be JSON (Content-Type: application/json).",
        422: "The post breaks a rule (id, title or URL), or the Idempotency-Key was used for "
        "another request; the message says which.",
        429: "Too many requests from this client, with this token or to this email address; "
        "see Retry-After.",
        503: "REPLYD_API_TOKEN is not set, so protected endpoints are disabled.",
    }
    answers = {str(code): _json(_ref("Error"), texts[code]) for code in codes}
    if "429" in answers:
        answers["429"]["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        }
    return answers


_PROTECTED: list[dict[str, list[str]]] = [{"bearer": []}]
_INT = {"type": "integer", "minimum": 1}
_POST_ID = {
    "name": "post_id",
    "in": "path",
    "required": True,
    "description": "The blog's id of the post.",
    "schema": {"type": "string", "maxLength": 200},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A unique value per comment (e.g. a UUID), so a retried request publishes "
    "it once.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
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
                "id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "description": "Letters, digits, '-', '_', '.' and '~', starting with a "
                    "letter or digit.",
                },
                "title": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 500,
                    "description": "One line, no control characters.",
                },
                "url": {
                    "type": "string",
                    "format": "uri",
                    "maxLength": 2000,
                    "description": "An absolute http(s) address without a user name.",
                },
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
                "follow": {
                    "enum": ["each", "daily", "weekly", "none"],
                    "default": "each",
                    "description": "Without the token: how the writer follows the thread once "
                    "the comment is confirmed.",
                },
                "author_token": {
                    "type": "string",
                    "description": "Without the token: the token a confirmation handed this "
                    "browser; for the same address, the comment is published at once.",
                },
            },
        },
        "Pending": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {"status": {"const": "pending"}, "message": {"type": "string"}},
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
                "elided": {
                    "type": "string",
                    "description": "Quote and signature extraction cut away; only for callers "
                    "that send the bearer token (it can hold other people's addresses).",
                },
                "source": {"type": "string", "enum": ["email", "web", "wordpress", "disqus"]},
                "created_at": {"type": ["string", "null"], "format": "date-time"},
                "status": {
                    "type": "string",
                    "enum": ["published", "held", "hidden", "removed"],
                    "description": "A post's thread shows published comments, and a 'removed' "
                    "placeholder (no author, no text) where a removed comment has answers. A "
                    "comment made on the blog may be 'held' for a moderator (REPLYD_MODERATION).",
                },
                "post_id": {"type": "string", "description": "In GET /api/comments only."},
            },
        },
        "CommentPage": {
            "type": "object",
            "required": ["items", "next_before"],
            "properties": {
                "items": {"type": "array", "items": _ref("Comment")},
                "next_before": {"type": ["integer", "null"]},
            },
        },
        "Moderated": {
            "type": "object",
            "required": ["id", "status", "previous_status"],
            "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string", "enum": ["published", "held", "hidden", "deleted"]},
                "previous_status": {"type": "string"},
                "notifications_queued": {"type": "integer"},
                "mail_cancelled": {"type": "integer"},
                "comment": _ref("Comment"),
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
        "FollowInput": {
            "type": "object",
            "required": ["email"],
            "properties": {
                "email": {"type": "string", "format": "email"},
                "digest": {"enum": [None, "daily", "weekly"]},
                "scope": {
                    "enum": ["post", "all"],
                    "description": "post (default): this post's comments; all: every new post "
                    "on the blog, each mailed with a reply address that comments on it",
                },
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
                # The entrance: the SMTP/LMTP listener, `replyd ingest`, or an HTTP ingress.
                "via": {"type": "string", "enum": list(VIAS)},
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
    comment_id = {"name": "comment_id", "in": "path", "required": True, "schema": _INT}
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
                    **_errors(400, 401, 413, 422, 503),
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
                "summary": "A comment made on the blog; published once its writer is known",
                "operationId": "postComment",
                "security": [*_PROTECTED, {}],
                "description": "With the token: published at once, followers mailed. Without "
                "it (a reader, from the embed): 202, kept until the address confirms it by the "
                "link mailed there or a reply to that mail; 201 at once with a valid "
                "author_token for the same address. Limited per client address, per token and "
                "per address mailed (429 with Retry-After). A request repeated with the same "
                "Idempotency-Key and body within 24 hours gets the first answer (with "
                "Idempotent-Replayed: true) and makes no second comment.",
                "parameters": [_POST_ID, _IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CommentInput")}},
                },
                "responses": {
                    "201": _json(
                        _ref("Comment"),
                        "Published or held for a moderator (or, replayed, as answered before).",
                    ),
                    "202": _json(_ref("Pending"), "Kept until the address confirms it."),
                    **_errors(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
                },
            },
        },
        "/api/comments": {
            "get": {
                "summary": "Comments of every post by status, newest first (moderation)",
                "operationId": "listModerated",
                "security": _PROTECTED,
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "enum": ["held", "published", "hidden", "all"],
                            "default": "all",
                        },
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                ],
                "responses": {
                    "200": _json(_ref("CommentPage"), "One page."),
                    **_errors(400, 401, 503),
                },
            }
        },
        "/api/comments/{comment_id}": {
            "patch": {
                "summary": "Approve (or restore) a comment, or hide it",
                "description": "'published' approves a held comment (its followers are mailed "
                "then) or restores a hidden one (nobody is mailed again); 'hidden' removes it "
                "from everything public and cancels its mail not yet sent.",
                "operationId": "moderateComment",
                "security": _PROTECTED,
                "parameters": [comment_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"enum": ["published", "hidden"]}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("Moderated"), "Done (or nothing to do)."),
                    **_errors(400, 401, 404, 409, 503),
                },
            },
            "delete": {
                "summary": "Delete a comment for good (answers under it stay)",
                "operationId": "deleteComment",
                "security": _PROTECTED,
                "parameters": [comment_id],
                "responses": {
                    "200": _json(_ref("Moderated"), "Deleted."),
                    **_errors(400, 401, 404, 503),
                },
            },
        },
        "/api/posts/{post_id}/follow": {
            "post": {
                "summary": "A reader asks to follow a post by email (double opt-in)",
                "operationId": "follow",
                "description": "Mails a confirmation link; only that link, or a reply to the "
                "mail, makes the address follow. One address and post get at most one such "
                "mail an hour; the answer is the same either way.",
                "parameters": [_POST_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("FollowInput")}},
                },
                "responses": {
                    "202": _json(_ref("Pending"), "A confirmation link was mailed."),
                    **_errors(400, 403, 404, 409, 413, 415, 429),
                },
            }
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
    paths.update(people_paths(_ref("Error"), _PROTECTED))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "replyd",
            "version": "1",
            "description": "Blog comments by email: posts, comments, subscriptions, the "
            "inbound mail log and people's data. Endpoints with a security requirement want "
            "'Authorization: Bearer <REPLYD_API_TOKEN>'.",
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
