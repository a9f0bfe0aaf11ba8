"""Commands for the supervisor from its REST API: pause, resume, stop, restart.

They travel as one JSON line each on a pipe the supervisor made before any fork. The API's
process only writes; the supervisor's loop reads and dispatches them the way it dispatches
signals, so nothing but that loop ever changes a slot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import orjson

ACTIONS = ("pause", "resume", "stop", "restart")

# The connector's target states, as Kafka Connect names them.
RUNNING, PAUSED, STOPPED = "RUNNING", "PAUSED", "STOPPED"


@dataclass(frozen=True)
class Command:
    action: str
    tasks: tuple[int, ...] | None = None  # restart: these workers; None: all of them
    only_failed: bool = False  # restart: only the workers that failed

    def encode(self) -> bytes:
        fields = {"action": self.action, "tasks": self.tasks, "only_failed": self.only_failed}
        return orjson.dumps(fields) + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Command:
        """The command in `line`; ValueError naming what is wrong."""
        try:
            fields = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from None
        if not isinstance(fields, dict) or fields.get("action") not in ACTIONS:
            raise ValueError(f"no known action in {fields!r}")
        tasks = fields.get("tasks")
        if tasks is not None and not (
            isinstance(tasks, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in tasks)
        ):
            raise ValueError(f"tasks must be a list of worker numbers, not {tasks!r}")
        return cls(fields["action"], None if tasks is None else tuple(tasks), bool(fields.get("only_failed")))


def send(fd: int, command: Command) -> None:
    """Write one command; a line under PIPE_BUF is written whole, whoever else writes."""
    os.write(fd, command.encode())


def read_available(fd: int) -> bytes:
    """Everything a non-blocking pipe holds now."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
