"""Records Kafka's retention deleted before this connector wrote them.

A consumer whose next offset is no longer in the log jumps to the log's start without a word
(Kafka Connect's too). It happens to a connector that was stopped, or was behind, for longer
than the topic keeps its records. conductor says so at ERROR, with the partition and the count,
and keeps the count in the worker's state. Two places show it:
- a partition just assigned whose committed offset is below the log start;
- records that arrive after a gap (the first offset is past the one expected) while the log
  now starts past the expected offset. Gaps also come from compaction and transaction markers,
  which delete nothing from the log's start: those are not losses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka.structs import TopicPartition

from tasks.batch import TopicPartitionKey

log = logging.getLogger("conductor.worker")

GAP_CHECK_INTERVAL_S = 5.0  # at most one request for the log starts this often


class Losses:
    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id
        self.unchecked: set[TopicPartition] = set()  # assigned, committed offset not yet checked
        self.gaps: dict[TopicPartition, list[tuple[int, int]]] = {}  # (expected offset, first one read)
        self.gaps_due = 0.0
        self.lost: dict[TopicPartitionKey, int] = {}

    def __bool__(self) -> bool:
        return bool(self.unchecked) or (bool(self.gaps) and time.monotonic() >= self.gaps_due)

    def assigned(self, partitions: set[TopicPartition]) -> None:
        self.unchecked |= partitions

    def revoked(self, partitions: set[TopicPartition]) -> None:
        self.unchecked -= partitions
        for tp in partitions:
            self.gaps.pop(tp, None)

    def gap(self, tp: TopicPartition, expected: int, first: int) -> None:
        self.gaps.setdefault(tp, []).append((expected, first))

    def check(self, consumer: Any, commit: Callable[[dict[TopicPartitionKey, int]], bool]) -> None:
        """Ask Kafka where the logs start now; report and count what was deleted unread."""
        from kafka.errors import KafkaError

        assigned, gaps = self.unchecked, self.gaps if time.monotonic() >= self.gaps_due else {}
        partitions = list(assigned | set(gaps))
        try:
            starts = consumer.beginning_offsets(partitions)
            committed = {tp: consumer.committed(tp) for tp in assigned}
        except KafkaError as exc:
            log.debug("worker %d: checking for records lost to retention: %s; later", self.worker_id, exc)
            return
        self.unchecked = set()
        if gaps:
            self.gaps, self.gaps_due = {}, time.monotonic() + GAP_CHECK_INTERVAL_S
        jumped: dict[TopicPartitionKey, int] = {}
        for tp, at in committed.items():
            start = starts.get(tp)
            if at is not None and start is not None and at < start:
                self.report(tp, at, start, "")
                jumped[(tp.topic, tp.partition)] = start
        for tp, seen in gaps.items():
            start = starts.get(tp)
            for expected, first in seen:
                if start is not None and expected < start:
                    self.report(tp, expected, min(start, first), " while it was behind")
        if jumped:
            commit(jumped)  # so that no other worker counts the same loss again

    def report(self, tp: TopicPartition, first: int, start: int, when: str) -> None:
        key = (tp.topic, tp.partition)
        self.lost[key] = self.lost.get(key, 0) + start - first
        log.error(
            "worker %d: %s-%d: %d record(s) (offsets %d to %d) were deleted by Kafka's retention before "
            "this connector wrote them%s; they are lost. Reading on from offset %d.",
            self.worker_id,
            tp.topic,
            tp.partition,
            start - first,
            first,
            start - 1,
            when,
            start,
        )
