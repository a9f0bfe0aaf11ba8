"""The sink task: records -> decode -> transform -> route -> batch -> write -> settle -> commit.

Offsets are committed synchronously, and only for what was written (or let through by the
error handling the user chose). A failed task commits everything before its first failed record.

A batch's first attempt is sent to the writer thread (tasks/writer.py) and the next batch is
read meanwhile: one batch in flight, one being built. Its answer is taken on the worker's
thread, which does all the rest (retries, settling) before the next batch is sent, and commits
it while the next one is written: batches are written, settled and committed in the order
they were read. A pause or a stop writes and commits everything first.

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

import gc
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
from sinks.base import STAGE_CONVERTER, STAGE_TRANSFORM, Failure, Sink
from tasks.batch import PendingBatch, TopicPartitionKey
from tasks.consumer import GroupMember
from tasks.metrics import Timings
from tasks.outage import Outage
from tasks.writer import Writer

log = logging.getLogger("conductor.worker")

FIRST_PAUSE_S = 0.2
MAX_PAUSE_S = 5.0
IDLE_POLL_S = 1.0
IN_FLIGHT_POLL_S = 0.05  # polls are this short while a batch is in flight: its commit follows its answer
# A batch's records (the consumer's, the Records, their values) live until it is committed;
# with Python's default (700 allocations) the collector went over each batch again and again:
# a quarter of a worker's CPU (py-spy --native). Reference counting frees them anyway.
YOUNG_COLLECTION_EVERY = 50_000


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
        self.writer = Writer(self.worker_id)
        gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
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
        """One poll into the pending batch; around it, the writes move on: a batch in flight
        whose answer came is finished, and a batch that is due is handed over."""
        if self.writer.answered:
            self.finish_write()
        self.read()
        if self.flush_due():
            self.hand_over()

    def read(self) -> None:
        """One poll; each record decoded and routed into the pending batch. The per-record path:
        the accounting happens once per partition."""
        pending = self.pending
        if pending:  # a linger longer than this still sees a stop within IDLE_POLL_S
            timeout_s = min(max(0.0, pending.started + self.linger_s - time.monotonic()), IDLE_POLL_S)
        else:
            timeout_s = IDLE_POLL_S
        if self.writer.busy:
            timeout_s = min(timeout_s, IN_FLIGHT_POLL_S)
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
            self.finish_write()  # nothing is left in flight by a stop during the wait
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
        """Everything read is written, settled and committed (before a pause, or a stop)."""
        if self.pending:
            self.hand_over()
        self.finish_write()

    def hand_over(self) -> None:
        """The pending batch goes in flight. Its bulk bodies are built while the batch before it
        is still being written; it is sent once that one is settled, and that one is committed
        while it is written: the store waits for neither."""
        prepared = self.pending.writes
        attempt = self.sink.prepare(prepared) if prepared else None
        before = self.in_flight
        if before is not None:
            self.complete(before)
        batch, self.pending = self.pending, PendingBatch()
        if batch.writes is not prepared:  # a rebalance during the waits of complete() dropped records
            attempt = self.sink.prepare(batch.writes) if batch.writes else None
        self.in_flight = batch
        batch.write_started = time.monotonic()
        if attempt is not None:
            self.writer.send(attempt)
        if before is not None:
            self.commit(before)
        if attempt is None:  # nothing for the store (records filtered out, or failed before it)
            self.finish_write()

    def finish_write(self) -> None:
        """The batch in flight, if any, settled and committed."""
        batch = self.in_flight
        if batch is None:
            return
        self.complete(batch)
        self.in_flight = None
        self.commit(batch)

    def complete(self, batch: PendingBatch) -> None:
        """The batch's answer awaited, what the store refused for now written again, and what
        failed for good settled: all that is left is its commit."""
        refused = self.write(batch)
        if batch.writes:
            self.timings.writes.append(self.writer.answered_at - batch.write_started)
        failed = [f for f in batch.failures + refused if batch.owned(f.record.consumed)]
        if failed:
            self.settle(failed, batch)
        log.debug(
            "worker %d wrote %d records (%d writes, %d refused) in %.0f ms",
            self.worker_id,
            batch.records,
            len(batch.writes),
            len(refused),
            (time.monotonic() - batch.write_started) * 1000,
        )

    def commit(self, batch: PendingBatch) -> None:
        committing = time.monotonic()
        if self.member.commit(batch.offsets_to_commit()):
            self.counts["commits"] += 1
            self.timings.commit(committing)
        self.counts["batches"] += 1

    def write(self, batch: PendingBatch) -> list[Failure]:
        """The batch's writes, from its first attempt's answer on: the records still refused once
        the sink's write timeout and the policy's retries are spent. Waits poll the group, so a
        rebalance can take partitions away meanwhile: their records are not written again."""
        writes = batch.writes
        refused: list[Failure] = []
        give_up_at = batch.write_started + self.sink.write_timeout_s
        pause, retries = FIRST_PAUSE_S, 0
        while writes:
            if not self.writer.busy:  # the first attempt was sent by hand_over()
                if batch.released:
                    writes = [(r, route) for r, route in writes if batch.owned(r.consumed)]
                    if not writes:
                        break
                self.writer.send(self.sink.prepare(writes))
            try:
                failed = self.writer.answer(self.awaiting_answer)
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

    def awaiting_answer(self) -> None:
        """Alive to the supervisor, the state reported. A stop asked meanwhile waits for the
        answer: the batch is settled and committed first."""
        self.member.control.heartbeat()
        self.member.while_waiting()

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
            kind = "decode" if failure.stage == STAGE_CONVERTER else failure.error.kind
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
        stage = failure.stage
        where = {STAGE_CONVERTER: "decoding", STAGE_TRANSFORM: "transforms"}.get(stage, self.sink.name)
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
