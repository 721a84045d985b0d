"""The HTTP side of `replyd serve`: the ASGI app (API, pages, health, metrics) and its server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping

import uvicorn
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.inbound.connections import Caps, ConnectionCaps, ThrottledLog
from service.inbound.intake import Intake
from service.resources import templates_dir
from service.runtime.components import Components
from service.runtime.throttle import Throttle
from service.store.engine import make_sessionmaker, read_only_engine
from service.store.posts import PostInvalid
from service.web import api, ingress, pages
from service.web.context import ApiError, WebContext, context_of
from service.web.guard import guarded_protocol
from service.web.metrics import metrics_registry, render_metrics
from service.web.origins import CorsMiddleware
from service.web.render import error_page, linkify

log = logging.getLogger(__name__)
access_log = logging.getLogger("replyd.http")

WEB_TEMPLATES_DIR = templates_dir() / "web"
HEALTH_TIMEOUT_SECONDS = 5.0
SHUTDOWN_GRACE_SECONDS = 5
KEEP_ALIVE_SECONDS = 5  # how long a connection may wait idle for its next request
LISTEN_BACKLOG = 128
# Pages are self-contained: inline styles, no scripts, forms posting back to us only.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
# Unsubscribe, moderation, confirmation and erasure tokens are capabilities: logs show their
# route, never their value.
_SECRET_PATHS = re.compile(r"^/(unsubscribe|moderate|confirm|forget/confirm|forget)/[^/]+")
_JSON_PATHS = ("/api/", "/ingress/", "/openapi.json", "/healthz", "/metrics")
_PRIVATE_PATHS = ("/admin/", "/unsubscribe/", "/confirm/", "/forget/")


def web_templates() -> Environment:
    """The jinja2 environment of the HTML pages: everything autoescaped."""
    environment = Environment(
        loader=FileSystemLoader(WEB_TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
    )
    environment.filters["linkify"] = linkify
    environment.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M UTC")
    return environment


def loggable_path(path: str) -> str:
    """A request path fit for logs: unsubscribe, moderation, confirmation and erasure tokens
    replaced."""
    return _SECRET_PATHS.sub(r"/\1/{token}", path)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(_JSON_PATHS)


def _error(request: Request, status: int, message: str) -> Response:
    """An error as JSON for API clients, as a page for browsers."""
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    return error_page(context_of(request), status, message)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    response = _error(request, exc.status, exc.message)
    response.headers.update(exc.headers)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = _error(request, exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _post_invalid(request: Request, exc: Exception) -> Response:
    # Whatever door a post came in by, its rules are service.store.posts' and say what is wrong.
    return _error(request, 422, str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    # Two requests created the same post or person at once; the loser may simply retry.
    return _error(request, 409, "a concurrent request changed the same record; try again")


async def _database_down(request: Request, exc: Exception) -> Response:
    path = loggable_path(request.url.path)
    log.warning("%s %s: database unavailable (%s)", request.method, path, type(exc).__name__)
    return _error(request, 503, "the database is unavailable right now; try again shortly")


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (by Starlette); the client learns nothing internal.
    return _error(request, 500, "internal error; the operator can find it in replyd's log")


def database_ok(engine: Engine) -> bool:
    """Whether the database answers and holds replyd's schema (no transaction, no lock)."""
    try:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT version_num FROM alembic_version")
            cursor.fetchall()
            cursor.close()
        finally:
            connection.close()
    except Exception as exc:
        log.warning("health check: database unavailable (%s)", type(exc).__name__)
        return False
    return True


async def healthz(request: Request) -> Response:
    """GET /healthz: 200 when the database answers and the SMTP listener is bound, else 503."""
    web = context_of(request)
    try:
        database = await asyncio.wait_for(
            run_in_threadpool(database_ok, web.parts.engine), HEALTH_TIMEOUT_SECONDS
        )
    except TimeoutError:
        database = False
    listener = web.smtp_bound()
    healthy = database and listener
    return JSONResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "database": "ok" if database else "unreachable",
            "listener": "bound" if listener else "not bound",
        },
        status_code=200 if healthy else 503,
    )


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text format, counted from the database."""
    registry = request.app.state.metrics
    body = await run_in_threadpool(render_metrics, registry)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def is_private(scope: Scope) -> bool:
    """Whether a response may hold what only its requester should see, so no browser or proxy
    may keep it: operator pages and raw mail, unsubscribe pages (the path is a capability),
    and whatever answers a request made with the API token."""
    path: str = scope.get("path", "")
    if path.startswith(_PRIVATE_PATHS):
        return True
    return any(name == b"authorization" for name, _ in scope.get("headers", ()))


class EdgeMiddleware:
    """Adds security headers to every response (and `Cache-Control: no-store` to private ones)
    and writes one access-log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        private = is_private(scope)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                # A page whose own policy lets blogs frame it (the embed page) has no DENY.
                own = headers.get("content-security-policy", "frame-ancestors 'none'")
                framed = "frame-ancestors 'none'" not in own
                for name, value in SECURITY_HEADERS.items():
                    if not (framed and name == "x-frame-options"):
                        headers.setdefault(name, value)
                if private:
                    headers["cache-control"] = "no-store"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            path = loggable_path(scope.get("path", ""))
            access_log.info(
                "%s %s %s %.1fms",
                scope.get("method", ""),
                path,
                status,
                (time.perf_counter() - started) * 1000,
                extra={"http_method": scope.get("method", ""), "path": path, "status": status},
            )


