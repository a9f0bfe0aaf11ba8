"""Kafka Connect's REST resources, with its paths, status codes, JSON shapes and error texts
(connect-runtime's ConnectorsResource, RootResource and ConnectorPluginsResource).

One conductor serves one connector, so /connectors lists one name. conductor's tasks are its
worker slots; the view (view.py) maps their states onto Kafka Connect's. Commands go to the
supervisor through the command pipe and are answered at once, as Kafka Connect answers them.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conductor import __version__
from conductor.api.http import HttpError, Request, Response, Router
from conductor.api.offsets import OffsetStore
from conductor.api.validate import HIDDEN, PLUGINS, validate
from conductor.api.view import RESTARTING, STOPPED, ConnectorView, TaskView, read_view
from conductor.commands import Command
from conductor.config import ConnectorConfig, Secret
from conductor.config.secrets import REFERENCE, is_secret_key

HEALTHY = "Worker has completed startup and is ready to handle requests."
STARTING = "Worker is still starting up."
TASK_CLASS = {"aggregate": "conductor.tasks.AggregatorTask"}


class ConnectResources:
    def __init__(
        self,
        config: ConnectorConfig,
        state_dir: Path,
        worker_id: str,
        send: Callable[[Command], None],
        offsets: OffsetStore,
    ) -> None:
        self.config = config
        self.name = config.name
        self.state_dir = state_dir
        self.worker_id = worker_id
        self.send = send
        self.offsets = offsets
        self.type = "sink"  # the aggregator too: it reads as a sink does, in connect-<name>

    def register(self, router: Router) -> None:
        name = "/connectors/{name}"
        for method, path, handler in (
            ("GET", "/", self.root),
            ("GET", "/health", self.health),
            ("GET", "/connectors", self.connectors),
            ("GET", name, self.info),
            ("GET", name + "/config", self.connector_config),
            ("GET", name + "/status", self.status),
            ("GET", name + "/tasks", self.tasks),
            ("GET", name + "/tasks/{task}/status", self.task_status),
            ("GET", name + "/topics", self.topics),
            ("PUT", name + "/pause", self.pause),
            ("PUT", name + "/resume", self.resume),
            ("PUT", name + "/stop", self.stop),
            ("POST", name + "/restart", self.restart),
            ("POST", name + "/tasks/{task}/restart", self.restart_task),
            ("GET", name + "/offsets", self.get_offsets),
            ("PATCH", name + "/offsets", self.alter_offsets),
            ("DELETE", name + "/offsets", self.reset_offsets),
            ("GET", "/connector-plugins", self.plugins),
            ("PUT", "/connector-plugins/{plugin}/config/validate", self.validate),
        ):
            router.add(method, path, handler)

    # -- reading ------------------------------------------------------------------------------

    def view(self) -> ConnectorView:
        return read_view(self.state_dir, self.name)

    def root(self, request: Request) -> Response:
        return Response(
            200, {"version": __version__, "commit": "", "kafka_cluster_id": self.offsets.cluster_id()}
        )

    def health(self, request: Request) -> Response:
        view = self.view()
        if not view.supervisor:
            return Response(503, {"status": "starting", "message": STARTING})
        return Response(200, {"status": "healthy", "message": HEALTHY})

    def connectors(self, request: Request) -> Response:
        expand = request.query.get("expand") or []
        if not expand:
            return Response(200, [self.name])
        shown: dict[str, Any] = {}
        if "status" in expand:
            shown["status"] = self.status_body(self.view())
        if "info" in expand:
            shown["info"] = self.info_body()
        return Response(200, {self.name: shown})

    def info(self, request: Request) -> Response:
        self.known(request, "Connector {} not found")
        return Response(200, self.info_body())

    def connector_config(self, request: Request) -> Response:
        self.known(request, "Connector {} not found")
        return Response(200, self.masked_config())

    def status(self, request: Request) -> Response:
        self.known(request, "No status found for connector {}")
        return Response(200, self.status_body(self.view()))

    def tasks(self, request: Request) -> Response:
        self.known(request, "Connector {} not found")
        task_config = {**self.masked_config(), "task.class": self.task_class()}
        return Response(
            200,
            [
                {"id": {"connector": self.name, "task": task.id}, "config": task_config}
                for task in self.view().listed_tasks
            ],
        )

    def task_status(self, request: Request) -> Response:
        task = self.find_task(request, "No status found for task {}-{}")
        return Response(200, task.status(self.worker_id))

    def topics(self, request: Request) -> Response:
        self.known(request, "Connector {} not found")
        topics = sorted({p["topic"] for t in self.view().tasks for p in t.worker.get("partitions") or ()})
        return Response(200, {self.name: {"topics": topics}})

    # -- commands -----------------------------------------------------------------------------

    def pause(self, request: Request) -> Response:
        self.known(request, "Unknown connector {}")
        self.send(Command("pause"))
        return Response(202)

    def resume(self, request: Request) -> Response:
        self.known(request, "Unknown connector {}")
        self.send(Command("resume"))
        return Response(202)

    def stop(self, request: Request) -> Response:
        self.known(request, "Unknown connector {}")
        self.send(Command("stop"))
        return Response(204)

    def restart(self, request: Request) -> Response:
        """Both flags false restarts the Connector object alone, which conductor does not have:
        answered 204 as Kafka Connect answers it. Otherwise the chosen tasks restart (202)."""
        self.known(request, "Unknown connector: {}")
        include_tasks, only_failed = request.flag("includeTasks"), request.flag("onlyFailed")
        if not include_tasks and not only_failed:
            return Response(204)
        view = self.view()
        chosen = [t.id for t in view.tasks if include_tasks and (not only_failed or t.state == "FAILED")]
        self.send(Command("restart", tuple(chosen)))
        body = self.status_body(view)
        body["connector"]["state"] = RESTARTING if not only_failed or view.state == "FAILED" else view.state
        for task in body["tasks"]:
            if task["id"] in chosen:
                task["state"] = RESTARTING
                task.pop("trace", None)
        return Response(202, body)

    def restart_task(self, request: Request) -> Response:
        if request.params["name"] != self.name:
            raise HttpError(404, f"Unknown connector: {request.params['name']}")
        task = self.find_task(request, "Unknown task: {}-{}")
        self.send(Command("restart", (task.id,)))
        return Response(204)

    # -- offsets (KIP-875) --------------------------------------------------------------------

    def get_offsets(self, request: Request) -> Response:
        self.known(request, "Connector {} not found")
        return Response(200, {"offsets": self.offsets.read()})

    def alter_offsets(self, request: Request) -> Response:
        self.known(request, "Connector {} not found")
        self.require_stopped()
        self.offsets.alter(request.json())
        return Response(200, {"message": self.offsets.message("altered")})

    def reset_offsets(self, request: Request) -> Response:
        self.known(request, "Connector {} not found")
        self.require_stopped()
        self.offsets.reset()
        return Response(200, {"message": self.offsets.message("reset")})

    def require_stopped(self) -> None:
        view = self.view()
        if view.target_state != STOPPED or any(task.slot.get("pid") for task in view.tasks):
            raise HttpError(
                400,
                "Connectors must be in the STOPPED state before their offsets can be modified. This can "
                "be done for the specified connector by issuing a 'PUT' request to the "
                f"'/connectors/{self.name}/stop' endpoint",
            )

    # -- plugins --------------------------------------------------------------------------------

    def plugins(self, request: Request) -> Response:
        return Response(200, [{"class": c, "type": "sink", "version": __version__} for c in PLUGINS])

    def validate(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "the request body must be a JSON object of config keys and values")
        return Response(200, validate(request.params["plugin"], body))

    # -- shapes -----------------------------------------------------------------------------------

    def status_body(self, view: ConnectorView) -> dict[str, Any]:
        return {
            "name": self.name,
            "connector": {"state": view.state, "worker_id": self.worker_id},
            "tasks": [task.status(self.worker_id) for task in view.listed_tasks],
            "type": self.type,
        }

    def info_body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config": self.masked_config(),
            "tasks": [{"connector": self.name, "task": t.id} for t in self.view().listed_tasks],
            "type": self.type,
        }

    def masked_config(self) -> dict[str, str]:
        """The config as given, as Kafka Connect shows it: a value read from a reference shows
        the reference (`${file:...}`), not what it read; other secrets show as [hidden], and a
        URL's user:password is left out."""
        shown = {}
        references = self.config.references
        for key, value in self.config.raw.items():
            reference = references.get(key)
            if reference is not None and (REFERENCE.fullmatch(reference) or not is_secret_key(key)):
                shown[key] = redact_urls(reference)
            elif isinstance(value, Secret) or is_secret_key(key):
                shown[key] = HIDDEN
            else:
                shown[key] = redact_urls(value)
        return shown

    def task_class(self) -> str:
        return TASK_CLASS.get(self.config.sink, f"conductor.tasks.{self.config.sink.capitalize()}SinkTask")

    def known(self, request: Request, message: str) -> None:
        name = request.params["name"]
        if name != self.name:
            raise HttpError(404, message.format(name))

    def find_task(self, request: Request, message: str) -> TaskView:
        name, text = request.params["name"], request.params["task"]
        task = self.view().task(int(text)) if name == self.name and text.isdigit() else None
        if task is None:
            raise HttpError(404, message.format(name, text))
        return task


URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s,]+@")


def redact_urls(text: str) -> str:
    """`https://user:password@host` -> `https://host`, wherever in the text (a list of hosts)."""
    return URL_CREDENTIALS.sub("", text)


def worker_id(host: str, port: int, advertised_host: str | None, advertised_port: int | None) -> str:
    """host:port as Kafka Connect names a worker: the advertised host, else the listener's
    host unless it listens everywhere, then the machine's name."""
    if advertised_host:
        host = advertised_host
    elif host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"{host}:{advertised_port or port}"
