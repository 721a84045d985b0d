"""Settings from REPLYD_* environment variables (and an optional TOML file), validated once."""

from __future__ import annotations

import difflib
import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from service.files import private_dir
from service.inbound.ratelimit import DEFAULT_RULES, Limit, parse_limits
from service.resources import LANGUAGES
from service.runtime.throttle import DEFAULT_WEB_LIMITS, WebLimit, parse_web_limits
from service.runtime.webhook_settings import WebhookSettings, load_webhooks

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
# Every setting replyd reads; a config file key must be one of these without the prefix.
NAMES = (
    "REPLYD_API_TOKEN",
    "REPLYD_BASE_URL",
    "REPLYD_DATABASE_URL",
    "REPLYD_DIGEST_HOUR",
    "REPLYD_DOMAIN",
    "REPLYD_EMBED_ORIGINS",
    "REPLYD_FEED_AUTHOR_EMAIL",
    "REPLYD_FEED_SECONDS",
    "REPLYD_FEED_URL",
    "REPLYD_FROM_ADDRESS",
    "REPLYD_HTTP_HOST",
    "REPLYD_HTTP_PORT",
    "REPLYD_INGRESS_PASSWORD",
    "REPLYD_LANGUAGE",
    "REPLYD_LEASE_SECONDS",
    "REPLYD_LOG_FORMAT",
    "REPLYD_MAILGUN_SIGNING_KEY",
    "REPLYD_MAX_MESSAGE_BYTES",
    "REPLYD_MAX_RECIPIENTS",
    "REPLYD_MODERATION",
    "REPLYD_MODERATORS",
    "REPLYD_NOTICES_PER_HOUR",
    "REPLYD_OLD_SECRETS",
    "REPLYD_OUTBOUND",
    "REPLYD_OUTBOUND_MAX_ATTEMPTS",
    "REPLYD_PREPARE_PROCESS",
    "REPLYD_PROTOCOL",
    "REPLYD_QUOTES_ONLY",
    "REPLYD_RATE_LIMITS",
    "REPLYD_REPLY_PREFIX",
    "REPLYD_REPLY_SEPARATOR",
    "REPLYD_RETENTION_DAYS",
    "REPLYD_SECRET",
    "REPLYD_SITE_NAME",
    "REPLYD_SMTP_HOST",
    "REPLYD_SMTP_PORT",
    "REPLYD_TRUST_AUTHSERV_ID",
    "REPLYD_VAR_DIR",
    "REPLYD_WEB_LIMITS",
    "REPLYD_WORKER_PROCESSES",
    "REPLYD_MAX_CONNECTIONS",
    "REPLYD_MAX_CONNECTIONS_PER_CLIENT",
    "REPLYD_SMTP_TIMEOUT",
    "REPLYD_SMTP_SESSION_SECONDS",
    "REPLYD_SMTP_MAX_COMMANDS",
    "REPLYD_HTTP_MAX_CONNECTIONS",
    "REPLYD_HTTP_MAX_CONNECTIONS_PER_CLIENT",
    "REPLYD_HTTP_REQUEST_TIMEOUT",
    "REPLYD_WORKERS",  # deprecated: read as REPLYD_WORKER_PROCESSES
    # Read in service/runtime/webhook_settings.py, through `raw` below.
    "REPLYD_WEBHOOK_URL",
    "REPLYD_WEBHOOK_SECRET",
    "REPLYD_WEBHOOK_TIMEOUT_SECONDS",
    "REPLYD_WEBHOOK_RETRY_SECONDS",
)
# Hosts that mean "every interface": a browser or mail reader cannot go there, localhost it can.
_ANY_HOST = ("0.0.0.0", "::", "")
_reported: set[str] = set()
# How long a claim on a row lasts unless renewed: its holder's heartbeat renews it every
# third of this, so the messages of a node that died return to the others within it.
DEFAULT_LEASE_SECONDS = 30


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and what to do."""


@dataclass(frozen=True)
class Outbound:
    """Where outbound mail goes: a local Maildir, or an SMTP relay."""

    kind: str  # "maildir" or "smtp"
    path: Path | None = None
    host: str = ""
    port: int = 25
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    cafile: str | None = None  # CA bundle to verify the relay's certificate (a private CA)


@dataclass(frozen=True)
class Settings:
    """Everything replyd is configured with; built by load_settings and passed down."""

    database_url: str
    smtp_host: str
    smtp_port: int
    protocol: str
    domain: str
    reply_prefix: str
    reply_separator: str
    secret: str = field(repr=False)
    old_secrets: tuple[str, ...] = field(repr=False)
    outbound: Outbound
    base_url: str
    site_name: str
    from_address: str
    max_message_bytes: int
    max_recipients: int
    quotes_only: bool
    outbound_max_attempts: int
    var_dir: Path
    http_host: str = "127.0.0.1"
    http_port: int = 8025
    api_token: str | None = field(default=None, repr=False)
    log_format: str = "text"
    digest_hour: int = 7
    language: str = "en"
    rate_limits: dict[str, Limit] = field(default_factory=dict)
    # Failed operator logins, and web comments per client and token (REPLYD_WEB_LIMITS).
    web_limits: dict[str, WebLimit] = field(default_factory=dict)
    trust_authserv_id: str | None = None
    # Rejection notices all senders together may get per hour (None: no cap).
    notices_per_hour: int | None = 100
    # Days the raw source of finished inbound mail is kept (failed mail until handled); 0 keeps
    # it for ever.
    retention_days: int = 30
    # Processes started next to the edge to parse, publish and deliver (0: the workers run in
    # the daemon's own process). The one setting for worker concurrency.
    worker_processes: int = 0
    # Whether each worker process parses and extracts in a child process of its own.
    prepare_process: bool = False
    # How long a claim on an inbound or outbound row lasts, unless its holder's heartbeat
    # renews it, before another worker may take it.
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    # Sentences about settings that still work but should change (e.g. a deprecated name).
    deprecations: tuple[str, ...] = ()
    # Which new comments wait for a moderator: off, new (people never published), all.
    moderation: str = "off"
    # Addresses that get the moderation mail of every post, beside each post's author.
    moderators: tuple[str, ...] = ()
    # The HTTP ingresses: basic-auth password (relay, Postmark, SendGrid), Mailgun's key.
    ingress_password: str | None = field(default=None, repr=False)
    mailgun_signing_key: str | None = field(default=None, repr=False)
    # The blogs' origins (scheme://host[:port]) that may frame /posts/{id}/embed and read and
    # write the public API from a browser (REPLYD_EMBED_ORIGINS).
    embed_origins: tuple[str, ...] = ()
    # Limits at the edge (None: off). SMTP connections in total and from one client address;
    # how long an SMTP session may sit idle and last; how many commands it may send without
    # delivering a message.
    max_connections: int | None = 500
    max_connections_per_client: int | None = 20
    smtp_timeout: int | None = 300
    smtp_session_seconds: int | None = 600
    smtp_max_commands: int | None = 1000
    # HTTP connections in total and from one client address; how long a request may take
    # to arrive, headers and body.
    http_max_connections: int | None = 200
    http_max_connections_per_client: int | None = 50
    http_request_timeout: int | None = 15
    # The blog's RSS or Atom feed, polled every feed_seconds: each new entry becomes a post,
    # by the entry's author address or else feed_author_email (None: no feed is polled).
    feed_url: str | None = None
    feed_seconds: int = 600
    feed_author_email: str | None = None
    # Outgoing webhooks (REPLYD_WEBHOOK_*); None: no URL, no event is queued.
    webhooks: WebhookSettings | None = None


def _parse_int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}.")
    return value


def _parse_limit(name: str, raw: str, low: int, high: int) -> int | None:
    """A limit: a whole number, or "off" for none."""
    if raw.strip().lower() in ("off", "none"):
        return None
    try:
        return _parse_int(name, raw, low, high)
    except ConfigError as error:
        raise ConfigError(f"{str(error)[:-1]}, or off for no limit.") from None


def _worker_processes(raw: str) -> int:
    """REPLYD_WORKER_PROCESSES: a number, or "auto": one worker process beside the edge when
    there is a second CPU for it (measured on two cores: about half the accept p99 under
    load, and a fifth more messages end to end), else 0."""
    if raw.strip().lower() == "auto":
        return 1 if (os.cpu_count() or 1) >= 2 else 0
    return _parse_int("REPLYD_WORKER_PROCESSES", raw, 0, 64)


def _prepare_process(raw: str) -> bool:
    """REPLYD_PREPARE_PROCESS: on, off, or "auto": on when there is a second CPU, where a
    worker process records one batch while its child parses and extracts the next one."""
    if raw.strip().lower() == "auto":
        return (os.cpu_count() or 1) >= 2
    return _parse_bool("REPLYD_PREPARE_PROCESS", raw)


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}.")


def parse_outbound(raw: str, var_dir: Path) -> Outbound:
    """Parse REPLYD_OUTBOUND: maildir:///abs/path, maildir:rel/path or smtp://[u:p@]host:port."""
    url = urlsplit(raw)
    if url.scheme == "maildir":
        path = Path(unquote(url.path or url.netloc))
        if not str(path) or str(path) == ".":
            raise ConfigError(
                "REPLYD_OUTBOUND maildir: needs a path, e.g. maildir:///var/mail/out."
            )
        return Outbound(kind="maildir", path=path if path.is_absolute() else Path.cwd() / path)
    if url.scheme == "smtp":
        if not url.hostname:
            raise ConfigError(
                "REPLYD_OUTBOUND must name a relay host, e.g. smtp://user:pass@mail.example.org:587"
                "?starttls=true."
            )
        try:
            port = url.port or 25
        except ValueError:
            raise ConfigError("REPLYD_OUTBOUND has a bad port number.") from None
        query = parse_qs(url.query)
        starttls = _parse_bool("REPLYD_OUTBOUND starttls", query.get("starttls", ["false"])[0])
        cafile = query.get("cafile", [None])[0]
        if cafile is not None and not Path(cafile).is_file():
            raise ConfigError(f"REPLYD_OUTBOUND cafile={cafile} is not a readable file.")
        return Outbound(
            kind="smtp",
            host=url.hostname,
            port=port,
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else None,
            starttls=starttls,
            cafile=cafile,
        )
    raise ConfigError(
        f"REPLYD_OUTBOUND must start with maildir: or smtp://, got scheme {url.scheme!r}."
    )


