"""The worker's side of the supervisor: heartbeat, boot notice, stop flag and state file.

The supervisor builds a WorkerControl before the fork (it only stores file descriptors and
paths); the child uses it from `run_child`, which never returns into the supervisor's code.
"""

from __future__ import annotations

import logging
import mmap
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from conductor import exitcodes
from conductor.errors import TaskFailed
from conductor.status import write_state

log = logging.getLogger("conductor.worker")

# The supervisor's "drain, commit and exit: you are being replaced" (memory recycle).
REPLACE_SIGNAL = signal.SIGUSR2


def _heartbeat_dir() -> str | None:
    """An in-memory file system when there is one, so a heartbeat never touches a disk."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class HeartbeatFile:
    """An unlinked temp file whose mtime the worker sets to time.monotonic() (gunicorn's WorkerTmp).

    Made by the supervisor before the fork, so both processes hold the same open file; the
    supervisor reads the mtime back to see how long ago the worker last beat.
    """

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="conductor-heartbeat-", dir=_heartbeat_dir())
        try:
            os.unlink(name)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self.beat()

    def fileno(self) -> int:
        return self._fd

    def beat(self) -> None:
        now = time.monotonic()
        os.utime(self._fd, (now, now))

    def last_beat(self) -> float:
        """The time.monotonic() of the last beat."""
        return os.fstat(self._fd).st_mtime

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class PauseFlag:
    """Whether the connector is paused: one byte of memory shared by the supervisor, which sets
    it, and every worker, which reads it once per poll loop. Made before the first fork, so a
    respawned worker starts paused too."""

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, 1)

    def set(self, paused: bool) -> None:
        self._memory[0] = 1 if paused else 0

    def __bool__(self) -> bool:
        return self._memory[0] == 1


class WorkerControl:
    """What a worker process uses to talk to its supervisor."""

    def __init__(
        self,
        worker_id: int,
        heartbeat: HeartbeatFile,
        boot_fd: int,
        state_dir: Path,
        pause: PauseFlag | None = None,
    ) -> None:
        self.worker_id = worker_id
        self._pause = pause
        self._heartbeat = heartbeat
        self._boot_fd = boot_fd
        self._state_path = Path(state_dir) / f"worker-{worker_id}.json"
        self._supervisor_pid = os.getpid()
        self._stop_requested = False
        self._replaced = False
        self._booted = False
        self._exited = False
        self._fields: dict[str, Any] = {}

    @property
    def stop_requested(self) -> bool:
        """True once SIGTERM or SIGINT arrived, or the supervisor is gone: drain, commit, return OK."""
        return self._stop_requested

    @property
    def leaving(self) -> bool:
        """True unless the stop came with REPLACE_SIGNAL: a worker about to be respawned in its
        slot keeps its static group membership, so its partitions wait for the new process
        instead of moving twice. Any other stop leaves the group at once."""
        return not self._replaced

    @property
    def state_dir(self) -> Path:
        """The connector's state folder: the state files, and the metrics in metrics/."""
        return self._state_path.parent

    @property
    def paused(self) -> bool:
        """The connector is paused: write what was read, commit it, then read nothing more."""
        return bool(self._pause)

    @property
    def booted(self) -> bool:
        return self._booted

    def heartbeat(self) -> None:
        """Tell the supervisor this worker is alive; call it once per poll loop."""
        self._heartbeat.beat()
        if not self._stop_requested and os.getppid() != self._supervisor_pid:
            log.warning(
                "worker %s: supervisor pid %s is gone; stopping", self.worker_id, self._supervisor_pid
            )
            self._stop_requested = True

    def notify_booted(self) -> None:
        """Setup succeeded (clients created, consumer subscribed); a BOOT_ERROR exit no longer stops the group."""
        if self._booted:
            return
        self._booted = True
        try:
            os.write(self._boot_fd, f"{self.worker_id} {os.getpid()}\n".encode())
        except OSError as exc:
            log.warning("worker %s could not tell the supervisor it booted: %s", self.worker_id, exc)
        self.record_state()

    def record_state(self, **fields: Any) -> None:
        """Merge `fields` (partitions, last_error, records_written, ...) into worker-<id>.json and rewrite it."""
        self._fields.update(fields)
        state = {
            "state": self._derived_state(),
            **self._fields,
            "pid": os.getpid(),
            "worker_id": self.worker_id,
            "updated_at": time.time(),
        }
        try:
            write_state(self._state_path, state)
        except OSError as exc:
            log.warning("worker %s could not write %s: %s", self.worker_id, self._state_path, exc)

    def record_failure(self, failed: TaskFailed) -> None:
        """The task failed: its reason and trace logged, the trace kept for /status and the page."""
        trace = failed.trace()
        log.error("worker %d task failed: %s\n%s", self.worker_id, failed.reason, trace)
        self.record_state(trace=trace)

    def _derived_state(self) -> str:
        """Used unless the worker recorded a state of its own ("boot failed", ...)."""
        if self._exited:
            return "exited"
        if self._stop_requested:
            return "stopping"
        return "running" if self._booted else "starting"

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self._stop_requested = True

    def _on_replace_signal(self, signum: int, frame: object) -> None:
        self._replaced = not self._stop_requested  # a stop for good already asked wins
        self._stop_requested = True

    def _install_signal_handlers(self, supervisor_signals: Iterable[int]) -> None:
        """Undo the supervisor's handlers; SIGTERM/SIGINT set stop_requested, REPLACE_SIGNAL too
        (but the worker keeps its group membership), SIGQUIT leaves at once."""
        for signum in supervisor_signals:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(REPLACE_SIGNAL, self._on_replace_signal)
        signal.signal(signal.SIGQUIT, lambda signum, frame: os._exit(exitcodes.QUIT))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _exit_code(result: object) -> int:
    if isinstance(result, bool) or not isinstance(result, int):
        log.error("worker_main returned %r, not an exit code; exiting with 1", result)
        return 1
    return result


def run_child(
    worker_main: Callable[[int, WorkerControl], int],
    control: WorkerControl,
    close_fds: Iterable[int],
    supervisor_signals: Iterable[int],
) -> NoReturn:
    """The child's whole life after fork: run worker_main, then os._exit with its code."""
    code = 1
    try:
        supervisor_signals = tuple(supervisor_signals)
        control._install_signal_handlers(supervisor_signals)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, supervisor_signals)
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        control.record_state()
        try:
            code = _exit_code(worker_main(control.worker_id, control))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        control._exited = True
        control.record_state(exit_code=code)
    except BaseException as exc:
        log.exception("worker %s crashed", control.worker_id)
        code = 1
        control._exited = True
        control.record_state(exit_code=code, last_error=repr(exc), trace=traceback.format_exc())
    finally:
        try:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
