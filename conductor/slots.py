"""The supervisor's bookkeeping: its settings, and the slots its workers live in."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from conductor import exitcodes
from conductor.errors import ConfigError
from conductor.workercontrol import HeartbeatFile


@dataclass(frozen=True)
class SupervisorSettings:
    workers: int
    heartbeat_timeout_s: float = 60
    drain_timeout_s: float = 30
    rss_limit_mb: int = 0  # 0: no limit
    restart_backoff_initial_s: float = 1
    restart_backoff_max_s: float = 300
    restart_max: int = 10  # for TASK_FAILED (and BOOT_ERROR once booted); crashes respawn forever
    name: str = "conductor"
    state_dir: Path | None = None
    healthy_after_s: float = 60  # a worker that ran this long starts its slot's backoff over
    # A worker that holds no partition this long while another holds several is replaced; longer
    # than a rebalance takes (a member that died is noticed after session.timeout.ms, 45 s). 0: never.
    idle_limit_s: float = 120

    def __post_init__(self) -> None:
        positive = {
            "workers": self.workers,
            "heartbeat_timeout_s": self.heartbeat_timeout_s,
            "drain_timeout_s": self.drain_timeout_s,
            "restart_backoff_max_s": self.restart_backoff_max_s,
        }
        not_negative = {
            "idle_limit_s": self.idle_limit_s,
            "rss_limit_mb": self.rss_limit_mb,
            "restart_max": self.restart_max,
            "restart_backoff_initial_s": self.restart_backoff_initial_s,
            "healthy_after_s": self.healthy_after_s,
        }
        problems = [f"{name} must be above 0, not {value}" for name, value in positive.items() if value <= 0]
        problems += [
            f"{name} must not be negative, not {value}" for name, value in not_negative.items() if value < 0
        ]
        if problems:
            raise ConfigError(problems, source="supervisor settings")

    def backoff(self, restart: int) -> float:
        """The wait before the `restart`-th restart in a row (1-based): initial * 2**(n-1), capped."""
        exponent = min(max(restart - 1, 0), 64)
        return min(self.restart_backoff_initial_s * 2**exponent, self.restart_backoff_max_s)


def describe_exit(code: int) -> str:
    """`code` as os.waitstatus_to_exitcode gives it: "exit code 4 (task failed)", "killed by SIGKILL"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    name = exitcodes.NAMES.get(code)
    return f"exit code {code} ({name})" if name else f"exit code {code}"


@dataclass
class Slot:
    """One of the N places in the group; its worker_id survives respawns (Kafka static membership)."""

    worker_id: int
    state: str = "backoff"  # starting | running | backoff | failed | stopped
    pid: int | None = None
    restarts: int = 0  # in a row; reset once a worker ran healthy_after_s
    respawns: int = 0  # every start after the first, for the metrics
    last_exit: str | None = None
    last_change: float = field(default_factory=time.time)
    next_start_at: float = 0.0  # monotonic, while in backoff
    started_at: float = 0.0  # monotonic
    spawned_at: float | None = None  # wall clock, for the uptime shown
    heartbeat: HeartbeatFile | None = None
    process: psutil.Process | None = None
    replacing: str | None = None  # asked to stop, and why ("for its memory"): respawn at once
    idle_since: float | None = None  # monotonic: since when it holds no partition while others hold several
    kill_at: float | None = None  # monotonic: SIGKILL if still alive then
    killed: bool = False

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def detach(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.close()
        self.pid, self.heartbeat, self.process = None, None, None
        self.replacing, self.idle_since, self.kill_at, self.killed = None, None, None, False

    def describe(self, now: float) -> dict[str, Any]:
        waiting = self.state == "backoff"
        return {
            "worker_id": self.worker_id,
            "pid": self.pid,
            "state": self.state,
            "restarts": self.restarts,
            "respawns": self.respawns,
            "last_exit": self.last_exit,
            "last_change": round(self.last_change, 3),
            "started_at": round(self.spawned_at, 3) if self.alive and self.spawned_at else None,
            "replacing": self.replacing,
            "next_start_in": round(max(self.next_start_at - now, 0.0), 1) if waiting else None,
        }
