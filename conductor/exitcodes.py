"""Every exit code conductor uses, in one place.

A worker's code tells its supervisor why it exited; the supervisor's is what `conductor start`
returns; `conductor validate` and a start that cannot read its config have their own.
"""

from __future__ import annotations

# -- a worker process, read by the supervisor -----------------------------------------------
OK = 0  # stopped on request, everything written was committed
QUIT = 1  # SIGQUIT: left at once, nothing drained (any other code but these: a crash)
BOOT_ERROR = 3  # could not start because the config is wrong: do not respawn before one booted
TASK_FAILED = 4  # THROW or RETRY exhausted: restart with growing backoff, keep the error visible
# Anything else (a crash, a signal) is an unexpected death: respawn with backoff.

NAMES = {OK: "ok", BOOT_ERROR: "boot error", TASK_FAILED: "task failed"}

# -- `conductor start` (the supervisor) ------------------------------------------------------
STOPPED = 0  # stopped on request (even when a worker had to be killed)
FAILED = 1  # every slot failed, or a second SIGINT/SIGTERM (or SIGQUIT) cut the stop short
CONFIG_ERROR = 2  # the config is wrong: it did not load, or a worker could not boot before any had

# -- `conductor validate` ----------------------------------------------------------------------
INVALID = 1  # the config has problems; each one is printed
