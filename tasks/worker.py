"""What one worker process runs: poll -> decode -> route -> batch -> write -> commit.

Offsets are committed synchronously, and only for what was written (or forgiven by the error
policy the user chose). A failed task commits everything before its first failed record.
"""

from __future__ import annotations

import logging
import re
import socket
import time
import traceback
from typing import Any

from conductor import exitcodes
from conductor.errors import RecordError, SinkUnavailable, TaskFailed
from conductor.routes import Route
from policies import make_policy
from policies.base import describe
from policies.deadletter import DeadLetterTopic
from sinks.base import Failure, Sink
from tasks.batch import PendingBatch, TopicPartitionKey, commit_offsets_before
from tasks.rebalance import FlushOnRevoke
from tasks.records import decode, undecodable

log = logging.getLogger("conductor.worker")

STATE_INTERVAL_S = 2.0
UNAVAILABLE_BACKOFF_MAX_S = 30.0


class StopRequested(Exception):
    """The supervisor asked the worker to stop while it was waiting to retry."""


class SinkWorker:
    """Runs in the child after the fork; `__init__` (before the fork) only stores."""

    def __init__(
        self, config: Any, routes: dict[str, tuple[Route, ...]], sink: Sink, supervisor_pid: int
    ) -> None:
        self.config = config
        self.routes = routes
        self.sink = sink
        self.supervisor_pid = supervisor_pid

    def __call__(self, worker_id: int, control: Any) -> int:
        return _WorkerRun(self, worker_id, control).run()


