"""How a worker process tells the supervisor why it exited."""

from __future__ import annotations

OK = 0  # stopped on request, everything written was committed
BOOT_ERROR = 3  # could not start (bad config, a store unreachable at start): do not respawn
TASK_FAILED = 4  # THROW or RETRY exhausted: restart with growing backoff, keep the error visible
# Anything else (a crash, a signal) is an unexpected death: respawn with backoff.

NAMES = {OK: "ok", BOOT_ERROR: "boot error", TASK_FAILED: "task failed"}
