"""The HTML side's routes: which page, form, feed or embed answers each path and method."""

from __future__ import annotations

from starlette.routing import Route

from service.web.admin_auth import admin_login, admin_logout
from service.web.admin_comments import admin_comments, admin_moderate
from service.web.admin_pages import admin_inbound, admin_raw, admin_retry
from service.web.confirm_pages import confirm_now, confirm_page
from service.web.embed import embed_page, embed_script, embed_style
from service.web.feed import comments_feed
from service.web.forget_pages import confirm_erase, request_mail, request_page
from service.web.forget_pages import confirm_page as erasure_confirm_page
from service.web.forms import comment_form, embedded_comment_form, embedded_follow_form, follow_form
from service.web.moderation_pages import moderation_act, moderation_page
from service.web.public_pages import post_page, unsubscribe_now, unsubscribe_page

ROUTES = [
    Route("/posts/{post_id}", post_page, methods=["GET"]),
    Route("/posts/{post_id}/comments.atom", comments_feed, methods=["GET"]),
    Route("/posts/{post_id}/comments", comment_form, methods=["POST"]),
    Route("/posts/{post_id}/follow", follow_form, methods=["POST"]),
    Route("/posts/{post_id}/embed", embed_page, methods=["GET"]),
    Route("/posts/{post_id}/embed/comments", embedded_comment_form, methods=["POST"]),
    Route("/posts/{post_id}/embed/follow", embedded_follow_form, methods=["POST"]),
    Route("/embed.js", embed_script, methods=["GET"]),
    Route("/embed.css", embed_style, methods=["GET"]),
    Route("/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/confirm/{token}", confirm_now, methods=["POST"]),
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_now, methods=["POST"]),
    Route("/moderate/{token}", moderation_page, methods=["GET"]),
    Route("/moderate/{token}", moderation_act, methods=["POST"]),
    Route("/forget/confirm/{token}", erasure_confirm_page, methods=["GET"]),
    Route("/forget/confirm/{token}", confirm_erase, methods=["POST"]),
    Route("/forget/{token}", request_page, methods=["GET"]),
    Route("/forget/{token}", request_mail, methods=["POST"]),
    Route("/admin/inbound", admin_inbound, methods=["GET"]),
    # Ids are parsed by the handlers: one too large for the database is a 404, not a crash.
    Route("/admin/inbound/{inbound_id}/raw", admin_raw, methods=["GET"]),
    Route("/admin/inbound/{inbound_id}/retry", admin_retry, methods=["POST"]),
    Route("/admin/comments", admin_comments, methods=["GET"]),
    Route("/admin/comments/{comment_id}/{action}", admin_moderate, methods=["POST"]),
    Route("/admin/login", admin_login, methods=["GET", "POST"]),
    Route("/admin/logout", admin_logout, methods=["POST"]),
]
