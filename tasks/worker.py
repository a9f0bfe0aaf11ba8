"""What one worker process runs: its task, in its place in the consumer group, until told to stop.

`SinkWorker` is what the supervisor forks: its `__init__` runs before the fork and only
stores; the clients are made in the child (kafka-python and the Cassandra driver run threads,
which do not survive a fork). A store or a Kafka that cannot be reached at start is waited
for; only a config the store cannot hold is a boot error.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping

from conductor import exitcodes
from conductor.config import ConnectorConfig
from conductor.errors import ConfigError, SinkUnavailable, TaskFailed
from conductor.routes import Route
from conductor.workercontrol import WorkerControl
from policies.deadletter import DeadLetterTopic
from sinks.base import Sink
from tasks.consumer import GroupMember, StopRequested, instance_id
from tasks.metrics import Rate, WorkerMetrics
from tasks.outage import Outage
from tasks.sink import SinkTask
from tasks.upkeep import UpkeepRunner

log = logging.getLogger("conductor.worker")

STATE_INTERVAL_S = 2.0
PROGRESS_INTERVAL_S = 60.0


class SinkWorker:
    """The worker of a sink connector: `__call__(worker_id, control)` is the child's whole life."""

    def __init__(
        self,
        config: ConnectorConfig,
        routes: Mapping[str, tuple[Route, ...]],
        sink: Sink,
        supervisor_pid: int,
    ) -> None:
        self.config = config
        self.routes = routes
        self.sink = sink
        self.supervisor_pid = supervisor_pid

    def __call__(self, worker_id: int, control: WorkerControl) -> int:
        return self.build(worker_id, control).run()

    def build(self, worker_id: int, control: WorkerControl) -> WorkerRun:
        """The worker's parts, made in the process that runs them."""
        config = self.config
        task: SinkTask | None = None
        member = GroupMember(
            config,
            control,
            instance_id(config.name, self.supervisor_pid, worker_id),
            on_revoked=lambda partitions: task.release(partitions) if task is not None else None,
        )
        dead_letter = DeadLetterTopic.of(config, worker_id)
        task = SinkTask(config, self.routes, self.sink, member, dead_letter)
        metrics = WorkerMetrics(control.state_dir / "metrics", config.name, worker_id)
        upkeep = self.sink.upkeep()
        return WorkerRun(control, member, task, metrics, UpkeepRunner(upkeep, worker_id) if upkeep else None)


