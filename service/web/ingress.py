"""The HTTP ingresses: mail providers' webhooks (Mailgun, Postmark, SendGrid) and a relay for
anything else. Each authenticates its caller its own way, then takes the raw message in as the
SMTP edge does (service.inbound.intake): answered 200 only once it is committed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.inbound.intake import Intake, Taken, Verdict
from service.inbound.queue import GroupCommit
from service.inbound.ratelimit import RateLimiter
from service.inbound.recipients import (
    S552_TOO_BIG,
    envelope_sender,
    header_recipients,
    header_sender,
    ours_or_all,
)
from service.runtime.components import Components
from service.store.ingress_tokens import MAX_TOKEN_CHARS, first_use
from service.store.models import utcnow
from service.web.context import ApiError, context_of, token_matches
from service.web.ingress_forms import Fields, FormError, field, form_fields, text_field

log = logging.getLogger(__name__)

# Mailgun signs timestamp+token; a signature older than this is refused, as Action Mailbox
# does (its tokens are remembered a while longer, see service.store.ingress_tokens).
MAILGUN_MAX_AGE_SECONDS = 120
MAILGUN_TOKENS_KEPT = timedelta(minutes=10)
RETRY_AFTER_SECONDS = 60
# A provider's request carries the message once or twice more (parsed bodies, attachments in
# base64, JSON or URL escapes): it may be this many times the message size limit.
BODY_FACTOR = 4
BODY_SLACK = 1024 * 1024


@dataclass(frozen=True)
class Provider:
    """An entrance, and the statuses its sender reads as "never send this again" (a refused
    recipient) and "send it again later" (over a rate limit), as each provider documents."""

    via: str
    refused: int
    retry: int


# Mailgun: 406 stops its retries, anything else but 200 is retried for 8 hours.
MAILGUN = Provider("mailgun", 406, 429)
# Postmark: 403 stops its retries, anything else but 200 is retried 10 times over ~10 hours.
POSTMARK = Provider("postmark", 403, 429)
# SendGrid: only a 2xx stops its retries (5xx are retried for 3 days), so a refusal is a 200
# that says so; a rate limit is a 503, which it is documented to retry.
SENDGRID = Provider("sendgrid", 200, 503)
# The relay is ours to define: 422 is permanent, 429 and 503 are "try again later".
RELAY = Provider("relay", 422, 429)


def default_intake(parts: Components, on_stored: Any) -> Intake:
    """The intake of an app built without the daemon's (tests, a bare create_app): its own
    commit queue and rate limiter."""
    settings = parts.settings
    return Intake(
        parts.book,
        parts.keyring,
        GroupCommit(parts.engine),
        RateLimiter(settings.rate_limits),
        max_message_bytes=settings.max_message_bytes,
        max_recipients=settings.max_recipients,
        on_stored=on_stored,
        forgotten=parts.erased_people,
    )


def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


def _too_big(request: Request) -> ApiError:
    return ApiError(413, S552_TOO_BIG.format(limit=_intake(request).max_message_bytes))


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body; 413 (with the edge's size sentence) as soon as it passes `limit`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_big(request)
        chunks.append(chunk)
    return b"".join(chunks)


def _provider_body_limit(request: Request) -> int:
    return BODY_FACTOR * _intake(request).max_message_bytes + BODY_SLACK


async def _form(request: Request) -> Fields:
    body = await _read_body(request, _provider_body_limit(request))
    try:
        return form_fields(request.headers.get("content-type", ""), body)
    except FormError as exc:
        raise ApiError(400, str(exc)) from None


def _check_password(request: Request) -> None:
    """Basic auth with any user name and REPLYD_INGRESS_PASSWORD; 401 otherwise (503 while
    no password is set: the ingress is closed, and the provider keeps the mail)."""
    password = context_of(request).parts.settings.ingress_password
    if password is None:
        raise ApiError(
            503,
            "this ingress is closed: set REPLYD_INGRESS_PASSWORD (16 characters or more) and "
            "put it in the webhook URL as the basic-auth password",
        )
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    given = None
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            given = None
    if given is None or not token_matches(given.partition(":")[2], password):
        raise ApiError(
            401,
            "missing or wrong credentials: use basic auth with any user name and "
            "REPLYD_INGRESS_PASSWORD as the password",
            {"WWW-Authenticate": 'Basic realm="replyd ingress"'},
        )


async def _take(
    request: Request, provider: Provider, raw: bytes, sender: str, recipients: list[str]
) -> Response:
    """Take the message in; answer as the provider reads answers."""
    try:
        taken = await _intake(request).take(raw, sender, recipients, provider.via)
    except Exception:
        log.exception("%s: could not store an inbound message; answered 503", provider.via)
        return JSONResponse(
            {"error": "temporary failure storing the message; send it again later"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return _answer(provider, taken)


def _answer(provider: Provider, taken: Taken) -> Response:
    if taken.verdict is Verdict.STORED:
        return JSONResponse({"stored": taken.ids, "refused": taken.sentences})
    if taken.verdict is Verdict.REFUSED:
        body: dict[str, Any] = {"error": taken.reason, "stored": [], "refused": taken.sentences}
        return JSONResponse(body, status_code=provider.refused)
    if taken.verdict is Verdict.LIMITED:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return JSONResponse({"error": taken.reason}, status_code=provider.retry, headers=headers)
    status = 413 if taken.verdict is Verdict.TOO_BIG else 400
    return JSONResponse({"error": taken.reason}, status_code=status)


def mailgun_signature(key: str, timestamp: str, token: str) -> str:
    """What Mailgun signs a request with: HMAC-SHA256 of timestamp+token, in hex."""
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


async def mailgun(request: Request) -> Response:
    """POST /ingress/mailgun[/mime]: a Mailgun route's forward() of the raw message
    (body-mime), signed with REPLYD_MAILGUN_SIGNING_KEY."""
    key = context_of(request).parts.settings.mailgun_signing_key
    if key is None:
        raise ApiError(
            503, "this ingress is closed: set REPLYD_MAILGUN_SIGNING_KEY to the signing key"
        )
    fields = await _form(request)
    timestamp, token = text_field(fields, "timestamp"), text_field(fields, "token")
    signature = text_field(fields, "signature").lower().encode()
    if not hmac.compare_digest(mailgun_signature(key, timestamp, token).encode(), signature):
        raise ApiError(
            401,
            "the signature does not match: check REPLYD_MAILGUN_SIGNING_KEY (Mailgun's "
            "HTTP webhook signing key)",
        )
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAILGUN_MAX_AGE_SECONDS:
        raise ApiError(401, "the signed timestamp is stale: a replayed or delayed request")
    raw = field(fields, "body-mime")
    if raw is None:
        raise ApiError(
            400,
            "no body-mime field: the route must forward to a URL ending in /mime "
            "(…/ingress/mailgun/mime) for Mailgun to send the raw message",
        )
    if len(token) > MAX_TOKEN_CHARS or not await run_in_threadpool(
        first_use, context_of(request).parts.session_factory, token, utcnow(), MAILGUN_TOKENS_KEPT
    ):
        raise ApiError(401, "this signed token was used before: a replayed request")
    recipients = [a for a in text_field(fields, "recipient").split(",") if a.strip()]
    sender = envelope_sender(text_field(fields, "sender"))
    return await _take(request, MAILGUN, raw, sender, recipients)


async def postmark(request: Request) -> Response:
    """POST /ingress/postmark: Postmark's inbound webhook JSON with RawEmail, basic auth."""
    _check_password(request)
    body = await _read_body(request, _provider_body_limit(request))
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "the body is not Postmark's inbound JSON") from None
    text = data.get("RawEmail") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text:
        raise ApiError(
            400,
            "no RawEmail: turn on 'Include raw email content in JSON payload' in the "
            "inbound stream's settings",
        )
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ApiError(400, "RawEmail holds characters no message can") from None
    named = [data.get("OriginalRecipient")] + [
        entry.get("Email")
        for key in ("ToFull", "CcFull", "BccFull")
        for entry in (data.get(key) or [])
        if isinstance(entry, dict)
    ]
    addresses = [a for a in named if isinstance(a, str) and "@" in a]
    recipients = ours_or_all(context_of(request).parts.book, addresses)
    return await _take(request, POSTMARK, raw, header_sender(raw), recipients)


