"""The process beside the workers that serves the REST API, the page and the metrics.

The supervisor forks it once its pipes exist and respawns it if it dies; it never runs in the
supervisor's own process, so no request can hold up the signal and reap loop, and the
supervisor stays free of threads across its forks. It reaches the supervisor only by writing
commands on a pipe (conductor/commands.py).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger("conductor.supervisor")

RESPAWN_DELAY_S = 1.0
STOP_GRACE_S = 3.0


class Server(Protocol):
    """What the sidecar runs; bound to its socket before the supervisor starts."""

    url: str

    def fds(self) -> list[int]:
        """File descriptors a worker must close (the listening socket)."""

    def serve(self, command_fd: int, supervisor_pid: int) -> int:
        """The sidecar's whole life; its exit code."""

    def worker_exited(self, pid: int) -> None:
        """Called by the supervisor for each worker that exited."""


class Sidecar:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.pid: int | None = None
        self.start_at = 0.0  # monotonic: when to (re)start it
        self.stopped = False

    def start_if_due(self, command_fd: int, close_in_child: Iterable[int], signals: Iterable[int]) -> bool:
        """Fork the server unless it runs (or waits to be started again); True if it was forked."""
        if self.pid is not None or self.stopped or time.monotonic() < self.start_at:
            return False
        supervisor_pid = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            log.error("could not fork the REST server: %s; trying again in %.0fs", exc, RESPAWN_DELAY_S)
            self.start_at = time.monotonic() + RESPAWN_DELAY_S
            return False
        if pid == 0:
            code = 1
            try:
                for signum in signals:
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                for fd in close_in_child:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                code = self.server.serve(command_fd, supervisor_pid)
            except BaseException:
                log.exception("the REST server crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.pid = pid
        log.debug("REST server pid %s serving %s", pid, self.server.url)
        return True

    def exited(self, pid: int, how: str) -> bool:
        """True if `pid` was the sidecar: it is started again unless stopping."""
        if pid != self.pid:
            return False
        self.pid = None
        if not self.stopped:
            log.warning("the REST server pid %s ended (%s); starting it again", pid, how)
            self.start_at = time.monotonic() + RESPAWN_DELAY_S
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace; reaps it."""
        self.stopped = True
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