def _nothing() -> None:
    return None


def create_app(
    parts: Components,
    *,
    read_sessions: sessionmaker[Session] | None = None,
    wake_inbound: Callable[[], None] = _nothing,
    wake_outbound: Callable[[], None] = _nothing,
    smtp_bound: Callable[[], bool] = lambda: True,
    smtp_refusals: Callable[[], Mapping[str, int]] = dict,
    intake: Intake | None = None,
) -> Starlette:
    """The ASGI app of replyd's HTTP surface, built on one process's components."""
    sessions = read_sessions or parts.session_factory
    notifier = parts.notifier()
    web = WebContext(
        parts=parts,
        notifier=notifier,
        intake=parts.intake(notifier),
        moderation=parts.moderation(notifier),
        read_sessions=sessions,
        templates=web_templates(),
        wake_inbound=wake_inbound,
        wake_outbound=wake_outbound,
        smtp_bound=smtp_bound,
        throttle=Throttle(parts.settings.web_limits),
    )
    routes = [
        *api.ROUTES,
        *pages.ROUTES,
        *ingress.ROUTES,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            PostInvalid: _post_invalid,
            IntegrityError: _conflict,
            DBAPIError: _database_down,
            Exception: _internal_error,
        },
    )
    app.state.web = web
    app.state.intake = intake or ingress.default_intake(parts, wake_inbound)
    app.state.metrics = metrics_registry(sessions, smtp_refusals)
    app.add_middleware(CorsMiddleware, origins=parts.settings.embed_origins)
    app.add_middleware(EdgeMiddleware)
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one); OSError names the setting."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror} (REPLYD_HTTP_HOST={host})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"{exc.strerror}: HTTP {host}:{port}; set REPLYD_HTTP_PORT to a free port"
        ) from None
    return sock


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM and drains everything."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals to ReplydServer."""
        yield


class HttpServer:
    """Runs the ASGI app on the daemon's event loop, next to the SMTP listener."""

    def __init__(
        self,
        parts: Components,
        *,
        wake_inbound: Callable[[], None] = _nothing,
        wake_outbound: Callable[[], None] = _nothing,
        smtp_bound: Callable[[], bool] = lambda: True,
        smtp_refusals: Callable[[], Mapping[str, int]] = dict,
        intake: Intake | None = None,
    ) -> None:
        self.parts = parts
        self.intake = intake
        self.smtp_refusals = smtp_refusals
        self.wake_inbound = wake_inbound
        self.wake_outbound = wake_outbound
        self.smtp_bound = smtp_bound
        self._socket: socket.socket | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._read_engine: Engine | None = None
        self._port = 0

    async def start(self, caps: Caps | None = None) -> None:
        """Bind REPLYD_HTTP_HOST:REPLYD_HTTP_PORT and serve until stop(), with these connection
        caps (by default the settings' own)."""
        settings = self.parts.settings
        caps = caps or Caps(settings.http_max_connections, settings.http_max_connections_per_client)
        self._socket = bind_socket(settings.http_host, settings.http_port)
        self._port = int(self._socket.getsockname()[1])
        self._read_engine = read_only_engine(self.parts.engine)
        app = create_app(
            self.parts,
            read_sessions=make_sessionmaker(self._read_engine) if self._read_engine else None,
            wake_inbound=self.wake_inbound,
            wake_outbound=self.wake_outbound,
            smtp_bound=self.smtp_bound,
            smtp_refusals=self.smtp_refusals,
            intake=self.intake,
        )
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,  # ours leaves unsubscribe tokens out
            server_header=False,
            # h11 with connection caps and a request timeout, which uvicorn lacks.
            http=guarded_protocol(
                ConnectionCaps(caps),
                settings.http_request_timeout,
                ThrottledLog(log),
            ),
            ws="none",
            # The listen queue bind_socket made (uvicorn would make it 2048 again): also how
            # many connections asyncio accepts at once, before their refusals can close them.
            backlog=LISTEN_BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        # uvicorn's access log writes request paths, unsubscribe tokens included; ours does not.
        logging.getLogger("uvicorn.access").disabled = True
        uvicorn_log = logging.getLogger("uvicorn.error")
        if uvicorn_log.level == logging.NOTSET:
            uvicorn_log.setLevel(logging.WARNING)  # its start/stop chatter; ours says where we are
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        log.info("replyd HTTP on %s:%s", settings.http_host, self.port)

    @property
    def port(self) -> int:
        """The port the HTTP server is bound to."""
        return self._port

    async def stop(self) -> None:
        """Stop taking requests, let those in flight finish (briefly), release the socket."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._task
        self._task = None
        if self._read_engine is not None:
            self._read_engine.dispose()
            self._read_engine = None
