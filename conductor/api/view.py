"""The connector as Kafka Connect would show it, read from the state files its processes write.

The supervisor's file holds the slots (conductor's tasks) and the connector's target state;
each worker's file holds its partitions, counts and last error. Nothing here keeps state of
its own: every request reads the files afresh, so a view is never older than they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor.status import read_state

# Kafka Connect's task and connector states.
RUNNING, PAUSED, FAILED = "RUNNING", "PAUSED", "FAILED"
RESTARTING, UNASSIGNED, STOPPED = "RESTARTING", "UNASSIGNED", "STOPPED"


@dataclass(frozen=True)
class TaskView:
    id: int
    state: str
    slot: dict[str, Any]
    worker: dict[str, Any]  # {} before the worker wrote its file
    trace: str | None
    current: bool  # the worker file is the running process's (not a predecessor's)

    def status(self, worker_id: str) -> dict[str, Any]:
        """Kafka Connect's TaskStatus: id, state, worker_id, and trace when FAILED."""
        status: dict[str, Any] = {"id": self.id, "state": self.state, "worker_id": worker_id}
        if self.state == FAILED:
            status["trace"] = self.trace or ""
        return status


@dataclass(frozen=True)
class ConnectorView:
    name: str
    supervisor: dict[str, Any]
    tasks: tuple[TaskView, ...]

    @property
    def target_state(self) -> str:
        return self.supervisor.get("target_state") or RUNNING

    @property
    def state(self) -> str:
        """The connector's state: its target, unless every task failed (or it is shutting down)."""
        if self.supervisor.get("stopping"):
            return UNASSIGNED
        if self.target_state in (PAUSED, STOPPED):
            return self.target_state
        if self.tasks and all(task.state == FAILED for task in self.tasks):
            return FAILED
        return RUNNING

    @property
    def listed_tasks(self) -> tuple[TaskView, ...]:
        """The tasks Kafka Connect would show: none while the connector is stopped."""
        return () if self.target_state == STOPPED else self.tasks

    def task(self, task_id: int) -> TaskView | None:
        return next((task for task in self.tasks if task.id == task_id), None)


def read_view(state_dir: Path, name: str) -> ConnectorView:
    supervisor = read_state(state_dir / "supervisor.json") or {}
    tasks = []
    for slot in supervisor.get("workers") or ():
        worker = read_state(state_dir / f"worker-{slot['worker_id']}.json") or {}
        tasks.append(_task(slot, worker))
    return ConnectorView(name, supervisor, tuple(tasks))


def _task(slot: dict[str, Any], worker: dict[str, Any]) -> TaskView:
    current = worker.get("pid") == slot.get("pid") and slot.get("pid") is not None
    state = _task_state(slot, worker if current else {})
    trace = None
    if state == FAILED:
        trace = (
            worker.get("trace") or worker.get("last_error") or f"the worker ended: {slot.get('last_exit')}"
        )
    return TaskView(slot["worker_id"], state, slot, worker, trace, current)


def _task_state(slot: dict[str, Any], worker: dict[str, Any]) -> str:
    """A slot (starting, running, backoff, failed, stopped) and its worker's own state, as
    Kafka Connect's task states."""
    slot_state = slot.get("state")
    if slot_state == "failed":
        return FAILED
    if slot_state == "stopped":
        return STOPPED
    if slot_state == "backoff" or slot.get("replacing"):
        return RESTARTING
    if slot_state == "starting":
        return RESTARTING if slot.get("restarts") or slot.get("last_exit") else UNASSIGNED
    worker_state = worker.get("state")
    if worker_state == "paused":
        return PAUSED
    if worker_state in ("failed", "boot failed"):
        return FAILED
    return RUNNING


def uptime_s(slot: dict[str, Any]) -> float | None:
    started = slot.get("started_at")
    return round(time.time() - started, 1) if started else None
