"""The HTTP side of the REST server: a socket bound before the supervisor starts, a small router,
and JSON in and out. The resources themselves are in connect.py, page.py and metrics.py.

Runs in the sidecar process (conductor/sidecar.py): request threads here never touch the
supervisor, which they reach only through the command pipe.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from conductor.api.auth import CHALLENGE, Guard
from conductor.errors import ConfigError

log = logging.getLogger("conductor.api")

PARENT_CHECK_S = 1.0
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; HttpError 400 when it is not."""
        try:
            return orjson.loads(self.body or b"null")
        except orjson.JSONDecodeError as error:
            raise HttpError(400, f"the request body is not JSON: {error}") from None

    def flag(self, name: str) -> bool:
        """A boolean query parameter, as Kafka Connect reads them (absent: false)."""
        values = self.query.get(name) or ["false"]
        value = values[-1].lower()
        if value not in ("true", "false"):
            raise HttpError(400, f"query parameter {name} must be true or false, not {values[-1]!r}")
        return value == "true"


@dataclass(frozen=True)
class Response:
    status: int
    body: Any = None  # JSON-able, or bytes with content_type
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return orjson.dumps(self.body)


class HttpError(Exception):
    """Answered as Kafka Connect answers errors: {"error_code": status, "message": ...}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[Request], Response]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """`pattern`: a path with {name} parts, each matching one path segment."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/") or "/")
        self.routes.append((method, re.compile(regex + "/?"), handler))

    def handle(self, request: Request) -> Response:
        allowed = []
        for method, regex, handler in self.routes:
            match = regex.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            params = {name: unquote(value) for name, value in match.groupdict().items()}
            return handler(Request(request.method, request.path, request.query, request.body, params))
        if allowed:
            raise HttpError(405, f"HTTP {request.method} is not supported on {request.path}")
        raise HttpError(404, f"Not found: {request.path}")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, made before the supervisor forks anything; a port in use is a
    ConfigError naming the port and the key that chose it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=64)
    except OSError as error:
        where = f"{host}:{port}"
        if error.errno == errno.EADDRINUSE:
            why = f"port {port} is already in use on {host}"
            hint = "; give each conductor on a host its own port"
        else:
            why, hint = f"cannot listen on {where}: {error.strerror or error}", ""
        raise ConfigError(
            [f"listeners: {why} (listeners=http://{where}){hint}"], source="the REST server"
        ) from None


def serve(
    sock: socket.socket,
    router: Router,
    supervisor_pid: int,
    guard: Guard | None = None,
    tls: ssl.SSLContext | None = None,
) -> int:
    """Serve until SIGTERM or until the supervisor is gone; `guard` asks for credentials, `tls`
    makes it https."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    server = _Server(sock, router, guard, tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
    thread.start()
    while not stop.wait(PARENT_CHECK_S):
        if os.getppid() != supervisor_pid:
            break
    server.shutdown()
    server.server_close()
    return 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, sock: socket.socket, router: Router, guard: Guard | None, tls: ssl.SSLContext | None
    ) -> None:
        super().__init__(sock.getsockname()[:2], _RequestHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.router = router
        self.guard = guard
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake happens here, on the request's own thread, so a slow or broken
        client never holds up the accepting loop."""
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as error:
                log.debug("TLS handshake with %s failed: %s", client_address, error)
                return
        super().finish_request(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "conductor"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise HttpError(413, f"the request body is larger than {MAX_BODY} bytes")
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            guard = self.server.guard
            if guard is not None and not guard.allows(method, url.path, self.headers.get("Authorization")):
                raise HttpError(
                    401,
                    "authentication required: sign in as a user of conductor.rest.users.file, "
                    "or send the bearer token of conductor.rest.token",
                )
            request = Request(method, url.path, parse_qs(url.query), body)
            response = self.server.router.handle(request)
        except HttpError as error:
            response = Response(error.status, {"error_code": error.status, "message": error.message})
        except Exception as error:  # a bug must not take the server down; say what it was
            log.exception("%s %s failed", method, self.path)
            message = f"{type(error).__name__}: {error}"
            response = Response(500, {"error_code": 500, "message": message})
        data = response.encoded()
        self.send_response(response.status)
        if data or response.status not in (204, 202):
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if response.status == 401:
            self.send_header("WWW-Authenticate", CHALLENGE)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
