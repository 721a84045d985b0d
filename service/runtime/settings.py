"""Settings from REPLYD_* environment variables (and an optional TOML file), validated once."""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from service.inbound.ratelimit import DEFAULT_RULES, Limit, parse_limits
from service.outbound.compose import LANGUAGES

DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024


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
    workers: int
    outbound_max_attempts: int
    var_dir: Path
    http_host: str = "127.0.0.1"
    http_port: int = 8025
    api_token: str | None = field(default=None, repr=False)
    log_format: str = "text"
    digest_hour: int = 7
    language: str = "en"
    rate_limits: dict[str, Limit] = field(default_factory=dict)
    trust_authserv_id: str | None = None
    retention_days: int = 0
    # Processes started next to the edge to parse and publish (0: all in one process).
    worker_processes: int = 0
    # Whether each worker process parses and extracts in a child process of its own.
    prepare_process: bool = False
    # How long a claim on an inbound or outbound row lasts before another worker may take it.
    lease_seconds: int = 300
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
    var_dir.mkdir(parents=True, exist_ok=True)
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
    """Read a TOML settings file whose keys are REPLYD_* names without the prefix."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"REPLYD_CONFIG names {path!r}, which cannot be read: {exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"REPLYD_CONFIG file {path!r} is not valid TOML: {exc}.") from None
    return {f"REPLYD_{key.upper()}": str(value) for key, value in data.items()}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (and REPLYD_CONFIG's file); raise ConfigError."""
    env = dict(os.environ if environ is None else environ)
    if env.get("REPLYD_CONFIG"):
        env = {**_file_values(env["REPLYD_CONFIG"]), **env}

    def get(name: str, default: str) -> str:
        return env.get(name, default).strip() or default

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
    base_url = get("REPLYD_BASE_URL", "http://127.0.0.1:8025").rstrip("/")
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise ConfigError(f"REPLYD_BASE_URL must be an http(s) URL, got {base_url!r}.")
    database_url = get("REPLYD_DATABASE_URL", f"sqlite:///{var_dir / 'replyd.db'}")
    if "://" not in database_url:
        raise ConfigError(
            "REPLYD_DATABASE_URL must be a SQLAlchemy URL such as sqlite:///var/replyd.db or "
            "postgresql+psycopg://user@host/db."
        )
    old = tuple(s.strip() for s in env.get("REPLYD_OLD_SECRETS", "").split(",") if s.strip())
    return Settings(
        database_url=database_url,
        smtp_host=get("REPLYD_SMTP_HOST", "127.0.0.1"),
        smtp_port=_parse_int("REPLYD_SMTP_PORT", get("REPLYD_SMTP_PORT", "2525"), 1, 65535),
        protocol=protocol,
        domain=domain,
        reply_prefix=get("REPLYD_REPLY_PREFIX", "reply").lower(),
        reply_separator=separator,
        secret=_secret(env.get("REPLYD_SECRET"), var_dir),
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
        workers=_parse_int("REPLYD_WORKERS", get("REPLYD_WORKERS", "1"), 1, 64),
        worker_processes=_worker_processes(get("REPLYD_WORKER_PROCESSES", "auto")),
        prepare_process=_prepare_process(get("REPLYD_PREPARE_PROCESS", "auto")),
        lease_seconds=_parse_int(
            "REPLYD_LEASE_SECONDS", get("REPLYD_LEASE_SECONDS", "300"), 1, 86400
        ),
        **_edge_limits(get),
        outbound_max_attempts=_parse_int(
            "REPLYD_OUTBOUND_MAX_ATTEMPTS", get("REPLYD_OUTBOUND_MAX_ATTEMPTS", "8"), 1, 100
        ),
        var_dir=var_dir,
        http_host=get("REPLYD_HTTP_HOST", "127.0.0.1"),
        http_port=_parse_int("REPLYD_HTTP_PORT", get("REPLYD_HTTP_PORT", "8025"), 0, 65535),
        api_token=_api_token(env.get("REPLYD_API_TOKEN")),
        rate_limits=_rate_limits(get("REPLYD_RATE_LIMITS", DEFAULT_RULES)),
        trust_authserv_id=env.get("REPLYD_TRUST_AUTHSERV_ID", "").strip().lower() or None,
        retention_days=_parse_int(
            "REPLYD_RETENTION_DAYS", get("REPLYD_RETENTION_DAYS", "0"), 0, 36500
        ),
        language=_choice("REPLYD_LANGUAGE", get("REPLYD_LANGUAGE", "en"), LANGUAGES),
        digest_hour=_parse_int("REPLYD_DIGEST_HOUR", get("REPLYD_DIGEST_HOUR", "7"), 0, 23),
        log_format=_choice("REPLYD_LOG_FORMAT", get("REPLYD_LOG_FORMAT", "text"), ("text", "json")),
    )


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
