"""The sink task: records -> decode -> transform -> route -> batch -> write -> settle -> commit.

Offsets are committed synchronously, and only for what was written (or let through by the
error handling the user chose). A failed task commits everything before its first failed record.

When is a record given up? Answered here, and only here:
- a store that cannot be reached is waited for, whatever the policy (tasks/outage.py);
- a record the store refuses for now (429, 5xx, a timeout) is written again until the sink's
  write timeout has passed, then the policy's retries (RETRY) follow;
- what is still refused then goes to the policy: THROW and RETRY fail the task, NOOP skips it;
- a record that cannot be decoded, or that a transform fails on, fails the task under
  errors.tolerance=none, and is skipped under errors.tolerance=all;
- skipped records go to the dead-letter topic when there is one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from conductor.config import ConnectorConfig
from conductor.errors import RecordError, SinkUnavailable, TaskFailed
from conductor.formats import readers
from conductor.records import decoder, record_of
from conductor.registry import RegistryUnavailable
from conductor.routes import Route
from policies import FOREVER, make_policy
from policies.base import describe
from policies.deadletter import DeadLetterTopic
from sinks.base import Failure, Sink
from tasks.batch import PendingBatch, TopicPartitionKey
from tasks.consumer import GroupMember
from tasks.metrics import Timings
from tasks.outage import Outage

log = logging.getLogger("conductor.worker")

FIRST_PAUSE_S = 0.2
MAX_PAUSE_S = 5.0
IDLE_POLL_S = 1.0


class SinkTask:
    """Built in the worker process, after the fork; `member` is its place in the group."""

    def __init__(
        self,
        config: ConnectorConfig,
        routes: Mapping[str, tuple[Route, ...]],
        sink: Sink,
        member: GroupMember,
        dead_letter: DeadLetterTopic | None,
    ) -> None:
        self.config = config
        self.errors = config.errors
        self.routes = routes
        self.sink = sink
        self.member = member
        self.worker_id = member.worker_id
        self.dead_letter = dead_letter
        self.policy = make_policy(config.errors)
        self.batch_records = config.worker.batch_max_records
        self.batch_bytes = config.worker.batch_max_bytes
        self.linger_s = config.worker.linger_ms / 1000
        self.decode = decoder(*readers(config))
        self.pending = PendingBatch()
        self.in_flight: PendingBatch | None = None  # the batch being written, retried or committed
        self.counts = {
            "read": 0,
            "written": 0,
            "skipped": 0,
            "dead_lettered": 0,
            "batches": 0,
            "commits": 0,
            "failures": 0,  # refusals, each try of each record (Kafka Connect's total-record-failures)
            "errors": 0,  # records that failed for good
            "retries": 0,
            "errors_logged": 0,
        }
        self.failure_kinds: dict[str, int] = {}
        self.timings = Timings()
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.store = Outage(self.worker_id, sink.where)
        self.registry = Outage(self.worker_id, "the Schema Registry")  # a schema not yet known

    # -- poll, decode, route -------------------------------------------------------------------

    def poll_once(self) -> None:
        """One poll; each record decoded and routed into the pending batch. The per-record path:
        the accounting happens once per partition."""
        pending = self.pending
        if pending:
            timeout_s = max(0.0, pending.started + self.linger_s - time.monotonic())
        else:
            timeout_s = IDLE_POLL_S
        polled = self.member.poll(timeout_s, max(1, self.batch_records - pending.records))
        if not polled:
            return
        pending = self.pending  # a rebalance inside poll() may have changed it
        routes = self.routes
        chain = self.config.transforms  # None without transforms: nothing more per record
        decode = self.decode
        rerouting = chain is not None and chain.routes
        writes, failures = pending.writes, pending.failures
        waiting_for_registry = None
        for tp, messages in polled.items():
            size = 0
            topic_routes = routes.get(tp.topic)
            for n, message in enumerate(messages):
                size += len(message.value or b"") + len(message.key or b"")
                try:
                    record = decode(message)
                    if chain is not None:
                        record = chain.apply(record)
                except RecordError as error:
                    failures.append(Failure(record_of(message), None, error))
                    continue
                except RegistryUnavailable as error:  # read this one and the rest again, later
                    waiting_for_registry = error.reason
                    self.member.rewind(tp, message.offset)
                    size -= len(message.value or b"") + len(message.key or b"")
                    messages = messages[:n]
                    break
                if record is None:
                    continue  # dropped by a Filter; its offset is committed with the partition's
                if rerouting:
                    topic_routes = routes.get(record.topic)
                if topic_routes is None:
                    error = RecordError(f"no KCQL statement reads topic {record.topic!r}")
                    failures.append(Failure(record, None, error))
                    continue
                for route in topic_routes:
                    writes.append((record, route))
            if messages:
                pending.note((tp.topic, tp.partition), messages[-1].offset, len(messages), size)
                self.counts["read"] += len(messages)
        if waiting_for_registry is not None:
            self.member.wait(self.registry.failed(waiting_for_registry))
        elif self.registry:
            self.registry.ended()

    def flush_due(self) -> bool:
        pending = self.pending
        return bool(pending) and (
            pending.records >= self.batch_records
            or pending.size_bytes >= self.batch_bytes
            or time.monotonic() - pending.started >= self.linger_s
        )

    def release(self, partitions: set[TopicPartitionKey]) -> None:
        """Partitions revoked in a rebalance: what was read from them and not committed is
        left to their new owner, which reads it again from the last commit."""
        self.pending.drop(partitions)
        if self.in_flight is not None:
            self.in_flight.released |= partitions & self.in_flight.partitions()

    # -- write, settle, commit ------------------------------------------------------------------

    def flush(self) -> None:
        batch, self.pending = self.pending, PendingBatch()
        if not batch:
            return
        started = time.monotonic()
        self.in_flight = batch
        try:
            refused = self.write(batch)
            self.timings.write(started)
            failed = [f for f in batch.failures + refused if batch.owned(f.record.consumed)]
            if failed:
                self.settle(failed, batch)
            committing = time.monotonic()
            if self.member.commit(batch.offsets_to_commit()):
                self.counts["commits"] += 1
                self.timings.commit(committing)
        finally:
            self.in_flight = None
        self.counts["batches"] += 1
        log.debug(
            "worker %d wrote %d records (%d writes, %d refused) in %.0f ms",
            self.worker_id,
            batch.records,
            len(batch.writes),
            len(refused),
            (time.monotonic() - started) * 1000,
        )

    def write(self, batch: PendingBatch) -> list[Failure]:
        """Write the batch; the records still refused once the sink's write timeout and the
        policy's retries are spent. Waits poll the group, so a rebalance can take partitions
        away meanwhile: their records are not written again."""
        writes = batch.writes
        refused: list[Failure] = []
        give_up_at = time.monotonic() + self.sink.write_timeout_s
        pause, retries = FIRST_PAUSE_S, 0
        while writes:
            if batch.released:
                writes = [(r, route) for r, route in writes if batch.owned(r.consumed)]
                if not writes:
                    break
            try:
                failed = self.sink.write(writes)
            except SinkUnavailable as exc:
                self.member.wait(self.store.failed(exc.reason))
                continue
            self.store.ended()
            self.counts["written"] += len(writes) - len(failed)
            if failed:
                self.count_failures(failed)
            retriable = [f for f in failed if f.retriable]
            refused += [f for f in failed if not f.retriable]
            if not retriable:
                break
            self.counts["retries"] += 1
            if time.monotonic() < give_up_at:
                log.debug(
                    "worker %d: %s; writing them again in %.1fs", self.worker_id, describe(retriable), pause
                )
                self.member.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_S)
            elif self.policy.retries == FOREVER or retries < self.policy.retries:
                retries += 1
                log.warning(
                    "worker %d: retry %d of %s in %.1fs: %s",
                    self.worker_id,
                    retries,
                    "unlimited" if self.policy.retries == FOREVER else self.policy.retries,
                    self.policy.retry_interval_s,
                    describe(retriable),
                )
                self.member.wait(self.policy.retry_interval_s)
            else:
                refused += retriable
                break
            writes = [(f.record, f.route) for f in retriable]
        return refused

    def settle(self, failed: list[Failure], batch: PendingBatch) -> None:
        """Records that failed for good: the task fails, or they are skipped (to the dead-letter
        topic when there is one), as errors.tolerance and the policy say."""
        self.last_error = describe(failed)
        self.last_error_at = time.time()
        self.counts["errors"] += len(failed)
        if self.errors.log_enable:
            for failure in failed:
                self.log_error(failure)
        undecoded = [f for f in failed if f.route is None]
        if undecoded:
            self.count_failures(undecoded)
        refused = [f for f in failed if f.route is not None]
        if undecoded and self.errors.tolerance == "none":
            self.fail(
                batch,
                failed,
                TaskFailed(f"errors.tolerance is none: {describe(undecoded)}", cause=undecoded[0].error),
            )
        if refused:
            try:
                self.policy.give_up(refused)
            except TaskFailed as error:
                self.fail(batch, failed, error)
        if self.dead_letter is not None:
            self.send_to_dead_letter(failed)
            self.counts["dead_lettered"] += len(failed)
            return
        self.counts["skipped"] += len(failed)
        why = ", ".join(
            reason
            for reason, given in (("errors.tolerance=all", undecoded), ("NOOP policy", refused))
            if given
        )
        log.warning("worker %d: skipped (%s) %s", self.worker_id, why, describe(failed))

    def count_failures(self, failed: list[Failure]) -> None:
        """By kind, for the metrics: 'decode' for a record that could not be read, 'transform' for
        one a transform failed on, else the store's own kind (429, mapping, version_conflict, ...)."""
        self.counts["failures"] += len(failed)
        kinds = self.failure_kinds
        for failure in failed:
            kind = (
                "decode"
                if failure.route is None and failure.error.kind != "transform"
                else failure.error.kind
            )
            kinds[kind] = kinds.get(kind, 0) + 1

    def fail(self, batch: PendingBatch, failed: list[Failure], error: TaskFailed) -> None:
        """The task stops: commit everything before the first failed record, then raise."""
        self.member.commit(batch.offsets_before(failed))
        raise error

    def send_to_dead_letter(self, failed: list[Failure]) -> None:
        assert self.dead_letter is not None
        while True:
            try:
                self.dead_letter.send(failed)
            except SinkUnavailable as exc:
                self.member.wait(self.member.kafka.failed(exc.reason))
                continue
            self.member.kafka.ended()
            return

    def log_error(self, failure: Failure) -> None:
        """Kafka Connect's errors.log.enable line, and the reason."""
        record = failure.record
        stage, where = (
            ("VALUE_CONVERTER", "decoding") if failure.route is None else ("TASK_PUT", self.sink.name)
        )
        if failure.error.kind == "transform":
            stage, where = "TRANSFORMATION", "transforms"
        consumed = ""
        if self.errors.log_include_messages:
            consumed = (
                f", where consumed record is {{topic='{record.topic}', partition={record.partition}, "
                f"offset={record.offset}, timestamp={record.timestamp}}}"
            )
        self.counts["errors_logged"] += 1
        log.error(
            "Error encountered in task %s-%d. Executing stage '%s' (%s)%s: %s",
            self.config.name,
            self.worker_id,
            stage,
            where,
            consumed,
            failure.error.reason,
        )

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            **self.counts,
            "failure_kinds": dict(self.failure_kinds),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }
