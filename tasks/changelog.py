"""The aggregator's Kafka plumbing around its state: internal and output topics made at start,
open windows read back from the changelogs, and repartition records the group has committed
deleted. Each step runs outside the per-record path."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from conductor.admin import admin_client, ensure_topic, retrying
from conductor.config import KafkaSettings
from tasks.aggregation import PartitionState, Plan
from tasks.topology import CHANGELOG_CONFIGS, REPARTITION_CONFIGS, Topology

log = logging.getLogger("conductor.worker")

StateKey = tuple[int, int]  # (plan index, partition)


def create_topics(kafka: KafkaSettings, topology: Topology, wait: Callable[[str], None]) -> dict[str, int]:
    """Repartition topics and changelogs with their input's partitions, and missing outputs;
    returns the partitions of each repartition topic."""
    admin = admin_client(kafka.admin_kwargs())
    try:
        counts = partition_counts(admin, {p.statement.input_topic for p in topology.plans}, wait)
        for regroup in topology.regroups:
            ensure_topic(admin, regroup.topic, counts[regroup.source], -1, REPARTITION_CONFIGS)
        for topic, plans in topology.aggregating.items():
            for plan in plans:
                changelog = topology.changelogs[plan.index]
                ensure_topic(admin, changelog, counts[topology.source_of[topic]], -1, CHANGELOG_CONFIGS)
        for output in topology.outputs:
            ensure_topic(admin, output, max(counts.values()), -1)
    finally:
        admin.close()
    return {regroup.topic: counts[regroup.source] for regroup in topology.regroups}


def partition_counts(admin: Any, topics: Iterable[str], wait: Callable[[str], None]) -> dict[str, int]:
    """Partitions of each input topic; one that does not exist yet is waited for."""
    counts: dict[str, int] = {}
    for topic in topics:
        while True:
            found = retrying(lambda t=topic: admin.describe_topics([t]), f"describe topic {topic}")
            partitions = found[0].get("partitions") or [] if found else []
            if found and not found[0].get("error_code") and partitions:
                counts[topic] = len(partitions)
                break
            wait(topic)
    return counts


def read_changelogs(
    kafka: KafkaSettings, topology: Topology, keys: Iterable[StateKey], heartbeat: Callable[[], None]
) -> tuple[dict[StateKey, PartitionState], int]:
    """The open windows of these (statement, partition) pairs, read back from their changelogs
    (read_committed: exactly the state of the committed offsets); and how many entries it read."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    wanted = {TopicPartition(topology.changelogs[i], p): (i, p) for i, p in keys}
    plans: dict[int, Plan] = {plan.index: plan for plan in topology.plans}
    states = {key: PartitionState(plans[key[0]]) for key in wanted.values()}
    kwargs = kafka.consumer_kwargs()
    for key in ("group_instance_id", "partition_assignment_strategy"):
        kwargs.pop(key, None)
    kwargs.update(group_id=None, isolation_level="read_committed", enable_auto_commit=False)
    reader = KafkaConsumer(**kwargs)
    entries = 0
    try:
        reader.assign(list(wanted))
        reader.seek_to_beginning(*wanted)
        ends = reader.end_offsets(list(wanted))
        remaining = {tp for tp in wanted if ends[tp] > 0}
        while remaining:
            heartbeat()
            for tp, messages in reader.poll(timeout_ms=500).items():
                state = states[wanted[tp]]
                for message in messages:
                    value = None if message.value is None else orjson.loads(message.value)
                    state.restore(orjson.loads(message.key), value)
                    entries += 1
            # A partition's last offsets can be transaction markers, which no poll returns.
            remaining = {tp for tp in remaining if reader.position(tp) < ends[tp]}
    finally:
        reader.close()
    return states, entries


def purge_committed(kafka: KafkaSettings, consumer: Any, topics: set[str], worker_id: int) -> None:
    """Delete what the group has committed from the repartition partitions this worker reads."""
    from kafka.structs import TopicPartition

    offsets = {}
    for tp in consumer.assignment():
        if tp.topic in topics and (committed := consumer.committed(tp)):
            offsets[TopicPartition(tp.topic, tp.partition)] = committed
    if not offsets:
        return
    admin = admin_client(kafka.admin_kwargs())
    try:
        admin.delete_records(offsets)
    except Exception as exc:  # purging is housekeeping: the next pass tries again
        log.debug("worker %d: purging repartition records: %s", worker_id, exc)
    finally:
        admin.close()
