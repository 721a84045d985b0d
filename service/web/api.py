"""The JSON API's routes: which handler answers each path and method."""

from __future__ import annotations

from starlette.routing import Route

from service.web.api_comments import list_comments, post_comment
from service.web.api_inbound import list_inbound
from service.web.api_moderation import delete_comment, list_moderated, patch_comment
from service.web.api_people import export_person, forget_person_now
from service.web.api_posts import get_post, put_post
from service.web.api_public import post_follow
from service.web.api_subscriptions import subscribe, unsubscribe
from service.web.openapi import openapi_document

ROUTES = [
    Route("/api/posts", put_post, methods=["POST"]),
    Route("/api/posts/{post_id}", get_post, methods=["GET"]),
    Route("/api/posts/{post_id}/comments", list_comments, methods=["GET"]),
    Route("/api/posts/{post_id}/comments", post_comment, methods=["POST"]),
    Route("/api/posts/{post_id}/follow", post_follow, methods=["POST"]),
    Route("/api/subscriptions", subscribe, methods=["POST"]),
    Route("/api/subscriptions", unsubscribe, methods=["DELETE"]),
    Route("/api/comments", list_moderated, methods=["GET"]),
    Route("/api/comments/{comment_id}", patch_comment, methods=["PATCH"]),
    Route("/api/comments/{comment_id}", delete_comment, methods=["DELETE"]),
    Route("/api/inbound", list_inbound, methods=["GET"]),
    Route("/api/people/export", export_person, methods=["GET"]),
    Route("/api/people", forget_person_now, methods=["DELETE"]),
    Route("/openapi.json", openapi_document, methods=["GET"]),
]
