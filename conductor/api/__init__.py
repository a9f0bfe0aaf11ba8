"""conductor's REST server: Kafka Connect's REST API, the status page and Prometheus metrics,
for one connector, served by a process beside its workers (conductor/sidecar.py).

`ApiServer` is made and bound in `conductor start` before the supervisor runs, so a port in
use stops the start with a clear message; the supervisor then forks it.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import psutil

from conductor.api import http, metrics
from conductor.api.auth import Guard
from conductor.api.connect import ConnectResources, worker_id
from conductor.api.offsets import OffsetStore
from conductor.api.page import StatusPage
from conductor.api.view import read_view
from conductor.commands import Command, send
from conductor.config import ConnectorConfig, RestSettings
from conductor.config.keystores import load_key_entry
from conductor.errors import ConfigError


class ApiServer:
    """The sidecar's server (conductor.sidecar.Server)."""

    def __init__(self, config: ConnectorConfig, state_dir: Path) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.metrics_dir = self.state_dir / "metrics"
        rest = config.rest
        self.tls = tls_context(rest)  # before binding: a bad keystore stops the start first
        self.socket = http.bind(rest.host, rest.port)
        port = self.socket.getsockname()[1]  # the one taken, when listeners asked for port 0
        shown_host = "127.0.0.1" if rest.host == "0.0.0.0" else rest.host
        self.url = f"{rest.scheme}://{shown_host}:{port}"
        self.worker_id = worker_id(rest.host, port, rest.advertised_host, rest.advertised_port)
        metrics.prepare(self.metrics_dir)

    def fds(self) -> list[int]:
        return [self.socket.fileno()]

    def worker_exited(self, pid: int) -> None:
        metrics.forget(self.metrics_dir, pid)

    def serve(self, command_fd: int, supervisor_pid: int) -> int:
        config = self.config

        def view():
            return read_view(self.state_dir, config.name)

        def command(order: Command) -> None:
            send(command_fd, order)

        router = http.Router()
        offsets = OffsetStore(config.kafka, config.group_id)
        ConnectResources(config, self.state_dir, self.worker_id, command, offsets).register(router)
        kind = "aggregator" if config.aggregate is not None else config.sink
        StatusPage(kind, self.worker_id, view).register(router)
        router.add(
            "GET", "/metrics", metrics.Metrics(self.metrics_dir, config.connector_class or kind, view).handle
        )
        rest = config.rest
        guard = None
        if rest.authenticates:
            users = {user: password.reveal() for user, password in rest.users.items()}
            guard = Guard(users, rest.token.reveal() if rest.token else None, rest.open_reads)
        return http.serve(self.socket, router, supervisor_pid, guard, self.tls)

    def close(self) -> None:
        self.socket.close()


def tls_context(rest: RestSettings) -> ssl.SSLContext | None:
    """The server's TLS context for an https listener; a keystore that cannot be loaded is a
    ConfigError that names the key and why (a PKCS12 or JKS keystore was read at config load)."""
    if rest.certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    password = rest.key_password.reveal() if rest.key_password is not None else None
    try:
        if rest.key_entry is not None:
            load_key_entry(context, rest.key_entry)
        else:
            context.load_cert_chain(rest.certfile, password=password)
    except FileNotFoundError:
        why = "no such file"
    except ssl.SSLError as error:
        why = f"not a PEM certificate chain with its private key, or a wrong key password ({error.reason or error})"
    except OSError as error:
        why = error.strerror or str(error)
    else:
        return context
    raise ConfigError(
        [f"listeners.https.ssl.keystore.location: {rest.certfile}: {why}"], source="the REST server"
    )


def state_url(state_dir: Path) -> str | None:
    """The URL a running conductor serves, from its supervisor's state."""
    from conductor.status import read_state

    state = read_state(Path(state_dir) / "supervisor.json") or {}
    url = state.get("url")
    return url if isinstance(url, str) and state.get("pid") and psutil.pid_exists(state["pid"]) else None