class WorkerRun:
    """The loop of one worker: poll, flush when due, report state, until stopped."""

    def __init__(
        self,
        control: WorkerControl,
        member: GroupMember,
        task: SinkTask,
        metrics: WorkerMetrics | None = None,
        upkeep: UpkeepRunner | None = None,
    ) -> None:
        self.control = control
        self.upkeep = upkeep
        self.metrics = metrics
        self.rate = Rate()
        self.member = member
        self.task = task
        self.worker_id = control.worker_id
        self.state_due = 0.0
        self.started = time.monotonic()
        self.progress_due = self.started + PROGRESS_INTERVAL_S
        self.progress_written = 0
        self.paused = False
        member.while_waiting = self.report

    def run(self) -> int:
        try:
            self.boot()
        except StopRequested:
            self.close()
            return exitcodes.OK
        except Exception as exc:  # the config does not fit the store, or worse: do not respawn in a loop
            reason = (
                "; ".join(exc.problems) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            )
            log.error("worker %d could not start: %s", self.worker_id, reason)
            self.control.record_state(state="boot failed", last_error=reason, trace=traceback.format_exc())
            self.close()
            return exitcodes.BOOT_ERROR
        self.control.notify_booted()
        log.debug(
            "worker %d consuming as %s in group %s",
            self.worker_id,
            self.member.instance_id,
            self.member.config.group_id,
        )
        try:
            task, control = self.task, self.control
            while not control.stop_requested:
                control.heartbeat()
                if control.paused:
                    self.hold()
                    continue
                task.poll_once()
                if task.flush_due():
                    task.flush()
                self.report()
            task.flush()
            self.report(force=True, state="stopped")
            log.info(
                "worker %d stopped: %d records written in %.0fs",
                self.worker_id,
                task.counts["written"],
                time.monotonic() - self.started,
            )
            return exitcodes.OK
        except StopRequested:
            log.info("worker %d stopped while waiting; the batch it held stays uncommitted", self.worker_id)
            return exitcodes.OK
        except TaskFailed as failed:
            self.task.last_error = failed.reason
            self.control.record_failure(failed)
            self.report(force=True, state="failed")
            return exitcodes.TASK_FAILED
        finally:
            self.close()

    def hold(self) -> None:
        """The connector is paused: what was read is written and committed first; then the
        worker keeps its partitions and reads nothing (waits poll paused partitions, so it
        stays in its group) until it is resumed or stopped."""
        self.task.flush()
        self.paused = True
        self.report(force=True)
        self.member.sit_out_pause()
        self.paused = False
        self.report(force=True)

    def boot(self) -> None:
        """Kafka's answer to our TLS and SASL settings, the store, the dead-letter topic, then the
        group; each waited for while it cannot answer."""
        task = self.task
        self.member.reach_kafka()
        self.ready(task.sink.setup, task.sink.close, task.store)
        if task.dead_letter is not None:
            self.ready(task.dead_letter.setup, task.dead_letter.close, self.member.kafka)
        self.member.join()

    def ready(self, setup: Callable[[], None], undo: Callable[[], None], outage: Outage) -> None:
        while True:
            try:
                setup()
            except SinkUnavailable as exc:
                undo()
                self.member.pause(outage.failed(exc.reason))
                continue
            outage.ended()
            return

    def close(self) -> None:
        if self.upkeep is not None:
            self.upkeep.close()
        self.member.close(leave=self.control.leaving)
        if self.task.dead_letter is not None:
            self.task.dead_letter.close()
        self.task.sink.close()

    def report(self, force: bool = False, state: str = "running") -> None:
        """The worker's state file every STATE_INTERVAL_S, and the progress line every minute."""
        now = time.monotonic()
        if not force and now < self.state_due:
            return
        self.state_due = now + STATE_INTERVAL_S
        member, task = self.member, self.task
        partitions = member.partitions()
        counts = task.state()
        counts["records_lost"] = sum(member.losses.lost.values())
        counts["commits_refused"] = member.refused_commits
        if self.metrics is not None:
            self.metrics.update(counts, task.timings)
        if self.upkeep is not None:
            self.upkeep.tick(leading=state == "running" and member.holds_first_partition())
            counts[self.upkeep.upkeep.name] = self.upkeep.state()
        waiting = task.store.state() or task.registry.state() or member.kafka.state()
        if state == "running" and (waiting or self.paused):
            state = "paused" if self.paused else "waiting"
        self.control.record_state(
            state=state,
            partitions=partitions,
            group=member.membership(),
            instance_id=member.instance_id,
            lost={f"{topic}-{partition}": count for (topic, partition), count in member.losses.lost.items()},
            rejoins=member.rejoins,
            records_per_s=self.rate.per_second(now, task.counts["read"]),
            **counts,
            waiting_for=waiting,
        )
        if member.config.worker.progress and now >= self.progress_due:
            self.progress(now, partitions)

    def progress(self, now: float, partitions: list[dict]) -> None:
        """Stream-Reactor's connect.progress.enabled line, with the rate and the lag."""
        seconds = now - self.progress_due + PROGRESS_INTERVAL_S
        written = self.task.counts["written"] - self.progress_written
        lag = sum(p["lag"] or 0 for p in partitions)
        log.info(
            "worker %d: %d records written in the last %.0fs (%.0f/s); lag %d on %d partition(s)",
            self.worker_id,
            written,
            seconds,
            written / seconds,
            lag,
            len(partitions),
        )
        self.progress_written = self.task.counts["written"]
        self.progress_due = now + PROGRESS_INTERVAL_S