def _secret(raw: str | None, var_dir: Path) -> str:
    """The HMAC secret: given, or generated once and kept in var/secret (mode 0600)."""
    if raw:
        if len(raw) < 16:
            raise ConfigError("REPLYD_SECRET must be at least 16 characters long.")
        return raw
    path = var_dir / "secret"
    if path.exists():
        return path.read_text().strip()
    private_dir(var_dir)
    value = secrets.token_urlsafe(32)
    # O_EXCL: two processes starting at once must not each write a different secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _file_values(path: str) -> dict[str, str]:
    """Read a TOML settings file whose keys are REPLYD_* names without the prefix; a key
    that names no setting stops replyd (a typo must not fall back to a default unseen)."""
    import tomllib  # deferred: most deployments have no config file

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"REPLYD_CONFIG names {path!r}, which cannot be read: {exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"REPLYD_CONFIG file {path!r} is not valid TOML: {exc}.") from None
    known = [name.removeprefix("REPLYD_").lower() for name in NAMES]
    for key in data:
        if f"REPLYD_{key.upper()}" not in NAMES:
            close = difflib.get_close_matches(key.lower(), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise ConfigError(
                f"REPLYD_CONFIG file {path!r} has the key {key!r}, which is no replyd setting"
                f"{hint} Keys are the REPLYD_* names without the prefix, e.g. smtp_port."
            )
    return {f"REPLYD_{key.upper()}": str(value) for key, value in data.items()}


def default_base_url(http_host: str, http_port: int) -> str:
    """The address of replyd's own HTTP server, for links in mail when REPLYD_BASE_URL is unset;
    a host that means every interface becomes localhost."""
    host = "localhost" if http_host in _ANY_HOST else http_host
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{http_port}"


def _workers(raw: str | None, old: str | None) -> tuple[int, tuple[str, ...]]:
    """The number of worker processes (REPLYD_WORKER_PROCESSES `raw`), and what to tell the
    operator about REPLYD_WORKERS (`old`), the setting's old name, which counted inbound
    workers in one process."""
    if not old:
        return _worker_processes(raw or "auto"), ()
    if raw:
        note = (
            f"REPLYD_WORKERS is deprecated and ignored: REPLYD_WORKER_PROCESSES={raw} sets the "
            "number of worker processes; remove REPLYD_WORKERS."
        )
        return _worker_processes(raw), (note,)
    count = _parse_int("REPLYD_WORKERS", old, 0, 64)
    note = (
        f"REPLYD_WORKERS is deprecated and was read as REPLYD_WORKER_PROCESSES={count}; set "
        f"REPLYD_WORKER_PROCESSES={count} instead (the number of worker processes beside the "
        "SMTP edge; 0 runs the workers in the daemon's own process)."
    )
    return count, (note,)


def report_deprecations(settings: Settings) -> None:
    """Log each deprecation note of the settings as a warning, once per process."""
    for note in settings.deprecations:
        if note not in _reported:
            _reported.add(note)
            log.warning("%s", note)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (and REPLYD_CONFIG's file); raise ConfigError."""
    env = dict(os.environ if environ is None else environ)
    if env.get("REPLYD_CONFIG"):
        env = {**_file_values(env["REPLYD_CONFIG"]), **env}

    def raw(name: str) -> str | None:
        assert name in NAMES, f"{name} is read but not listed in NAMES"
        return env.get(name)

    def get(name: str, default: str) -> str:
        return (raw(name) or default).strip() or default

    var_dir = Path(get("REPLYD_VAR_DIR", "var")).absolute()
    domain = get("REPLYD_DOMAIN", "replies.localhost").lower()
    if "@" in domain or " " in domain or "." not in domain:
        raise ConfigError(
            f"REPLYD_DOMAIN must be a domain name like replies.example.org, got {domain!r}."
        )
    protocol = _choice("REPLYD_PROTOCOL", get("REPLYD_PROTOCOL", "smtp"), ("smtp", "lmtp"))
    separator = get("REPLYD_REPLY_SEPARATOR", "+")
    if separator not in ("+", "-", "_", "."):
        raise ConfigError("REPLYD_REPLY_SEPARATOR must be one of + - _ .")
    http_host = get("REPLYD_HTTP_HOST", "127.0.0.1")
    http_port = _parse_int("REPLYD_HTTP_PORT", get("REPLYD_HTTP_PORT", "8025"), 0, 65535)
    base_url = get("REPLYD_BASE_URL", default_base_url(http_host, http_port)).rstrip("/")
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise ConfigError(f"REPLYD_BASE_URL must be an http(s) URL, got {base_url!r}.")
    database_url = get("REPLYD_DATABASE_URL", f"sqlite:///{var_dir / 'replyd.db'}")
    if "://" not in database_url:
        raise ConfigError(
            "REPLYD_DATABASE_URL must be a SQLAlchemy URL such as sqlite:///var/replyd.db or "
            "postgresql+psycopg://user@host/db."
        )
    worker_processes, deprecations = _workers(
        (raw("REPLYD_WORKER_PROCESSES") or "").strip() or None,
        (raw("REPLYD_WORKERS") or "").strip() or None,
    )
    old = tuple(s.strip() for s in (raw("REPLYD_OLD_SECRETS") or "").split(",") if s.strip())
    rate_limits = _rate_limits(get("REPLYD_RATE_LIMITS", DEFAULT_RULES))
    try:
        webhooks = load_webhooks(raw)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Settings(
        database_url=database_url,
        smtp_host=get("REPLYD_SMTP_HOST", "127.0.0.1"),
        smtp_port=_parse_int("REPLYD_SMTP_PORT", get("REPLYD_SMTP_PORT", "2525"), 1, 65535),
        protocol=protocol,
        domain=domain,
        reply_prefix=get("REPLYD_REPLY_PREFIX", "reply").lower(),
        reply_separator=separator,
        secret=_secret(raw("REPLYD_SECRET"), var_dir),
        old_secrets=old,
        outbound=parse_outbound(get("REPLYD_OUTBOUND", f"maildir://{var_dir / 'outbox'}"), var_dir),
        base_url=base_url,
        site_name=get("REPLYD_SITE_NAME", "replyd"),
        from_address=get("REPLYD_FROM_ADDRESS", f"notifications@{domain}").lower(),
        max_message_bytes=_parse_int(
            "REPLYD_MAX_MESSAGE_BYTES",
            get("REPLYD_MAX_MESSAGE_BYTES", str(DEFAULT_MAX_MESSAGE_BYTES)),
            1024,
            1024**3,
        ),
        max_recipients=_parse_int(
            "REPLYD_MAX_RECIPIENTS", get("REPLYD_MAX_RECIPIENTS", "10"), 1, 1000
        ),
        quotes_only=_parse_bool("REPLYD_QUOTES_ONLY", get("REPLYD_QUOTES_ONLY", "false")),
        worker_processes=worker_processes,
        deprecations=deprecations,
        prepare_process=_prepare_process(get("REPLYD_PREPARE_PROCESS", "auto")),
        lease_seconds=_parse_int(
            "REPLYD_LEASE_SECONDS",
            get("REPLYD_LEASE_SECONDS", str(DEFAULT_LEASE_SECONDS)),
            1,
            86400,
        ),
        **_edge_limits(get),
        outbound_max_attempts=_parse_int(
            "REPLYD_OUTBOUND_MAX_ATTEMPTS", get("REPLYD_OUTBOUND_MAX_ATTEMPTS", "8"), 1, 100
        ),
        var_dir=var_dir,
        http_host=http_host,
        http_port=http_port,
        api_token=_api_token(raw("REPLYD_API_TOKEN")),
        rate_limits=rate_limits,
        # REPLYD_RATE_LIMITS=off switches every limit off (load tests), the web's too.
        web_limits=_web_limits(get("REPLYD_WEB_LIMITS", DEFAULT_WEB_LIMITS)) if rate_limits else {},
        trust_authserv_id=(raw("REPLYD_TRUST_AUTHSERV_ID") or "").strip().lower() or None,
        # Off with the other limits (REPLYD_RATE_LIMITS=off, for load tests) unless set.
        notices_per_hour=_notices_per_hour(
            get("REPLYD_NOTICES_PER_HOUR", "100" if rate_limits else "off")
        ),
        retention_days=_parse_int(
            "REPLYD_RETENTION_DAYS", get("REPLYD_RETENTION_DAYS", "30"), 0, 36500
        ),
        language=_choice("REPLYD_LANGUAGE", get("REPLYD_LANGUAGE", "en"), LANGUAGES),
        digest_hour=_parse_int("REPLYD_DIGEST_HOUR", get("REPLYD_DIGEST_HOUR", "7"), 0, 23),
        log_format=_choice("REPLYD_LOG_FORMAT", get("REPLYD_LOG_FORMAT", "text"), ("text", "json")),
        moderation=_choice(
            "REPLYD_MODERATION", get("REPLYD_MODERATION", "off"), ("off", "new", "all")
        ),
        moderators=_moderators(raw("REPLYD_MODERATORS") or ""),
        ingress_password=_secret_setting("REPLYD_INGRESS_PASSWORD", env),
        mailgun_signing_key=_secret_setting("REPLYD_MAILGUN_SIGNING_KEY", env),
        embed_origins=embed_origins(raw("REPLYD_EMBED_ORIGINS") or ""),
        feed_url=feed_url((raw("REPLYD_FEED_URL") or "").strip()),
        feed_seconds=_parse_int("REPLYD_FEED_SECONDS", get("REPLYD_FEED_SECONDS", "600"), 1, 86400),
        feed_author_email=_feed_author((raw("REPLYD_FEED_AUTHOR_EMAIL") or "").strip()),
        webhooks=webhooks,
    )


def feed_url(raw: str) -> str | None:
    """REPLYD_FEED_URL: the blog's feed, an absolute http(s) URL without a user name."""
    if not raw:
        return None
    url = urlsplit(raw)
    if url.scheme.lower() not in ("http", "https") or not url.hostname or url.username:
        raise ConfigError(
            f"REPLYD_FEED_URL must be the blog's feed as an http(s) address, e.g. "
            f"https://blog.example.org/feed/, got {raw!r}."
        )
    return raw


def _feed_author(raw: str) -> str | None:
    """REPLYD_FEED_AUTHOR_EMAIL: who the feed's posts belong to when an entry names no address."""
    if not raw:
        return None
    if not _ADDRESS.match(raw):
        raise ConfigError(
            f"REPLYD_FEED_AUTHOR_EMAIL must be the address that is told of comments on the "
            f"feed's posts, like ann@example.org; {raw!r} is not one."
        )
    return raw.lower()


_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")


def _moderators(raw: str) -> tuple[str, ...]:
    """REPLYD_MODERATORS: addresses separated by commas, lower-cased, each once."""
    found: list[str] = []
    for part in raw.split(","):
        address = part.strip().lower()
        if not address:
            continue
        if not _ADDRESS.match(address):
            raise ConfigError(
                f"REPLYD_MODERATORS must list email addresses separated by commas, like "
                f"ann@example.org,bob@example.org; {part.strip()!r} is not one."
            )
        if address not in found:
            found.append(address)
    return tuple(found)


def _secret_setting(name: str, env: Mapping[str, str]) -> str | None:
    """A password or key an ingress checks requests with; None leaves that ingress closed."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if len(raw) < 16:
        raise ConfigError(f"{name} must be at least 16 characters long.")
    return raw


def embed_origins(raw: str) -> tuple[str, ...]:
    """REPLYD_EMBED_ORIGINS: comma- or space-separated origins like https://blog.example.org,
    each a scheme, a host and an optional port, nothing else; written as browsers send them."""
    origins: list[str] = []
    for part in raw.replace(",", " ").split():
        url = urlsplit(part)
        try:
            port = url.port
        except ValueError:
            port = -1
        if (
            url.scheme not in ("http", "https")
            or not url.hostname
            or port == -1
            or url.path not in ("", "/")
            or url.query
            or url.fragment
            or url.username is not None
            or "*" in part
        ):
            raise ConfigError(
                f"REPLYD_EMBED_ORIGINS: {part!r} is not an origin; write each blog as "
                "scheme://host[:port], e.g. https://blog.example.org, separated by commas."
            )
        host = url.hostname if ":" not in url.hostname else f"[{url.hostname}]"
        default = {"http": 80, "https": 443}[url.scheme]
        origin = f"{url.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def _edge_limits(get: Callable[[str, str], str]) -> dict[str, int | None]:
    """The connection, session and request limits of the SMTP and HTTP listeners; each one
    a number, or "off"."""
    limits = {
        # field: (variable, default, lowest, highest)
        "max_connections": ("REPLYD_MAX_CONNECTIONS", "500", 1, 1_000_000),
        "max_connections_per_client": ("REPLYD_MAX_CONNECTIONS_PER_CLIENT", "20", 1, 1_000_000),
        "smtp_timeout": ("REPLYD_SMTP_TIMEOUT", "300", 1, 86400),
        "smtp_session_seconds": ("REPLYD_SMTP_SESSION_SECONDS", "600", 1, 86400),
        "smtp_max_commands": ("REPLYD_SMTP_MAX_COMMANDS", "1000", 10, 10_000_000),
        "http_max_connections": ("REPLYD_HTTP_MAX_CONNECTIONS", "200", 1, 1_000_000),
        "http_max_connections_per_client": (
            "REPLYD_HTTP_MAX_CONNECTIONS_PER_CLIENT",
            "50",
            1,
            1_000_000,
        ),
        "http_request_timeout": ("REPLYD_HTTP_REQUEST_TIMEOUT", "15", 1, 3600),
    }
    return {
        field: _parse_limit(name, get(name, default), low, high)
        for field, (name, default, low, high) in limits.items()
    }


def _rate_limits(raw: str) -> dict[str, Limit]:
    try:
        return parse_limits(raw)
    except ValueError as exc:
        raise ConfigError(f"REPLYD_RATE_LIMITS: {exc}.") from None


def _web_limits(raw: str) -> dict[str, WebLimit]:
    try:
        return parse_web_limits(raw)
    except ValueError as exc:
        raise ConfigError(f"REPLYD_WEB_LIMITS: {exc}.") from None


def _notices_per_hour(raw: str) -> int | None:
    """REPLYD_NOTICES_PER_HOUR: a number of rejection notices per hour, or off (no cap)."""
    if raw.strip().lower() in ("off", "none"):
        return None
    try:
        return _parse_int("REPLYD_NOTICES_PER_HOUR", raw, 0, 1_000_000)
    except ConfigError:
        raise ConfigError(
            f"REPLYD_NOTICES_PER_HOUR must be a number of notices per hour (0 sends none) or "
            f"off, got {raw!r}."
        ) from None


def _api_token(raw: str | None) -> str | None:
    """The bearer token of the HTTP API; None leaves the protected endpoints closed."""
    if not raw or not raw.strip():
        return None
    if len(raw.strip()) < 16:
        raise ConfigError("REPLYD_API_TOKEN must be at least 16 characters long.")
    return raw.strip()


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}.")
    return value