class _WorkerRun:
    def __init__(self, worker: SinkWorker, worker_id: int, control: Any) -> None:
        config = worker.config
        self.config = config
        self.routes = worker.routes
        self.sink = worker.sink
        self.worker_id = worker_id
        self.control = control
        self.policy = make_policy(config.error_policy, config.max_retries, config.retry_interval_ms / 1000)
        self.batch_records = config.sink_batch_size
        self.batch_bytes = config.worker.batch_max_bytes
        self.linger_s = config.worker.linger_ms / 1000
        self.tolerate_decode_errors = config.errors_tolerance == "all"
        self.instance_id = _instance_id(config.name, worker.supervisor_pid, worker_id)
        self.dead_letter: DeadLetterTopic | None = None
        if config.dlq_topic:
            self.dead_letter = DeadLetterTopic(
                config.dlq_topic,
                config.kafka.to_kafka_python_kwargs(producer=True),
                config.name,
                worker_id,
                config.dlq_context_headers,
            )
        self.consumer: Any = None
        self.pending = PendingBatch()
        self.committed: dict[TopicPartitionKey, int] = {}  # next offset to read, as committed here
        self.next_offsets: dict[TopicPartitionKey, int] = {}  # next offset to read, as polled here
        self.in_rebalance = False
        self.in_flight: PendingBatch | None = None  # the batch being written, retried or committed
        self.listener: FlushOnRevoke | None = None
        self.counts = {"written": 0, "skipped": 0, "dead_lettered": 0, "batches": 0}
        self.last_error: str | None = None
        self.state_due = 0.0

    # -- lifecycle -----------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.setup()
        except Exception as exc:
            log.error("worker %d could not start: %s", self.worker_id, exc)
            self.control.record_state(state="boot failed", last_error=str(exc))
            self.close()
            return exitcodes.BOOT_ERROR
        self.control.notify_booted()
        log.info(
            "worker %d consuming as %s in group %s", self.worker_id, self.instance_id, self.config.group_id
        )
        try:
            while not self.control.stop_requested:
                self.control.heartbeat()
                self.poll_once()
                if self.pending and self.flush_due():
                    self.flush()
                self.report_state()
            self.flush()
            self.report_state(force=True, state="stopped")
            return exitcodes.OK
        except StopRequested:
            log.info("worker %d stopped while waiting to retry; the batch stays uncommitted", self.worker_id)
            return exitcodes.OK
        except TaskFailed as failed:
            self.last_error = failed.reason
            log.error(
                "worker %d task failed: %s\n%s",
                self.worker_id,
                failed.reason,
                "".join(traceback.format_exception(failed.cause or failed)),
            )
            self.report_state(force=True, state="failed")
            return exitcodes.TASK_FAILED
        finally:
            self.close()

    def setup(self) -> None:
        from kafka import KafkaConsumer
        from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

        self.sink.setup()
        if self.dead_letter:
            self.dead_letter.setup()
        consumer_kwargs = dict(self.config.kafka.to_kafka_python_kwargs())
        consumer_kwargs.update(
            group_id=self.config.group_id,
            enable_auto_commit=False,
            max_poll_records=self.batch_records,
            partition_assignment_strategy=(CooperativeStickyAssignor,),
        )
        # Kafka assigns partitions on the next heartbeat after the group forms: 1 s, not 3 s.
        consumer_kwargs.setdefault("heartbeat_interval_ms", 1000)
        if self.config.worker.static_membership:
            consumer_kwargs["group_instance_id"] = self.instance_id
        self.consumer = KafkaConsumer(**consumer_kwargs)
        self.listener = FlushOnRevoke(self.flush_for_rebalance, lambda: self.consumer._net)
        if self.config.topics_regex:
            self.consumer.subscribe(pattern=self.config.topics_regex, listener=self.listener)
        else:
            self.consumer.subscribe(topics=list(self.config.topics), listener=self.listener)

    def close(self) -> None:
        if self.consumer is not None:
            try:
                if self.config.worker.static_membership and self.control.leaving:
                    _leave_as_static_member(self.consumer)
                self.consumer.close(autocommit=False)
            except Exception as exc:
                log.warning("worker %d: closing the consumer: %s", self.worker_id, exc)
        if self.dead_letter:
            self.dead_letter.close()
        self.sink.close()

    # -- poll, decode, route ---------------------------------------------------------------

    def poll_once(self) -> None:
        if self.pending:
            timeout_s = max(0.0, self.pending.started + self.linger_s - time.monotonic())
        else:
            timeout_s = 1.0
        room = max(1, self.batch_records - self.pending.records)
        polled = self.consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=room)
        if self.listener.error is not None:
            error, self.listener.error = self.listener.error, None
            raise error
        if not polled:
            return
        pending, routes = self.pending, self.routes
        writes, failures = pending.writes, pending.failures
        next_offsets = self.next_offsets
        for tp, messages in polled.items():
            key, last_offset, size = (tp.topic, tp.partition), messages[-1].offset, 0
            next_offsets[key] = last_offset + 1
            topic_routes = routes.get(tp.topic)
            for message in messages:
                size += len(message.value or b"") + len(message.key or b"")
                try:
                    record = decode(message)
                except RecordError as error:
                    failures.append(Failure(undecodable(message), None, error))
                    continue
                if topic_routes is None:
                    failures.append(
                        Failure(record, None, RecordError(f"no KCQL statement reads topic {record.topic!r}"))
                    )
                    continue
                for route in topic_routes:
                    writes.append((record, route))
            pending.note(key, last_offset, len(messages), size)

    def flush_due(self) -> bool:
        pending = self.pending
        return (
            pending.records >= self.batch_records
            or pending.size_bytes >= self.batch_bytes
            or time.monotonic() - pending.started >= self.linger_s
        )

    # -- write, settle failures, commit ------------------------------------------------------

    def flush(self) -> None:
        batch, self.pending = self.pending, PendingBatch()
        if not batch:
            return
        started = time.monotonic()
        self.in_flight = batch
        try:
            write_failed = self.write(batch)
            failed = batch.failures + write_failed
            if failed:
                self.settle(failed, batch)
            self.commit(batch.offsets_to_commit())
        finally:
            self.in_flight = None
        self.counts["written"] += len(batch.writes) - len(write_failed)
        self.counts["batches"] += 1
        log.debug(
            "worker %d wrote %d records (%d writes, %d failed) in %.0f ms",
            self.worker_id,
            batch.records,
            len(batch.writes),
            len(failed),
            (time.monotonic() - started) * 1000,
        )

    def flush_for_rebalance(self, revoked: set[TopicPartitionKey]) -> None:
        """Runs on a thread while kafka-python rebalances: between batches, what is pending is
        written and committed here; with a batch in flight (written or waiting to be retried on
        the main thread), that batch lets go of the revoked partitions."""
        in_flight = self.in_flight
        if in_flight is not None:
            in_flight.released |= revoked & in_flight.partitions()
            return
        self.in_rebalance = True
        try:
            self.flush()
        finally:
            self.in_rebalance = False

    def write(self, batch: PendingBatch) -> list[Failure]:
        """Write, retrying what the policy allows; return the records still failing."""
        final: list[Failure] = []
        retries = unavailable = 0
        writes = batch.writes
        while writes:
            if batch.released:
                writes = [
                    (record, route)
                    for record, route in writes
                    if batch.owned((record.topic, record.partition))
                ]
            try:
                failed = self.sink.write(writes)
            except SinkUnavailable as exc:
                limit = self.policy.retries_when_unavailable
                if limit is not None and unavailable >= limit:
                    raise TaskFailed(
                        f"{self.sink.name} unavailable (after {unavailable} retries): {exc.reason}", cause=exc
                    ) from exc
                unavailable += 1
                delay = self.retry_delay(unavailable)
                log.warning(
                    "worker %d: %s unavailable (%s); writing the batch again in %.1fs (try %d)",
                    self.worker_id,
                    self.sink.name,
                    exc.reason,
                    delay,
                    unavailable,
                )
                self.wait(delay)
                continue
            retriable = [f for f in failed if f.retriable]
            final += [f for f in failed if not f.retriable]
            if not retriable or retries >= self.policy.retries:
                return final + retriable
            retries += 1
            log.warning(
                "worker %d: retry %d of %d in %.1fs: %s",
                self.worker_id,
                retries,
                self.policy.retries,
                self.policy.retry_interval_s,
                describe(retriable),
            )
            self.wait(self.policy.retry_interval_s)
            writes = [(f.record, f.route) for f in retriable]
        return final

    def retry_delay(self, attempt: int) -> float:
        if self.policy.retries_when_unavailable is None:  # waiting for the store: back off
            return min(UNAVAILABLE_BACKOFF_MAX_S, 0.5 * 2 ** min(attempt, 10))
        return self.policy.retry_interval_s

    def settle(self, failed: list[Failure], batch: PendingBatch) -> None:
        """Records that are still failing go to the dead-letter topic, or the policy decides."""
        self.last_error = describe(failed)
        if self.config.errors_log_enable:
            for failure in failed:
                log.error(
                    "worker %d: record %s failed: %s",
                    self.worker_id,
                    failure.record.where,
                    failure.error.reason,
                )
        if self.dead_letter:
            self.dead_letter.give_up(failed)
            self.counts["dead_lettered"] += len(failed)
            return
        if self.tolerate_decode_errors:
            tolerated = [f for f in failed if f.route is None]
            if tolerated:
                log.warning("errors.tolerance=all skips %s", describe(tolerated))
                self.counts["skipped"] += len(tolerated)
            failed = [f for f in failed if f.route is not None]
            if not failed:
                return
        try:
            self.policy.give_up(failed)
        except TaskFailed:
            self.commit(commit_offsets_before(batch, failed), next_offsets=True)
            raise
        self.counts["skipped"] += len(failed)

    def commit(self, offsets: dict[TopicPartitionKey, int], next_offsets: bool = False) -> None:
        from kafka.errors import CommitFailedError, RebalanceInProgressError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        if not offsets:
            return
        bump = 0 if next_offsets else 1
        to_commit = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset + bump, "", -1)
            for (topic, partition), offset in offsets.items()
        }
        try:
            self.consumer.commit(to_commit)
            self.committed.update({key: offset + bump for key, offset in offsets.items()})
        except (CommitFailedError, RebalanceInProgressError) as exc:
            # A rebalance is under way or moved the partitions: the next commit of a partition
            # that stays here covers these offsets; a partition that moved is read again by its
            # new owner from the last commit. Document ids and Cassandra keys are deterministic,
            # so the re-write overwrites, not duplicates.
            log.warning(
                "worker %d: commit refused during a rebalance (%s: %s); a later commit or the new owner "
                "covers these records",
                self.worker_id,
                type(exc).__name__,
                exc,
            )

    def wait(self, seconds: float) -> None:
        """Sleep between retries while staying a live member of the group and of the supervisor.

        Polling keeps the worker in the group (a rebalance can move partitions away from a batch
        that is stuck). Every partition is paused before each poll, since the assignment can grow
        during a wait, and anything a poll still returns is sought back. At the end every
        partition is sought to the next offset this worker would read: that drops records
        kafka-python 3.0 parked while paused, which it can otherwise fail to hand out again."""
        deadline = time.monotonic() + seconds
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                self.control.heartbeat()
                if self.control.stop_requested:
                    raise StopRequested()
                if self.in_rebalance:
                    time.sleep(min(remaining, 0.5))
                    continue
                self.consumer.pause(*self.consumer.assignment())
                for tp, messages in self.consumer.poll(timeout_ms=int(min(remaining, 0.5) * 1000)).items():
                    self.consumer.seek(tp, messages[0].offset)
        finally:
            if not self.in_rebalance:
                self.resume_where_read()

    def resume_where_read(self) -> None:
        for tp in self.consumer.paused():
            next_offset = self.next_offsets.get((tp.topic, tp.partition))
            if next_offset is not None and tp in self.consumer.assignment():
                self.consumer.seek(tp, next_offset)
        self.consumer.resume(*self.consumer.paused())

    # -- status ------------------------------------------------------------------------------

    def report_state(self, force: bool = False, state: str = "running") -> None:
        now = time.monotonic()
        if not force and now < self.state_due:
            return
        self.state_due = now + STATE_INTERVAL_S
        # Positions come from what this worker committed, never from consumer.position(): that
        # call refreshes committed offsets and resets positions as a side effect.
        partitions = []
        for tp in sorted(self.consumer.assignment()) if self.consumer else []:
            position = self.committed.get((tp.topic, tp.partition))
            highwater = self.consumer.highwater(tp)
            lag = None if highwater is None or position is None else max(0, highwater - position)
            partitions.append(
                {"topic": tp.topic, "partition": tp.partition, "committed": position, "lag": lag}
            )
        self.control.record_state(
            state=state,
            partitions=partitions,
            last_error=self.last_error,
            instance_id=self.instance_id,
            **self.counts,
        )


def _leave_as_static_member(consumer: Any) -> None:
    """kafka-python's close() sends LeaveGroup only for dynamic members: a static member's
    partitions would wait session.timeout.ms for it. On a stop for good the worker leaves like a
    dynamic member, naming its group.instance.id, so the broker moves them at once (KIP-345)."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is not None and hasattr(coordinator, "is_dynamic_member"):
        coordinator.is_dynamic_member = lambda: True


def _instance_id(name: str, supervisor_pid: int, worker_id: int) -> str:
    """Stable across a respawn of the same slot; distinct for another `conductor start`."""
    raw = f"{name}-{socket.gethostname()}-{supervisor_pid}-{worker_id}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw)[:249]
