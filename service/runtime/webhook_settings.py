"""The outgoing webhooks' settings: where events go, the key they are signed with, how long
a receiver is waited for and how soon a failed delivery is tried again (a ValueError says
what is wrong; load_settings makes it a ConfigError)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class WebhookSettings:
    """Webhook URLs (each gets every event), the HMAC key, the receiver timeout and the
    first retry's delay (each later one doubles it, see service.outbound.webhooks)."""

    urls: tuple[str, ...]
    key: bytes = field(repr=False)
    timeout_seconds: float = 10.0
    retry_seconds: float = 30.0


def signing_key(raw: str) -> bytes:
    """The HMAC key of REPLYD_WEBHOOK_SECRET: `whsec_<base64>` (the Standard Webhooks form)
    is the decoded bytes after the prefix; any other value is its own UTF-8 bytes."""
    raw = raw.strip()
    if raw.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(raw.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "REPLYD_WEBHOOK_SECRET starts with whsec_ but what follows is not base64; "
                "give whsec_ and the base64 of random bytes, e.g. from `openssl rand -base64 32`."
            ) from None
    else:
        key = raw.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"REPLYD_WEBHOOK_SECRET must hold at least {MIN_KEY_BYTES} bytes of key "
            "(whsec_ and base64, or a plain secret of 16 characters or more)."
        )
    return key


def _seconds(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}.") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g} seconds, got {raw!r}.")
    return value


def webhook_urls(raw: str) -> tuple[str, ...]:
    """REPLYD_WEBHOOK_URL: http(s) URLs separated by commas, each once."""
    urls: list[str] = []
    for part in raw.split(","):
        url = part.strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "REPLYD_WEBHOOK_URL must list http:// or https:// URLs separated by commas; "
                f"one is not: it starts with {url.split(':', 1)[0][:20]!r}."
            )
        if url not in urls:
            urls.append(url)
    return tuple(urls)


def load_webhooks(get: Callable[[str], str | None]) -> WebhookSettings | None:
    """The webhook settings, or None when REPLYD_WEBHOOK_URL is unset (no events queued)."""
    urls = webhook_urls(get("REPLYD_WEBHOOK_URL") or "")
    if not urls:
        return None
    secret = get("REPLYD_WEBHOOK_SECRET") or ""
    if not secret.strip():
        raise ValueError(
            "REPLYD_WEBHOOK_URL is set but REPLYD_WEBHOOK_SECRET is not: events are signed; "
            "set it to whsec_ and the base64 of 24 random bytes or more."
        )
    return WebhookSettings(
        urls=urls,
        key=signing_key(secret),
        timeout_seconds=_seconds(
            "REPLYD_WEBHOOK_TIMEOUT_SECONDS",
            (get("REPLYD_WEBHOOK_TIMEOUT_SECONDS") or "10").strip(),
            0.1,
            300,
        ),
        retry_seconds=_seconds(
            "REPLYD_WEBHOOK_RETRY_SECONDS",
            (get("REPLYD_WEBHOOK_RETRY_SECONDS") or "30").strip(),
            0.001,
            3600,
        ),
    )
