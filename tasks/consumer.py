"""One worker's membership of its connector's consumer group (kafka-python 3).

Everything about the group is here: joining (waiting out a Kafka that cannot answer), polling,
the pause-and-seek waits that keep the worker a live member while it waits to write again,
the rebalance callbacks, committing, lag, records lost to retention, and a watch on the
membership itself. A task (tasks/sink.py) sees records, offsets and revoked partitions only.

kafka-python 3 heartbeats on its own IO thread, but a join, and with it every rebalance
callback, runs only inside poll() on the worker's thread: a worker that stops polling stalls
its group's rebalances. So nothing here waits without polling.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable
from typing import Any

from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.structs import MemberState, OffsetAndMetadata, TopicPartition

from conductor import kafka_check
from conductor.config import ConnectorConfig
from conductor.workercontrol import WorkerControl
from tasks.batch import TopicPartitionKey
from tasks.losses import Losses
from tasks.outage import Outage

log = logging.getLogger("conductor.worker")

Offsets = dict[TopicPartitionKey, int]  # the next offset to read, per partition
COMMIT_TIMEOUT_MS = 30_000
HEARTBEAT_INTERVAL_MS = 1000  # Kafka assigns partitions on the next heartbeat after a join: 1 s, not 3 s
PAUSED_POLL_S = 0.5
COMMIT_REJOINS = 3  # a commit refused while the group rebalances is tried again after rejoining
REJOIN_WAIT_S = 0.5


class StopRequested(Exception):
    """The supervisor asked the worker to stop while it was waiting."""


class Listener(AsyncConsumerRebalanceListener):
    """Runs on kafka-python's IO thread while the worker's thread is inside poll(), so the
    worker's own state can be changed here without a lock. It only does bookkeeping: anything
    that waited here would hold up the whole group's rebalance."""

    def __init__(self, member: GroupMember) -> None:
        self.member = member

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            self.member.revoked(set(revoked), "revoked")

    async def on_partitions_lost(self, lost: Any) -> None:
        if lost:
            self.member.revoked(set(lost), "lost")

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned:
            self.member.assigned(set(assigned))