async def sendgrid(request: Request) -> Response:
    """POST /ingress/sendgrid: SendGrid Inbound Parse with "POST the raw, full MIME message"
    (the `email` field), basic auth."""
    _check_password(request)
    fields = await _form(request)
    raw = field(fields, "email")
    if raw is None:
        raise ApiError(
            400,
            "no email field: tick 'POST the raw, full MIME message' in the Inbound Parse settings",
        )
    envelope_text = text_field(fields, "envelope")
    if not envelope_text:
        recipients, sender = header_recipients(context_of(request).parts.book, raw), None
    else:
        try:
            envelope = json.loads(envelope_text)
            recipients = [str(a) for a in envelope["to"]]
            sender = str(envelope.get("from") or "")
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, "the envelope field is not SendGrid's envelope JSON") from None
    sender = envelope_sender(sender) if sender is not None else header_sender(raw)
    return await _take(request, SENDGRID, raw, sender, recipients)


async def relay(request: Request) -> Response:
    """POST /ingress/relay: the raw message as message/rfc822, basic auth; recipients and
    sender in the query (?recipient=…&sender=…) or else from the message's header."""
    _check_password(request)
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "message/rfc822":
        raise ApiError(415, "send the raw message with Content-Type: message/rfc822")
    raw = await _read_body(request, _intake(request).max_message_bytes)
    recipients = request.query_params.getlist("recipient")
    if not recipients:
        recipients = header_recipients(context_of(request).parts.book, raw)
    sender = request.query_params.get("sender")
    sender = envelope_sender(sender) if sender is not None else header_sender(raw)
    return await _take(request, RELAY, raw, sender, recipients)


ROUTES = [
    Route("/ingress/mailgun", mailgun, methods=["POST"]),
    # Mailgun posts the raw message only to a URL that ends in "mime".
    Route("/ingress/mailgun/mime", mailgun, methods=["POST"]),
    Route("/ingress/postmark", postmark, methods=["POST"]),
    Route("/ingress/sendgrid", sendgrid, methods=["POST"]),
    Route("/ingress/relay", relay, methods=["POST"]),
]
