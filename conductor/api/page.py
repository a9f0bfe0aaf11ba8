"""The status page (/ui) and the JSON it reads (/conductor/state): everything kafka-connect-ui
showed, from the same state files as the REST API. The page is one static file with its
script and styles inside: nothing is fetched from elsewhere and nothing is built."""

from __future__ import annotations

import socket
from collections.abc import Callable
from importlib import resources
from typing import Any

from conductor.api.http import Request, Response, Router
from conductor.api.view import ConnectorView, uptime_s

PAGE = "page.html"


class StatusPage:
    def __init__(self, kind: str, worker_id: str, read_view: Callable[[], ConnectorView]) -> None:
        self.kind = kind  # elasticsearch, cassandra or aggregator
        self.worker_id = worker_id
        self.read_view = read_view
        self.host = socket.gethostname()
        self.page = resources.files(__package__).joinpath(PAGE).read_bytes()

    def register(self, router: Router) -> None:
        router.add("GET", "/ui", self.html)
        router.add("GET", "/conductor/state", self.state)

    def html(self, request: Request) -> Response:
        return Response(200, self.page, "text/html; charset=utf-8")

    def state(self, request: Request) -> Response:
        return Response(200, self.describe(self.read_view()))

    def describe(self, view: ConnectorView) -> dict[str, Any]:
        supervisor = view.supervisor
        return {
            "name": view.name,
            "kind": self.kind,
            "type": "aggregator" if self.kind == "aggregator" else "sink",
            "state": view.state,
            "target_state": view.target_state,
            "worker_id": self.worker_id,
            "host": self.host,
            "supervisor_pid": supervisor.get("pid"),
            "started_at": supervisor.get("started_at"),
            "tasks": [_task(task, self.host) for task in view.tasks],
        }


def _task(task: Any, host: str) -> dict[str, Any]:
    slot, worker = task.slot, task.worker
    current = task.current
    shown = {
        "id": task.id,
        "state": task.state,
        "host": host,
        "pid": slot.get("pid"),
        "uptime_s": uptime_s(slot),
        "restarts": slot.get("respawns") or 0,
        "last_exit": slot.get("last_exit"),
        "trace": task.trace,
        "last_error": worker.get("last_error"),
        "partitions": worker.get("partitions") or [] if current else [],
        "records_per_s": worker.get("records_per_s") or 0 if current else 0,
        "waiting_for": worker.get("waiting_for") if current else None,
    }
    for count in ("read", "written", "skipped", "dead_lettered", "records_lost", "results", "late"):
        if count in worker:
            shown[count] = worker[count]
    retention = worker.get("retention") or {}
    if current and retention.get("runs_here"):
        shown["retention"] = retention
    if "open_windows" in worker:
        shown["open_windows"] = worker["open_windows"] if current else 0
        shown["output_topics"] = worker.get("output_topics") or []
    return shown