class GroupMember:
    """Built in the worker process, after the fork."""

    def __init__(
        self,
        config: ConnectorConfig,
        control: WorkerControl,
        instance_id: str,
        on_revoked: Callable[[set[TopicPartitionKey]], None],
        on_assigned: Callable[[set[TopicPartitionKey]], None] = lambda partitions: None,
        topics: tuple[str, ...] | None = None,
        consumer_overrides: dict[str, Any] | None = None,
        own_topics: frozenset[str] = frozenset(),
    ) -> None:
        """`topics`: what to subscribe to, when not the connector's `topics` (the aggregator adds
        its repartition topics); `consumer_overrides`: settings of its own (read_committed);
        `own_topics`: topics whose records the connector deletes itself once committed (a gap
        there is a transaction marker, then the purge: no loss)."""
        self.config = config
        self.control = control
        self.worker_id = control.worker_id
        self.instance_id = instance_id
        self.on_revoked = on_revoked
        self.on_assigned = on_assigned
        self.topics = topics
        self.consumer_overrides = consumer_overrides or {}
        self.own_topics = own_topics
        self.consumer: Any = None
        self.next_offsets: Offsets = {}  # as read here
        self.committed: Offsets = {}  # as committed here
        self.losses = Losses(self.worker_id)  # records deleted by retention before they were written
        self.refused_commits = 0
        self.owed: Offsets = {}  # written, refused by a rebalance: committed again if still held
        self.rejoins = 0
        self.unstable_since: float | None = None
        self.kafka = Outage(self.worker_id, f"Kafka at {', '.join(config.kafka.bootstrap_servers)}")
        self.while_waiting: Callable[[], None] = lambda: None  # the worker's state report, during waits

    # -- joining ----------------------------------------------------------------------------

    def reach_kafka(self) -> None:
        """Before any Kafka client: a certificate or a password Kafka refuses stops the boot (a
        ConfigError, so no respawn loop); a Kafka that does not answer is waited for."""
        while True:
            try:
                log.debug("worker %d: %s", self.worker_id, kafka_check.check(self.config.kafka))
            except kafka_check.Unreachable as error:
                self.pause(self.kafka.failed(str(error)))
                continue
            self.kafka.ended()
            return

    def join(self) -> None:
        """Create the consumer and subscribe; while Kafka cannot answer, wait for it."""
        from kafka import KafkaConsumer
        from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
        from kafka.errors import KafkaError

        config = self.config
        kwargs = config.kafka.consumer_kwargs()
        kwargs["max_poll_records"] = kwargs.get("max_poll_records", config.worker.batch_max_records)
        kwargs["partition_assignment_strategy"] = (CooperativeStickyAssignor,)
        kwargs.setdefault("heartbeat_interval_ms", HEARTBEAT_INTERVAL_MS)
        kwargs.update(self.consumer_overrides)
        if config.worker.static_membership:
            kwargs["group_instance_id"] = self.instance_id
        while True:
            try:
                self.consumer = KafkaConsumer(**kwargs)
                break
            except KafkaError as error:
                if not getattr(error, "retriable", False):
                    raise
                self.pause(self.kafka.failed(f"{type(error).__name__}: {error}"))
        self.kafka.ended()
        listener = Listener(self)
        if self.topics is not None:
            self.consumer.subscribe(topics=list(self.topics), listener=listener)
        elif config.topics_regex:
            self.consumer.subscribe(pattern=config.topics_regex, listener=listener)
        else:
            self.consumer.subscribe(topics=list(config.topics), listener=listener)
        self.unstable_since = time.monotonic()

    def close(self, leave: bool) -> None:
        """Close the consumer. `leave`: leave the group at once, even as a static member, so the
        partitions move now; a worker about to be replaced in its slot keeps them waiting for
        its successor instead."""
        if self.consumer is None:
            return
        consumer, self.consumer = self.consumer, None
        try:
            if leave and self.config.worker.static_membership:
                _leave_as_static_member(consumer)
            consumer.close(autocommit=False)
        except Exception as exc:
            log.warning("worker %d: closing the consumer: %s", self.worker_id, exc)

    # -- rebalance callbacks (kafka-python's IO thread, inside poll()) ------------------------

    def assigned(self, partitions: set[TopicPartition]) -> None:
        self.losses.assigned(partitions)
        try:
            self.on_assigned({(tp.topic, tp.partition) for tp in partitions})
        except Exception:
            log.exception("worker %d: taking %s failed", self.worker_id, _names(partitions))
        log.info("worker %d: partitions assigned: %s", self.worker_id, _names(partitions))

    def revoked(self, partitions: set[TopicPartition], how: str) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        for key in keys:
            self.next_offsets.pop(key, None)  # its new owner reads on from the last commit
            self.owed.pop(key, None)  # and commits its own
        self.losses.revoked(partitions)
        try:
            self.on_revoked(keys)
        except Exception:
            log.exception("worker %d: letting go of %s failed", self.worker_id, _names(partitions))
        level = logging.DEBUG if self.control.stop_requested else logging.INFO
        log.log(level, "worker %d: partitions %s: %s", self.worker_id, how, _names(partitions))

    # -- poll, commit, wait ----------------------------------------------------------------------

    def poll(self, timeout_s: float, max_records: int) -> dict[TopicPartition, list[Any]]:
        """Records of the partitions this worker holds; rebalance callbacks run in here."""
        polled = self.poll_once(timeout_s, max_records)
        next_offsets = self.next_offsets
        for tp, messages in polled.items():
            key = (tp.topic, tp.partition)
            expected, first = next_offsets.get(key), messages[0].offset
            if expected is not None and first > expected and tp.topic not in self.own_topics:
                self.losses.gap(tp, expected, first)
            next_offsets[key] = messages[-1].offset + 1
        if self.losses:
            self.losses.check(self.consumer, self.commit)
        self.watch_membership()
        return polled

    def poll_once(self, timeout_s: float, max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        """consumer.poll(), waiting out a Kafka that cannot answer (poll raises while it finds
        no coordinator), and joining again as a new member when fenced."""
        from kafka.errors import FencedInstanceIdError, KafkaError

        try:
            polled = self.consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except FencedInstanceIdError as exc:  # another consumer took this worker's group.instance.id
            self.new_consumer(f"fenced out of the group ({exc})")
            return {}
        except KafkaError as exc:
            if not getattr(exc, "retriable", False):
                raise
            self.pause(self.kafka.failed(f"poll: {type(exc).__name__}: {exc}"))
            return {}
        if self.kafka:
            self.kafka.ended()
        if self.owed:
            self.settle_owed()
        return polled

    def settle_owed(self) -> None:
        """Commit again what a rebalance refused, for the partitions still held: on a quiet
        topic no later commit would (Kafka Connect's periodic commit covers this). Not where the
        group has committed as far or further meanwhile: that would move it back."""
        from kafka.errors import KafkaError

        held = self.consumer.assignment()
        due = {}
        try:
            for key, offset in self.owed.items():
                tp = TopicPartition(*key)
                if tp in held:
                    committed = self.consumer.committed(tp)
                    if committed is None or committed < offset:
                        due[key] = offset
        except KafkaError as exc:  # asked again at the next poll
            log.debug("worker %d: reading the group's commits failed: %s", self.worker_id, exc)
            return
        self.owed = {}
        if due:
            log.debug("worker %d: committing again what a rebalance refused: %s", self.worker_id, due)
            self.commit(due)

    def commit(self, offsets: Offsets) -> bool:
        """Commit these next offsets to read, synchronously. False if a rebalance refused the
        commit: a later commit, `settle_owed` while the partition is still held, or its new
        owner covers these records (they are written again, which overwrites: document ids and
        Cassandra keys are deterministic).
        While Kafka cannot answer, wait for it (polling, so the worker stays in the group)."""
        from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError

        rejoins = 0
        while offsets:
            to_commit = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
            try:
                self.consumer.commit(to_commit, timeout_ms=COMMIT_TIMEOUT_MS)
            except RebalanceInProgressError as exc:
                # The group is rebalancing (a worker left, as all do on a stop): once this member
                # has rejoined it still holds what a cooperative rebalance did not move, and
                # commits those, as Kafka's own consumer is told to.
                if rejoins < COMMIT_REJOINS:
                    rejoins += 1
                    log.debug("worker %d: commit waits for a rebalance: %s", self.worker_id, exc)
                    self.rejoin(REJOIN_WAIT_S)
                    held = self.consumer.assignment()
                    offsets = {key: o for key, o in offsets.items() if TopicPartition(*key) in held}
                    continue
                self.refused(offsets, exc)
                return False
            except CommitFailedError as exc:
                self.refused(offsets, exc)
                return False
            except KafkaError as exc:
                if not getattr(exc, "retriable", False):
                    raise
                self.wait(self.kafka.failed(f"commit: {type(exc).__name__}: {exc}"))
                held = self.consumer.assignment()
                offsets = {key: o for key, o in offsets.items() if TopicPartition(*key) in held}
                continue
            self.kafka.ended()
            self.committed.update(offsets)
            return True
        return False

    def refused(self, offsets: Offsets, why: Exception) -> None:
        self.refused_commits += 1
        log.debug("worker %d: commit refused during a rebalance: %s", self.worker_id, why)
        for key, offset in offsets.items():
            self.owed[key] = max(offset, self.owed.get(key, offset))

    def wait(self, seconds: float) -> None:
        """Wait while staying a live member of the group and of the supervisor.

        Polling keeps the worker in the group, and lets a rebalance move partitions away from
        a batch that is stuck. Every partition is paused before each poll, since the assignment
        can grow during a wait, and anything a poll still returns is sought back. At the end
        every partition is sought to the next offset this worker would read: that drops records
        kafka-python 3.0 parked while paused, which it can otherwise fail to hand out again."""
        deadline = time.monotonic() + seconds
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                self.tick()
                self.consumer.pause(*self.consumer.assignment())
                for tp, messages in self.poll_once(min(remaining, PAUSED_POLL_S)).items():
                    self.consumer.seek(tp, messages[0].offset)
                if self.losses:
                    self.losses.check(self.consumer, self.commit)
                self.watch_membership()
        finally:
            self.resume_where_read()

    def rejoin(self, seconds: float) -> None:
        """One poll with every partition paused, so that a rebalance in progress completes;
        unlike wait(), also while stopping (the last commit of a stop comes here)."""
        self.consumer.pause(*self.consumer.assignment())
        try:
            for tp, messages in self.poll_once(seconds).items():
                self.consumer.seek(tp, messages[0].offset)
        finally:
            self.resume_where_read()

    def rewind(self, tp: TopicPartition, offset: int) -> None:
        """Read `tp` again from `offset` (a record that could not be read yet, and those after it)."""
        self.consumer.seek(tp, offset)
        self.next_offsets[(tp.topic, tp.partition)] = offset

    def sit_out_pause(self) -> None:
        """The connector is paused: keep the partitions and read nothing until it is resumed
        (or stopped: StopRequested). The waits poll paused partitions, so the worker stays in
        its group and commits nothing."""
        log.info("worker %d paused", self.worker_id)
        while self.control.paused:
            self.wait(PAUSED_POLL_S)
        log.info("worker %d resumed", self.worker_id)

    def pause(self, seconds: float) -> None:
        """Wait outside the group (before joining it), heartbeating to the supervisor."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.tick()
            time.sleep(min(remaining, PAUSED_POLL_S))

    def tick(self) -> None:
        """One step of a wait: alive to the supervisor, stopped if asked, the state reported."""
        self.control.heartbeat()
        if self.control.stop_requested:
            raise StopRequested()
        self.while_waiting()

    def resume_where_read(self) -> None:
        consumer = self.consumer
        held = consumer.assignment()
        for tp in consumer.paused():
            next_offset = self.next_offsets.get((tp.topic, tp.partition))
            if next_offset is not None and tp in held:
                consumer.seek(tp, next_offset)
        consumer.resume(*consumer.paused())

    # -- the membership itself -----------------------------------------------------------------------

    def watch_membership(self) -> None:
        """A member that stopped heartbeating while poll() goes on returning gets no partitions
        and holds up nobody, but writes nothing: make it join again. kafka-python 3.0.12 can
        end up so (a fenced heartbeat, a heartbeat loop that died; there is no public API to
        see it). A member that could not join for long is replaced by a new consumer."""
        now = time.monotonic()
        state = self.consumer.group_metadata().state
        if state != MemberState.STABLE:
            self.unstable_since = self.unstable_since or now
            limit = max(60.0, 2 * self.consumer.config["session_timeout_ms"] / 1000)
            if now - self.unstable_since > limit and not self.kafka:
                self.new_consumer(
                    f"not a stable member of the group for {now - self.unstable_since:.0f}s ({state})"
                )
            return
        self.unstable_since = None
        trouble = _stuck(self.consumer)
        if trouble is not None:
            self.rejoins += 1
            log.warning("worker %d: out of the group (%s); joining again", self.worker_id, trouble)
            self.consumer._coordinator.reset_generation()

    def new_consumer(self, why: str) -> None:
        self.rejoins += 1
        log.warning("worker %d: %s; starting a new consumer", self.worker_id, why)
        self.close(leave=False)
        self.join()

    def holds_first_partition(self) -> bool:
        """Whether this worker holds partition 0 of the first topic the group reads: true of one
        member of the group at a time (tasks/upkeep.py)."""
        if self.consumer is None:
            return False
        # The first topic that exists: one that has no partitions yet would lead nobody. The
        # cluster's cached metadata is read (kafka-python has no public call that does not block).
        cluster = self.consumer._client.cluster
        for topic in sorted(self.consumer.subscription() or ()):
            if cluster.partitions_for_topic(topic):
                return TopicPartition(topic, 0) in self.consumer.assignment()
        return False

    def membership(self) -> str:
        """ "stable", "rebalancing" or "unjoined", for the worker's state."""
        return (
            str(self.consumer.group_metadata().state).strip("<>") if self.consumer is not None else "unjoined"
        )

    # -- state ------------------------------------------------------------------------------------

    def partitions(self) -> list[dict[str, Any]]:
        """Each partition held, with what this worker committed and the lag behind it.
        Never from consumer.position(): that call refreshes committed offsets and resets
        positions as a side effect."""
        if self.consumer is None:
            return []
        rows = []
        for tp in sorted(self.consumer.assignment()):
            position = self.committed.get((tp.topic, tp.partition))
            highwater = self.consumer.highwater(tp)
            lag = None if highwater is None or position is None else max(0, highwater - position)
            rows.append({"topic": tp.topic, "partition": tp.partition, "committed": position, "lag": lag})
        return rows


def _stuck(consumer: Any) -> str | None:
    """Why a consumer that believes itself a stable member is not heartbeating, or None
    (kafka-python 3.0.12's coordinator, read where it keeps this)."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        return None
    if getattr(coordinator, "_heartbeat_closed", False):
        return None
    if not getattr(coordinator, "_heartbeat_enabled", True):
        return "its heartbeats were switched off"
    loop = getattr(coordinator, "_heartbeat_loop_future", None)
    if loop is not None and loop.is_done:
        return "its heartbeat loop stopped"
    return None


def _leave_as_static_member(consumer: Any) -> None:
    """kafka-python's close() sends LeaveGroup only for dynamic members: a static member's
    partitions would wait session.timeout.ms for it. On a stop for good the worker leaves like a
    dynamic member, naming its group.instance.id, so the broker moves them at once (KIP-345)."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is not None and hasattr(coordinator, "is_dynamic_member"):
        coordinator.is_dynamic_member = lambda: True


def _names(partitions: set[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}-{tp.partition}" for tp in sorted(partitions))


def instance_id(name: str, supervisor_pid: int, worker_id: int) -> str:
    """Stable across a respawn of the same slot; distinct for another `conductor start`."""
    raw = f"{name}-{socket.gethostname()}-{supervisor_pid}-{worker_id}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw)[:249]
