"""A sink's periodic work (index retention), run by one worker of the group on its own thread.

Which worker: the one that holds partition 0 of the first topic the group reads. A partition
has one holder at a time, on whichever host it is, so the group runs the work once however
many hosts and workers it has; when the partition moves, so does the work. It runs at once
when a worker takes it up, then every interval. The worker's loop only looks at the clock and
the thread: the records never wait for it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from conductor.errors import ConductorError
from sinks.base import Upkeep

log = logging.getLogger("conductor.worker")


class UpkeepRunner:
    def __init__(self, upkeep: Upkeep, worker_id: int) -> None:
        self.upkeep = upkeep
        self.worker_id = worker_id
        self.due = 0.0  # at once, the first time this worker holds the work
        self.thread: threading.Thread | None = None
        self.last: dict[str, Any] | None = None
        self.leading = False

    def tick(self, leading: bool) -> None:
        """Called from the worker's loop: start a run when this worker leads and one is due."""
        if leading != self.leading:
            self.leading = leading
            if leading:
                self.due = 0.0
        if not leading or (self.thread is not None and self.thread.is_alive()):
            return
        now = time.monotonic()
        if now < self.due:
            return
        self.due = now + self.upkeep.interval_s
        self.thread = threading.Thread(target=self.run, name=f"upkeep-{self.worker_id}", daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            self.last = self.upkeep.run()
        except ConductorError as error:
            log.warning("worker %d: %s failed: %s", self.worker_id, self.upkeep.name, error)
            self.last = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "error": str(error)}
        except Exception as error:  # a thread's exception would be lost: keep it in the state
            log.exception("worker %d: %s failed", self.worker_id, self.upkeep.name)
            self.last = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "error": repr(error)}

    def state(self) -> dict[str, Any]:
        """For the worker's state: what the last run did, or who runs it."""
        if not self.leading:
            return {"runs_here": False}
        running = self.thread is not None and self.thread.is_alive()
        return {"runs_here": True, "running": running, "last": self.last, "every_s": self.upkeep.interval_s}

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.upkeep.close()
