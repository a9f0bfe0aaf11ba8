"""A server that cannot be reached, from one worker's side: never a reason to give up.

The worker tries again with a growing pause, says so at WARNING when the outage starts and
once a minute while it lasts, and at INFO when the server answers again; the worker's state
names what it waits for. Only a bad config, or a failure the user's error policy calls fatal,
stops a task (and counts toward conductor.restart.max).
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("conductor.worker")

FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 10.0
REPEAT_S = 60.0


class Outage:
    def __init__(self, worker_id: int, what: str) -> None:
        self.worker_id = worker_id
        self.what = what  # "Elasticsearch at http://...", "Kafka at ..."
        self.started: float | None = None  # monotonic, while it lasts
        self.since: float | None = None  # wall clock, for the state file
        self.reason = ""
        self.tries = 0
        self.told = 0.0

    def __bool__(self) -> bool:
        return self.started is not None

    def failed(self, reason: str) -> float:
        """One more try failed; the pause before the next one."""
        now = time.monotonic()
        if self.started is None:
            self.started, self.since, self.tries, self.told = now, time.time(), 0, 0.0
        self.tries += 1
        self.reason = reason.removeprefix(f"{self.what} ")  # the sinks' messages name the store too
        if now - self.told >= REPEAT_S:
            self.told = now
            lasted = "" if self.tries == 1 else f" for {now - self.started:.0f}s"
            log.warning(
                "worker %d: %s does not answer%s (%s); waiting for it, nothing is skipped",
                self.worker_id,
                self.what,
                lasted,
                self.reason,
            )
        return min(FIRST_PAUSE_S * 2 ** (self.tries - 1), MAX_PAUSE_S)

    def ended(self) -> None:
        if self.started is not None:
            log.info(
                "worker %d: %s answers again after %.0fs",
                self.worker_id,
                self.what,
                time.monotonic() - self.started,
            )
        self.started = self.since = None
        self.tries = 0

    def state(self) -> dict[str, Any] | None:
        if self.started is None:
            return None
        return {
            "what": self.what,
            "since": round(self.since or 0, 3),
            "tries": self.tries,
            "reason": self.reason,
        }
