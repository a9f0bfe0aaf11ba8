"""The aggregator's worker: read a batch, aggregate it, and write the results, the changed state
and the input offsets in one Kafka transaction, so a read_committed reader sees each result
exactly once whatever crashes, rebalances or restarts happen.

- The consumer reads read_committed in the connector's group; the producer's transactional id
  is the worker's slot (a respawned worker fences the one it replaces, and aborts what that one
  left open), and offsets go into the transaction with the consumer's group metadata, so a
  zombie that lost its partitions can never commit (KIP-447).
- A partition's open windows are restored from its changelog when the worker takes the
  partition, before any of its records is counted. The changelog holds exactly the state of the
  committed offsets: both are written in one transaction.
- A transaction that fails is aborted; every partition held is then read again from its
  committed offset with its state restored, so nothing half-counted survives.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import orjson

from conductor import exitcodes
from conductor.admin import retrying
from conductor.config import ConnectorConfig
from conductor.errors import RecordError, TaskFailed
from conductor.formats import readers
from conductor.records import decoder, record_of
from conductor.registry import RegistryUnavailable
from conductor.workercontrol import WorkerControl
from policies.deadletter import DeadLetterTopic
from sinks.base import Failure
from tasks.aggregation import Outcome, PartitionState
from tasks.changelog import StateKey, create_topics, purge_committed, read_changelogs
from tasks.consumer import GroupMember, StopRequested, instance_id
from tasks.metrics import Rate, Timings, WorkerMetrics
from tasks.outage import Outage
from tasks.regroup import Bundler, unbundle
from tasks.topology import Topology

log = logging.getLogger("conductor.worker")

POLL_S = 0.5
STATE_INTERVAL_S = 2.0
IDLE_CHECK_S = 1.0
PURGE_INTERVAL_S = 30.0
TRANSACTION_TIMEOUT_MS = 10_000  # what a crashed worker's open transaction holds readers back
LATE_HEADER = "__conductor.aggregate.late"
LATE_WARNING_S = 60.0


class AggregatorWorker:
    """What the supervisor forks for an aggregator connector; stores only, until the child runs."""

    def __init__(self, config: ConnectorConfig, topology: Topology, supervisor_pid: int) -> None:
        self.config = config
        self.topology = topology
        self.supervisor_pid = supervisor_pid

    def __call__(self, worker_id: int, control: WorkerControl) -> int:
        return AggregatorRun(self.config, self.topology, worker_id, control, self.supervisor_pid).run()


class AggregatorRun:
    def __init__(
        self,
        config: ConnectorConfig,
        topology: Topology,
        worker_id: int,
        control: WorkerControl,
        supervisor_pid: int,
    ) -> None:
        self.config = config
        self.topology = topology
        self.worker_id = worker_id
        self.control = control
        self.transactional_id = instance_id(config.name, supervisor_pid, worker_id)
        self.member = GroupMember(
            config,
            control,
            self.transactional_id,
            on_revoked=self.release,
            on_assigned=self.take,
            topics=topology.subscriptions,
            consumer_overrides={"isolation_level": "read_committed", "enable_auto_commit": False},
            own_topics=frozenset(r.topic for r in topology.regroups),
        )
        self.member.while_waiting = self.report
        self.dead_letter = DeadLetterTopic.of(config, worker_id)
        self.producer: Any = None
        self.bundler = Bundler({})
        self.states: dict[StateKey, PartitionState] = {}
        self.to_restore: set[StateKey] = set()
        self.counts = {
            "read": 0,
            "results": 0,
            "late": 0,
            "late_windows": 0,
            "skipped": 0,
            "idle_close_deferred": 0,
            "commits": 0,  # transactions committed  # idle, but the group was still behind: windows kept open
        }
        self.idle_close_ms = config.aggregate.idle_close_ms
        self.last_record = time.monotonic()
        self.idle_checked = 0.0
        self.purged = time.monotonic()
        self.state_due = 0.0
        self.last_error: str | None = None
        self.late_warned = -LATE_WARNING_S
        self.skip_warned = -LATE_WARNING_S
        self.paused = False
        self.decode = decoder(*readers(config, exact=False))
        self.registry = Outage(worker_id, "the Schema Registry")
        self.waiting_for_registry: str | None = None
        self.metrics = WorkerMetrics(control.state_dir / "metrics", config.name, worker_id)
        self.timings = Timings()
        self.rate = Rate()

    # -- life ----------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.boot()
        except StopRequested:
            self.close()
            return exitcodes.OK
        except Exception as exc:
            log.error("worker %d could not start: %s: %s", self.worker_id, type(exc).__name__, exc)
            self.control.record_state(
                state="boot failed", last_error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc()
            )
            self.close()
            return exitcodes.BOOT_ERROR
        self.control.notify_booted()
        try:
            while not self.control.stop_requested:
                self.control.heartbeat()
                if self.control.paused:
                    self.hold()
                    continue
                polled = self.member.poll(POLL_S, self.config.worker.batch_max_records)
                self.restore()
                if polled:
                    self.last_record = time.monotonic()
                    offsets = {tp: messages[-1].offset + 1 for tp, messages in polled.items()}
                    self.transact(lambda outcome: self.count(polled, outcome, offsets), offsets)
                    self.wait_for_registry()
                else:
                    self.close_idle_windows()
                self.purge()
                self.report()
            self.report(force=True, state="stopped")
            log.info(
                "worker %d stopped: %d records read, %d results",
                self.worker_id,
                self.counts["read"],
                self.counts["results"],
            )
            return exitcodes.OK
        except StopRequested:
            return exitcodes.OK
        except TaskFailed as failed:
            self.last_error = failed.reason
            self.control.record_failure(failed)
            self.report(force=True, state="failed")
            return exitcodes.TASK_FAILED
        finally:
            self.close()

    def hold(self) -> None:
        """The connector is paused: every batch is already committed in its transaction, so the
        worker only keeps its partitions and reads nothing until resumed or stopped."""
        self.paused = True
        self.report(force=True)
        self.member.sit_out_pause()
        self.paused = False
        self.report(force=True)

    def boot(self) -> None:
        """Kafka's answer to our TLS and SASL settings, internal and output topics, the
        transactional producer, then the group."""
        from kafka import KafkaProducer

        self.member.reach_kafka()
        self.bundler = Bundler(create_topics(self.config.kafka, self.topology, self.wait_for_input))
        kwargs = self.config.kafka.producer_kwargs()
        kwargs.update(
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            linger_ms=kwargs.get("linger_ms", 5),
        )
        self.producer = KafkaProducer(**kwargs)
        retrying(self.producer.init_transactions, "start transactions")
        if self.dead_letter is not None:
            self.dead_letter.setup()
        self.member.join()

    def wait_for_input(self, topic: str) -> None:
        log.warning("worker %d: input topic %s does not exist yet; waiting", self.worker_id, topic)
        self.member.pause(5.0)

    def close(self) -> None:
        self.member.close(leave=self.control.leaving)
        if self.producer is not None:
            try:
                self.producer.close(timeout=5)
            except Exception as exc:
                log.debug("worker %d: closing the producer: %s", self.worker_id, exc)
        if self.dead_letter is not None:
            self.dead_letter.close()

    # -- partitions (rebalance callbacks: bookkeeping only, inside poll) ------------------------------

    def take(self, partitions: set[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            for plan in self.topology.aggregating.get(topic, ()):
                self.to_restore.add((plan.index, partition))

    def release(self, partitions: set[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            for plan in self.topology.aggregating.get(topic, ()):
                self.states.pop((plan.index, partition), None)
                self.to_restore.discard((plan.index, partition))

    def restore(self) -> None:
        """Rebuild the open windows of newly taken partitions from their changelogs."""
        if not self.to_restore:
            return
        started = time.monotonic()
        fresh, entries = read_changelogs(
            self.config.kafka, self.topology, self.to_restore, self.control.heartbeat
        )
        self.states.update(fresh)
        self.to_restore.clear()
        windows = sum(state.open_windows for state in fresh.values())
        log.info(
            "worker %d: restored %d open window(s) of %d partition(s) from %d changelog record(s) in %.2fs",
            self.worker_id, windows, len(fresh), entries, time.monotonic() - started,
        )  # fmt: skip

    # -- one transaction per batch --------------------------------------------------------------

    def transact(self, work: Any, offsets: dict[Any, int] | None = None) -> None:
        """Run `work(outcome)` and write what it produced, with these next offsets to read,
        atomically."""
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        producer = self.producer
        producer.begin_transaction()
        try:
            outcome = Outcome()
            work(outcome)
            for topic, partition, bundle in self.bundler.drain():
                producer.send(topic, value=bundle, partition=partition)
            self.send_results(outcome)
            self.send_changes()
            if offsets:
                producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()},
                    self.member.consumer.group_metadata(),
                )
            committing = time.monotonic()
            producer.commit_transaction()
            self.timings.commit(committing)
            self.counts["commits"] += 1
        except KafkaError as error:
            self.start_over(error)
            return
        except BaseException:
            try:
                producer.abort_transaction()
            except Exception as exc:
                log.debug("worker %d: aborting: %s", self.worker_id, exc)
            raise
        self.counts["results"] += len(outcome.results)
        if offsets:
            self.member.committed.update({(tp.topic, tp.partition): o for tp, o in offsets.items()})

    def commit_positions(self) -> None:
        """Commit past the transaction markers and aborted records the consumer has stepped
        over since the last commit, so that a caught-up group shows no lag (they take offsets
        too). A partition this worker has not committed yet (taken with nothing but a crashed
        worker's aborted records in it, say) is compared with the group's commit."""
        consumer, committed = self.member.consumer, self.member.committed
        ahead = {}
        for tp in consumer.assignment():
            key = (tp.topic, tp.partition)
            done = committed[key] if key in committed else consumer.committed(tp)
            if (position := consumer.position(tp)) > (done or 0):
                ahead[tp] = position
        if ahead:
            self.transact(lambda outcome: None, ahead)

    def start_over(self, error: BaseException) -> None:
        """A transaction failed: abort it, and read every held partition again from its committed
        offset with its state restored."""
        from kafka.errors import ProducerFencedError

        if isinstance(error, ProducerFencedError):
            raise TaskFailed(f"another worker took this worker's transactions ({error})")
        log.warning(
            "worker %d: transaction aborted (%s: %s); reading again from the last commit",
            self.worker_id,
            type(error).__name__,
            error,
        )
        try:
            self.producer.abort_transaction()
        except Exception as exc:
            raise TaskFailed(f"cannot abort the transaction: {type(exc).__name__}: {exc}") from exc
        consumer = self.member.consumer
        held = consumer.assignment()
        committed = {tp: consumer.committed(tp) for tp in held}
        for tp, offset in committed.items():
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        self.member.next_offsets.clear()
        self.bundler.pending.clear()
        self.states.clear()
        self.to_restore.clear()
        self.take({(tp.topic, tp.partition) for tp in held})
        self.restore()

    def wait_for_registry(self) -> None:
        """A schema the registry could not give yet: its record, and those after it, are read
        again once it answers (count() rewound them; nothing of theirs was committed)."""
        if self.waiting_for_registry is not None:
            reason, self.waiting_for_registry = self.waiting_for_registry, None
            self.member.wait(self.registry.failed(reason))
        elif self.registry:
            self.registry.ended()

    def count(self, polled: dict[Any, list[Any]], outcome: Outcome, offsets: dict[Any, int]) -> None:
        topology, bundles = self.topology, self.bundler.partitions
        chain = self.config.transforms  # None without transforms; bundles were transformed already
        decode = self.decode
        for tp, messages in polled.items():
            regroups = topology.regrouping.get(tp.topic, ())
            plans = topology.aggregating.get(tp.topic, ())
            states = [self.states[(plan.index, tp.partition)] for plan in plans]
            if tp.topic in bundles:
                for message in messages:
                    for record in unbundle(message):
                        self.count_record(record, (), states, outcome)
                continue
            for message in messages:
                try:
                    record = decode(message)
                    if chain is not None:
                        record = chain.apply(record)
                except RecordError as error:
                    self.counts["read"] += 1
                    self.tolerate(record_of(message), error)
                    continue
                except RegistryUnavailable as error:
                    self.waiting_for_registry = error.reason
                    self.member.rewind(tp, message.offset)
                    offsets[tp] = message.offset
                    break
                if record is None:
                    self.counts["read"] += 1  # dropped by a Filter
                    continue
                self.count_record(record, regroups, states, outcome)
        self.counts["late_windows"] += outcome.late_windows

    def count_record(
        self, record: Any, regroups: Any, states: list[PartitionState], outcome: Outcome
    ) -> None:
        self.counts["read"] += 1
        if record.value is None:
            return  # a tombstone holds nothing to count
        for regroup in regroups:
            try:
                self.bundler.add(regroup, record, record.value)
            except RecordError as error:
                self.tolerate(record, error)
        for state in states:
            outcome.counted = True
            try:
                state.add(record, record.value, outcome)
            except RecordError as error:
                self.tolerate(record, error)
                continue
            if not outcome.counted:
                self.late(record)

    def send_results(self, outcome: Outcome) -> None:
        send, dumps = self.producer.send, orjson.dumps
        for plan_index, key, value, timestamp in outcome.results:
            topic = self.topology.plans[plan_index].statement.output_topic
            send(topic, key=dumps(key), value=dumps(value), timestamp_ms=timestamp)

    def send_changes(self) -> None:
        send, dumps = self.producer.send, orjson.dumps
        for (plan_index, partition), state in self.states.items():
            if not state.changed:
                continue
            topic = self.topology.changelogs[plan_index]
            for key, value in state.changes():
                send(
                    topic, key=dumps(key), value=None if value is None else dumps(value), partition=partition
                )

    # -- records that do not count ----------------------------------------------------------------

    def tolerate(self, record: Any, error: RecordError) -> None:
        """errors.tolerance: none fails the task; all skips the record, to the dead-letter topic
        when there is one."""
        if self.config.errors.tolerance != "all":
            raise TaskFailed(f"record {record.where}: {error.reason} (errors.tolerance=none)", error)
        self.counts["skipped"] += 1
        self.to_dead_letter(record, error)
        now = time.monotonic()
        if self.dead_letter is None and now >= self.skip_warned + LATE_WARNING_S:
            # As the sink says what it skips, but once a minute at most: this is per record.
            log.warning(
                "worker %d: skipped (errors.tolerance=all) %s: %s; %d skipped so far",
                self.worker_id, record.where, error.reason, self.counts["skipped"],
            )  # fmt: skip
            self.skip_warned = now

    def late(self, record: Any) -> None:
        self.counts["late"] += 1
        self.to_dead_letter(record, RecordError("late: every window it belongs to had closed"), late=True)
        now = time.monotonic()
        if self.dead_letter is None and now >= self.late_warned + LATE_WARNING_S:
            # Not an error (the grace period says so), but never silent: once a minute at most.
            log.warning(
                "worker %d: %d late record(s) so far not counted (%s: every window it belongs to "
                "had closed); a longer GRACE PERIOD keeps them, a dead-letter topic keeps a copy",
                self.worker_id, self.counts["late"], record.where,
            )  # fmt: skip
            self.late_warned = now

    def to_dead_letter(self, record: Any, error: RecordError, late: bool = False) -> None:
        if self.dead_letter is None:
            log.debug("worker %d: %s skipped: %s", self.worker_id, record.where, error.reason)
            return
        headers = self.dead_letter.headers(Failure(record, None, error))
        if late:
            headers.append((LATE_HEADER, b"true"))
        self.producer.send(self.dead_letter.topic, key=record.key, value=record.raw_value, headers=headers)

    # -- windows that close without input ---------------------------------------------------------

    def close_idle_windows(self) -> None:
        """Once the whole input is read and nothing came for conductor.aggregate.idle.close.ms,
        stream time moves to the wall clock, so the last windows close (never while behind)."""
        now = time.monotonic()
        if self.idle_close_ms <= 0 or now - self.last_record < self.idle_close_ms / 1000:
            return
        if now - self.idle_checked < IDLE_CHECK_S:
            return
        self.idle_checked = now
        # Every idle worker commits past its markers, windows or not: the others' caught-up
        # check reads its partitions too.
        self.commit_positions()
        # No open window: nothing to close, and stream time stays where the records put it
        # (moved to the clock, an input about to be filled with old records would all be late).
        if not any(s.windows for s in self.states.values()):
            return
        if not self.caught_up():
            self.counts["idle_close_deferred"] += 1
            return
        wall_ms = int(time.time() * 1000)
        states = list(self.states.values())

        def advance(outcome: Outcome) -> None:
            for state in states:
                state.advance_to(wall_ms, outcome)

        self.transact(advance)

    def caught_up(self) -> bool:
        """No lag on any partition of the input or the repartition topics, in the whole group."""
        from kafka.errors import KafkaError
        from kafka.structs import TopicPartition

        consumer = self.member.consumer
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topology.subscriptions
            for p in (consumer.partitions_for_topic(topic) or ())
        ]
        try:
            # Committed first: a commit landing between the two reads then shows as lag, never
            # as an end already reached.
            committed = {tp: consumer.committed(tp) or 0 for tp in partitions}
            ends = consumer.end_offsets(partitions)
            if any(ends.get(tp, 0) > committed[tp] for tp in partitions):
                return False
        except KafkaError as error:  # e.g. another worker's offsets still in an open transaction
            log.debug("worker %d: lag unknown (%s): windows stay open", self.worker_id, error)
            return False
        return True

    def purge(self) -> None:
        now = time.monotonic()
        if now - self.purged < PURGE_INTERVAL_S or not self.topology.regroups:
            return
        self.purged = now
        topics = {r.topic for r in self.topology.regroups}
        purge_committed(self.config.kafka, self.member.consumer, topics, self.worker_id)

    # -- state ------------------------------------------------------------------------------------

    def report(self, force: bool = False, state: str = "running") -> None:
        now = time.monotonic()
        if not force and now < self.state_due:
            return
        self.state_due = now + STATE_INTERVAL_S
        counts = {**self.counts, "commits_refused": self.member.refused_commits}
        self.metrics.update(counts, self.timings)
        self.control.record_state(
            state=("paused" if self.paused else "waiting" if self.registry else state)
            if state == "running"
            else state,
            output_topics=sorted({plan.statement.output_topic for plan in self.topology.plans}),
            records_per_s=self.rate.per_second(now, self.counts["read"]),
            partitions=self.member.partitions(),
            group=self.member.membership(),
            transactional_id=self.transactional_id,
            open_windows=sum(s.open_windows for s in self.states.values()),
            stream_time={
                f"{self.topology.plans[i].statement.output_topic}#{p}": s.stream_time
                for (i, p), s in self.states.items()
            },
            last_error=self.last_error,
            waiting_for=self.registry.state(),
            **self.counts,
        )
