"""What the supervisor does with the commands its REST server sends: pause, resume, stop and
restart, the way Kafka Connect does them to its tasks.

A mixin of the Supervisor, kept apart so the supervisor's module stays about its loop. These
run from the loop, like the signal handlers, and use its state (_slots, _target, _pause) and its
slot steps (_replace, _ask_to_stop, _schedule, _set).
"""

from __future__ import annotations

import logging
import signal

from conductor.commands import PAUSED, RUNNING, STOPPED, Command, read_available

log = logging.getLogger("conductor.supervisor")


class Steering:
    def _dispatch_commands(self) -> None:
        if self._command_r < 0:
            return
        self._command_buffer += read_available(self._command_r)
        *lines, self._command_buffer = self._command_buffer.split(b"\n")
        for line in lines:
            try:
                command = Command.decode(line)
            except ValueError as error:
                log.warning("ignoring a malformed command %r: %s", line[:200], error)
                continue
            if self._stop_code is None:
                self._commands[command.action](command)
                self._dirty = True

    def _command_pause(self, command: Command) -> None:
        if self._target == RUNNING:
            log.info("pausing the connector: the workers write what they read, commit it, then read nothing")
            self._target = PAUSED
            self._pause.set(True)

    def _command_resume(self, command: Command) -> None:
        if self._target == STOPPED:
            log.info("resuming the stopped connector: starting its workers")
            for slot in self._slots:
                if slot.state == "stopped":
                    slot.restarts = 0
                    self._schedule(slot, 0.0)
                elif slot.alive:  # still draining from the stop: started again once it is gone
                    slot.replacing = "to resume"
        elif self._target == PAUSED:
            log.info("resuming the connector")
        self._target = RUNNING
        self._pause.set(False)

    def _command_stop(self, command: Command) -> None:
        if self._target == STOPPED:
            return
        log.info("stopping the connector: its workers drain, commit and leave the group; this process stays")
        self._target = STOPPED
        self._pause.set(False)
        for slot in self._slots:
            if slot.alive:
                slot.replacing = None
                self._ask_to_stop(slot, signal.SIGTERM)
            else:
                self._set(slot, "stopped")

    def _command_restart(self, command: Command) -> None:
        """Kafka Connect's restart of tasks: a running worker drains and is replaced at once; a
        failed, waiting or stopped one starts now with its restart count reset."""
        chosen = range(len(self._slots)) if command.tasks is None else command.tasks
        for worker_id in chosen:
            if not 0 <= worker_id < len(self._slots):
                continue
            slot = self._slots[worker_id]
            if command.only_failed and slot.state != "failed":
                continue
            slot.restarts = 0
            if slot.alive:
                if slot.kill_at is None:
                    log.info("restarting worker %s pid %s on request", slot.worker_id, slot.pid)
                    self._replace(slot, signal.SIGTERM, "on request")
            elif self._target != STOPPED:
                log.info("starting worker %s on request", slot.worker_id)
                self._schedule(slot, 0.0)
