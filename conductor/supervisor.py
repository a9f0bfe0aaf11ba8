"""The supervisor: forks N workers, watches them, respawns them, stops them (model: gunicorn's arbiter).

Signal handlers only enqueue; each pass of the main loop dispatches the queued signals, then
reaps dead workers, kills hung ones, recycles fat ones, replaces idle ones and tops the group back
up to N. Each
of those steps is safe to run again on every pass. Exit codes of the workers are a protocol,
see conductor/exitcodes.py, which also holds the supervisor's own.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil

from conductor import exitcodes
from conductor.commands import RUNNING, STOPPED, Command, read_available
from conductor.sdnotify import Notifier
from conductor.sidecar import Server, Sidecar
from conductor.slots import Slot, SupervisorSettings, describe_exit
from conductor.status import read_state, state_dir_for, write_state
from conductor.steering import Steering
from conductor.workercontrol import REPLACE_SIGNAL, HeartbeatFile, PauseFlag, WorkerControl, run_child

log = logging.getLogger("conductor.supervisor")

WorkerMain = Callable[[int, WorkerControl], int]


LOOP_INTERVAL_S = 0.5
STOP_MARGIN_S = 2.0  # on top of drain_timeout_s: the worker's own drain runs against the same budget
ABORT_GRACE_S = 5.0  # SIGABRT -> SIGKILL for a hung worker (never more than heartbeat_timeout_s)
WORKER_FILE = re.compile(r"worker-\d+\.json")
IDLE_CHECK_INTERVAL_S = 5.0


class Supervisor(Steering):
    def __init__(
        self, settings: SupervisorSettings, worker_main: WorkerMain, server: Server | None = None
    ) -> None:
        self.settings = settings
        self.worker_main = worker_main
        self.state_dir = settings.state_dir or state_dir_for(settings.name)
        self._slots = [Slot(worker_id) for worker_id in range(settings.workers)]
        self._signals: collections.deque[int] = collections.deque()
        self._handlers: dict[int, Callable[[int], None]] = {
            signal.SIGTERM: self._handle_stop,
            signal.SIGINT: self._handle_stop,
            signal.SIGQUIT: self._handle_quit,
            signal.SIGCHLD: self._handle_child,
        }
        self._old_handlers: dict[int, Any] = {}
        self._wakeup_r = self._wakeup_w = self._boot_r = self._boot_w = -1
        self._command_r = self._command_w = -1
        self._command_buffer = b""
        self._commands: dict[str, Callable[[Command], None]] = {
            "pause": self._command_pause,
            "resume": self._command_resume,
            "stop": self._command_stop,
            "restart": self._command_restart,
        }
        self._target = RUNNING  # the connector's target state: RUNNING, PAUSED or STOPPED
        self._pause = PauseFlag()
        self._sidecar = Sidecar(server) if server is not None else None
        self._boot_buffer = b""
        self._group_booted = False
        self._stop_code: int | None = None  # set once stopping: the exit code run() returns
        self._stop_deadline = 0.0
        self._started_at = time.time()
        self._idle_check_due = 0.0
        self._dirty = True
        self._notifier = Notifier()  # systemd's, when $NOTIFY_SOCKET is set
        self._booted_slots: set[int] = set()  # every slot whose worker has booted once: READY=1
        self._commits: dict[int, int] = {}  # worker pid -> its commits, as its state file last said
        self._last_commit_at: float | None = None  # monotonic, when a count above last grew

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self._open()
            log.info(
                "supervisor pid %s starting %s worker(s) for %s; state in %s",
                os.getpid(),
                len(self._slots),
                self.settings.name,
                self.state_dir,
            )
            while True:
                self._dispatch_signals()
                self._dispatch_commands()
                self._read_boot_notices()
                self._reap_workers()
                self._enforce_deadlines()
                self._murder_hung_workers()
                self._check_memory()
                self._replace_idle_workers()
                self._manage_workers()
                self._manage_sidecar()
                self._write_state()
                self._notify_systemd()
                if self._stop_code is not None and not self._live_slots():
                    break
                self._sleep()
            log.info("supervisor pid %s exiting with code %s", os.getpid(), self._stop_code)
            return self._stop_code
        finally:
            self._close()

    def _dispatch_signals(self) -> None:
        while self._signals:
            signum = self._signals.popleft()
            self._handlers[signum](signum)

    def _sleep(self) -> None:
        now = time.monotonic()
        deadlines = [slot.next_start_at for slot in self._slots if slot.state == "backoff"]
        deadlines += [slot.kill_at for slot in self._slots if slot.kill_at is not None and not slot.killed]
        if self._stop_code is not None:
            deadlines.append(self._stop_deadline)
        timeout = min([LOOP_INTERVAL_S] + [deadline - now for deadline in deadlines])
        readable = [self._wakeup_r, self._boot_r, self._command_r]
        ready, _, _ = select.select(readable, [], [], max(timeout, 0.01))
        if self._wakeup_r in ready:
            read_available(self._wakeup_r)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)
        try:
            os.write(self._wakeup_w, b".")
        except OSError:
            pass

    # -- signal handlers (run from the loop, never from the signal) ----------------------------

    def _handle_stop(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stop_code is None:
            self._begin_stop(exitcodes.STOPPED, f"got {name}")
        else:
            self._kill_now(f"got {name} again")

    def _handle_quit(self, signum: int) -> None:
        self._kill_now("got SIGQUIT")

    def _handle_child(self, signum: int) -> None:
        """Nothing to do: the wakeup alone makes this pass reap."""

    # -- the steps of a pass ------------------------------------------------------------------

    def _reap_workers(self) -> None:
        exited = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            if self._sidecar is not None and self._sidecar.exited(pid, describe_exit(code)):
                continue
            slot = next((slot for slot in self._slots if slot.pid == pid), None)
            if slot is not None:
                exited.append((slot, code))
                if self._sidecar is not None:
                    self._sidecar.server.worker_exited(pid)
        if exited:
            self._read_boot_notices()  # a worker that booted and then died wrote its notice first
        for slot, code in exited:
            self._worker_exited(slot, code)

    def _worker_exited(self, slot: Slot, code: int) -> None:
        settings = self.settings
        pid, replacing = slot.pid, slot.replacing
        ran = time.monotonic() - slot.started_at
        slot.detach()
        slot.last_exit = describe_exit(code)
        if self._stop_code is not None:
            log.log(
                logging.DEBUG if code == exitcodes.OK else logging.WARNING,
                "worker %s pid %s stopped: %s",
                slot.worker_id,
                pid,
                slot.last_exit,
            )
            self._set(slot, "stopped")
            return
        if self._target == STOPPED and not replacing:
            log.info("worker %s pid %s stopped (connector stopped): %s", slot.worker_id, pid, slot.last_exit)
            self._set(slot, "stopped")
            return
        if replacing:
            log.info(
                "worker %s pid %s stopped %s: %s; respawning it",
                slot.worker_id,
                pid,
                replacing,
                slot.last_exit,
            )
            self._schedule(slot, 0.0)
            return
        if code == exitcodes.BOOT_ERROR and not self._group_booted:
            log.error(
                "worker %s pid %s could not boot (%s) and no worker has booted yet: the configuration "
                "is wrong; read worker %s's error above. Not respawning; stopping the group.",
                slot.worker_id,
                pid,
                slot.last_exit,
                slot.worker_id,
            )
            self._set(slot, "failed")
            self._begin_stop(exitcodes.CONFIG_ERROR, f"worker {slot.worker_id} could not boot")
            return
        if ran >= settings.healthy_after_s:
            slot.restarts = 0
        limited = code in (exitcodes.TASK_FAILED, exitcodes.BOOT_ERROR)
        unasked = " without being asked to stop" if code == exitcodes.OK else ""
        if limited and slot.restarts >= settings.restart_max:
            log.error(
                "worker %s pid %s ended: %s; it failed %s time(s) in a row, the limit (restart_max %s): "
                "not restarting it; its error is above and in %s",
                slot.worker_id,
                pid,
                slot.last_exit,
                slot.restarts + 1,
                settings.restart_max,
                self.state_dir / f"worker-{slot.worker_id}.json",
            )
            self._set(slot, "failed")
            if all(other.state == "failed" for other in self._slots):
                self._begin_stop(exitcodes.FAILED, "every worker has failed")
            return
        slot.restarts += 1
        delay = settings.backoff(slot.restarts)
        of = f" of {settings.restart_max}" if limited else ""
        log.warning(
            "worker %s pid %s ended: %s%s; restarting in %.1fs (restart %s%s)",
            slot.worker_id,
            pid,
            slot.last_exit,
            unasked,
            delay,
            slot.restarts,
            of,
        )
        self._schedule(slot, delay)

    def _read_boot_notices(self) -> None:
        self._boot_buffer += read_available(self._boot_r)
        *lines, self._boot_buffer = self._boot_buffer.split(b"\n")
        for line in lines:
            try:
                worker_id, pid = (int(part) for part in line.split())
            except ValueError:
                log.warning("ignoring a malformed boot notice %r", line)
                continue
            self._group_booted = True
            slot = self._slots[worker_id] if 0 <= worker_id < len(self._slots) else None
            if slot is not None and slot.pid == pid and slot.state == "starting":
                log.info("worker %s pid %s booted", worker_id, pid)
                self._set(slot, "running")
                self._booted_slots.add(worker_id)

    def _enforce_deadlines(self) -> None:
        """SIGKILL what did not stop in time: after the group's drain, a memory recycle or a SIGABRT."""
        now = time.monotonic()
        for slot in self._live_slots():
            if slot.killed:
                continue
            if self._stop_code is not None and now >= self._stop_deadline:
                log.warning(
                    "worker %s pid %s did not stop within %.1fs; killing it",
                    slot.worker_id,
                    slot.pid,
                    self.settings.drain_timeout_s + STOP_MARGIN_S,
                )
            elif slot.kill_at is not None and now >= slot.kill_at:
                log.warning("worker %s pid %s is still alive; killing it", slot.worker_id, slot.pid)
            else:
                continue
            self._kill(slot, signal.SIGKILL)
            slot.killed = True

    def _murder_hung_workers(self) -> None:
        if self._stop_code is not None:
            return  # a draining worker may be busy writing; the stop deadline bounds it
        timeout = self.settings.heartbeat_timeout_s
        now = time.monotonic()
        for slot in self._live_slots():
            if slot.kill_at is not None:
                continue
            silent = now - slot.heartbeat.last_beat()
            if silent > timeout:
                log.error(
                    "worker %s pid %s sent no heartbeat for %.1fs (timeout %.1fs); aborting it with SIGABRT",
                    slot.worker_id,
                    slot.pid,
                    silent,
                    timeout,
                )
                self._kill(slot, signal.SIGABRT)
                slot.kill_at = now + min(ABORT_GRACE_S, timeout)

    def _check_memory(self) -> None:
        limit_mb = self.settings.rss_limit_mb
        if not limit_mb or self._stop_code is not None:
            return
        for slot in self._live_slots():
            if slot.kill_at is not None:
                continue
            try:
                slot.process = slot.process or psutil.Process(slot.pid)
                rss = slot.process.memory_info().rss
            except psutil.Error:
                continue
            if rss > limit_mb * 1024 * 1024:
                log.warning(
                    "worker %s pid %s uses %.0f MB RSS, above the limit of %s MB; asking it to stop "
                    "(it drains and commits) and respawning it",
                    slot.worker_id,
                    slot.pid,
                    rss / (1024 * 1024),
                    limit_mb,
                )
                self._replace(slot, REPLACE_SIGNAL, "for its memory")

    def _replace_idle_workers(self) -> None:
        """A worker that holds no partition for longer than a rebalance takes, while another holds
        several, is out of its group's assignment (kafka-python can leave a member so, and the
        worker cannot tell that from a fair share of none). It is replaced: it drains, leaves the
        group, and its successor joins afresh. The partitions come from the workers' state files."""
        limit = self.settings.idle_limit_s
        now = time.monotonic()
        if not limit or self._stop_code is not None or now < self._idle_check_due:
            return
        self._idle_check_due = now + IDLE_CHECK_INTERVAL_S
        held: dict[int, int] = {}
        for slot in self._live_slots():
            state = read_state(self.state_dir / f"worker-{slot.worker_id}.json") or {}
            if slot.kill_at is None and state.get("pid") == slot.pid and state.get("state") == "running":
                held[slot.worker_id] = len(state.get("partitions") or ())
        most = max(held.values(), default=0)
        for slot in self._live_slots():
            if held.get(slot.worker_id) != 0 or most < 2:
                slot.idle_since = None
                continue
            slot.idle_since = slot.idle_since or now
            if now - slot.idle_since > limit:
                log.warning(
                    "worker %s pid %s has held no partition for %.0fs while another worker holds %s; "
                    "replacing it so that it joins the group afresh",
                    slot.worker_id,
                    slot.pid,
                    now - slot.idle_since,
                    most,
                )
                self._replace(slot, signal.SIGTERM, "to join its group afresh")

    def _replace(self, slot: Slot, signum: int, why: str) -> None:
        """Ask the worker to drain and stop, respawn it at once, SIGKILL it if it lingers."""
        self._ask_to_stop(slot, signum)
        slot.replacing = why

    def _ask_to_stop(self, slot: Slot, signum: int) -> None:
        """`signum` (it drains and stops), then SIGKILL if it is still alive after the drain timeout."""
        self._kill(slot, signum)
        slot.kill_at = time.monotonic() + self.settings.drain_timeout_s + STOP_MARGIN_S

    def _manage_workers(self) -> None:
        if self._stop_code is not None:
            return
        now = time.monotonic()
        for slot in self._slots:
            if slot.state == "backoff" and slot.next_start_at <= now:
                self._spawn(slot)

    def _manage_sidecar(self) -> None:
        if self._sidecar is not None and self._stop_code is None:
            fds = [self._wakeup_r, self._wakeup_w, self._boot_r, self._boot_w, self._command_r]
            fds += [slot.heartbeat.fileno() for slot in self._slots if slot.heartbeat is not None]
            if self._sidecar.start_if_due(self._command_w, fds, self._handlers):
                self._dirty = True

    def _spawn(self, slot: Slot) -> None:
        heartbeat = HeartbeatFile()
        control = WorkerControl(slot.worker_id, heartbeat, self._boot_w, self.state_dir, self._pause)
        close_in_child = [self._wakeup_r, self._wakeup_w, self._boot_r, self._command_r, self._command_w]
        close_in_child += self._sidecar.server.fds() if self._sidecar is not None else []
        close_in_child += [other.heartbeat.fileno() for other in self._slots if other.heartbeat is not None]
        sys.stdout.flush()
        sys.stderr.flush()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, self._handlers)  # the child installs its own first
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            heartbeat.close()
            slot.restarts += 1
            delay = self.settings.backoff(slot.restarts)
            log.error("could not fork worker %s: %s; trying again in %.1fs", slot.worker_id, exc, delay)
            self._schedule(slot, delay)
            return
        if pid == 0:
            try:
                run_child(self.worker_main, control, close_in_child, self._handlers)
            finally:
                os._exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        slot.pid, slot.heartbeat, slot.started_at = pid, heartbeat, time.monotonic()
        slot.respawns += 1 if slot.spawned_at is not None else 0
        slot.spawned_at = time.time()
        self._set(slot, "starting")
        log.debug("spawned worker %s pid %s", slot.worker_id, pid)

    def _notify_systemd(self) -> None:
        """systemd's Type=notify (conductor/sdnotify.py): READY=1 once every slot's worker has booted
        (never after a stop began, so never for a config error), STOPPING=1 once the stop began,
        STATUS= every few seconds, WATCHDOG=1 from this loop: a loop that hangs stops the pings."""
        notifier = self._notifier
        if not notifier.enabled:
            return
        now = time.monotonic()
        notifier.watchdog(now)
        if self._stop_code is not None and not notifier.stopping_sent:
            notifier.stopping(self._status_line(now))
        elif (
            self._stop_code is None
            and not notifier.ready_sent
            and len(self._booted_slots) == len(self._slots)
        ):
            notifier.ready(self._status_line(now))
        elif notifier.status_due(now):
            notifier.status(self._status_line(now))

    def _status_line(self, now: float) -> str:
        """One line for `systemctl status`: "2/2 workers running, 12,345 records written, last commit
        3s ago". The counts are the workers' state files' (a respawned worker starts at 0); a commit
        is seen when a worker's count grew, so "ago" trails the commit by a report or two."""
        written, commits, waiting = 0, {}, set()
        for slot in self._slots:
            state = read_state(self.state_dir / f"worker-{slot.worker_id}.json") or {}
            written += int(state.get("written", state.get("results")) or 0)
            pid, count = state.get("pid"), int(state.get("commits") or 0)
            if count > self._commits.get(pid, 0):
                self._last_commit_at = now
            commits[pid] = count
            if slot.alive and isinstance(state.get("waiting_for"), dict):
                waiting.add(str(state["waiting_for"].get("what")))
        self._commits = commits
        workers = len(self._slots)
        states = collections.Counter(slot.state for slot in self._slots)
        if self._stop_code is not None:
            why = {exitcodes.FAILED: " on a failure", exitcodes.CONFIG_ERROR: " on a config error"}
            draining = len(self._live_slots())
            head = f"stopping{why.get(self._stop_code, '')}: {draining}/{workers} workers draining"
        else:
            head = f"{states['running']}/{workers} workers running"
            others = {"starting": "starting", "backoff": "restarting", "failed": "failed"}
            head += "".join(f", {states[state]} {said}" for state, said in others.items() if states[state])
            head += f", connector {self._target.lower()}" if self._target != RUNNING else ""
        last = self._last_commit_at
        parts = [
            head,
            f"{written:,} records written",
            "no commit yet" if last is None else f"last commit {now - last:.0f}s ago",
        ]
        if waiting:
            parts.append("waiting for " + ", ".join(sorted(waiting)))
        return ", ".join(parts)

    # -- stopping -------------------------------------------------------------------------------

    def _begin_stop(self, code: int, reason: str) -> None:
        if self._stop_code is not None:
            return
        self._stop_code = code
        self._stop_deadline = time.monotonic() + self.settings.drain_timeout_s + STOP_MARGIN_S
        live = self._live_slots()
        log.info(
            "%s: stopping %s worker(s), waiting up to %.1fs for them to drain",
            reason,
            len(live),
            self.settings.drain_timeout_s + STOP_MARGIN_S,
        )
        for slot in live:
            self._kill(slot, signal.SIGTERM)
        self._stop_waiting_slots()

    def _kill_now(self, reason: str) -> None:
        if not self._stop_code:
            self._stop_code = exitcodes.FAILED
        self._stop_deadline = time.monotonic()
        live = self._live_slots()
        log.warning("%s: killing %s worker(s) now", reason, len(live))
        for slot in live:
            self._kill(slot, signal.SIGKILL)
            slot.killed = True
        self._stop_waiting_slots()

    def _stop_waiting_slots(self) -> None:
        for slot in self._slots:
            if slot.state == "backoff":
                self._set(slot, "stopped")

    # -- helpers --------------------------------------------------------------------------------

    def _live_slots(self) -> list[Slot]:
        return [slot for slot in self._slots if slot.alive]

    def _kill(self, slot: Slot, signum: int) -> None:
        try:
            os.kill(slot.pid, signum)
        except ProcessLookupError:
            pass  # already dead; the next reap collects it

    def _set(self, slot: Slot, state: str) -> None:
        slot.state, slot.last_change = state, time.time()
        self._dirty = True

    def _schedule(self, slot: Slot, delay: float) -> None:
        slot.next_start_at = time.monotonic() + delay
        self._set(slot, "backoff")

    def _write_state(self, exit_code: int | None = None) -> None:
        if not self._dirty:
            return
        self._dirty = False
        now = time.monotonic()
        state = {
            "name": self.settings.name,
            "target_state": self._target,
            "url": self._sidecar.server.url if self._sidecar is not None else None,
            "rest_pid": self._sidecar.pid if self._sidecar is not None else None,
            "pid": os.getpid(),
            "started_at": round(self._started_at, 3),
            "stopping": self._stop_code is not None,
            "exit_code": exit_code,
            "workers": [slot.describe(now) for slot in self._slots],
        }
        try:
            write_state(self.state_dir / "supervisor.json", state)
        except OSError as exc:
            log.warning("could not write %s: %s", self.state_dir / "supervisor.json", exc)

    def _open(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.state_dir.iterdir():
            if WORKER_FILE.fullmatch(stale.name):
                stale.unlink(missing_ok=True)
        self._wakeup_r, self._wakeup_w = os.pipe()
        self._boot_r, self._boot_w = os.pipe()
        self._command_r, self._command_w = os.pipe()
        for fd in (self._wakeup_r, self._wakeup_w, self._boot_r, self._command_r):
            os.set_blocking(fd, False)
        for signum in self._handlers:
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _close(self) -> None:
        if self._sidecar is not None:
            self._sidecar.stop()
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        for slot in self._live_slots():  # only after an exception: leave no orphans
            self._kill(slot, signal.SIGKILL)
            try:
                os.waitpid(slot.pid, 0)
            except ChildProcessError:
                pass
            slot.detach()
            self._set(slot, "stopped")
        self._dirty = True
        self._write_state(exit_code=self._stop_code)
        for fd in (
            self._wakeup_r,
            self._wakeup_w,
            self._boot_r,
            self._boot_w,
            self._command_r,
            self._command_w,
        ):
            if fd >= 0:
                os.close(fd)
