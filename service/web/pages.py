"""The HTML side's routes: which page or feed answers each path and method."""

from __future__ import annotations

from starlette.routing import Route

from service.web.admin_auth import admin_login, admin_logout
from service.web.admin_pages import admin_inbound, admin_raw, admin_retry
from service.web.feed import comments_feed
from service.web.forget_pages import confirm_erase, confirm_page, request_mail, request_page
from service.web.public_pages import post_page, unsubscribe_now, unsubscribe_page

ROUTES = [
    Route("/posts/{post_id}", post_page, methods=["GET"]),
    Route("/posts/{post_id}/comments.atom", comments_feed, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_now, methods=["POST"]),
    Route("/forget/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/forget/confirm/{token}", confirm_erase, methods=["POST"]),
    Route("/forget/{token}", request_page, methods=["GET"]),
    Route("/forget/{token}", request_mail, methods=["POST"]),
    Route("/admin/inbound", admin_inbound, methods=["GET"]),
    # Ids are parsed by the handlers: one too large for the database is a 404, not a crash.
    Route("/admin/inbound/{inbound_id}/raw", admin_raw, methods=["GET"]),
    Route("/admin/inbound/{inbound_id}/retry", admin_retry, methods=["POST"]),
    Route("/admin/login", admin_login, methods=["GET", "POST"]),
    Route("/admin/logout", admin_logout, methods=["POST"]),
]
