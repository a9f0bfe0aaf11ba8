"""What a worker holds between polls: routed records, records that failed before the sink,
and the highest offset seen per partition. Flushed as one unit."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from conductor.routes import Route
from sinks.base import Failure
from tasks.records import Record

TopicPartitionKey = tuple[str, int]


@dataclass
class PendingBatch:
    writes: list[tuple[Record, Route]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    last_offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    records: int = 0
    size_bytes: int = 0
    started: float = 0.0
    # Partitions revoked while this batch was being written: another worker owns them now, so
    # their records are not retried and their offsets are not committed from here.
    released: set[TopicPartitionKey] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.records > 0

    def note(self, key: TopicPartitionKey, last_offset: int, records: int, size: int) -> None:
        """Account for one partition's share of a poll (once per partition, not per record)."""
        if not self.records:
            self.started = time.monotonic()
        self.records += records
        self.size_bytes += size
        self.last_offsets[key] = last_offset

    def partitions(self) -> set[TopicPartitionKey]:
        return set(self.last_offsets)

    def owned(self, key: TopicPartitionKey) -> bool:
        return key not in self.released

    def offsets_to_commit(self) -> dict[TopicPartitionKey, int]:
        return {key: offset for key, offset in self.last_offsets.items() if key not in self.released}


def commit_offsets_before(batch: PendingBatch, failed: list[Failure]) -> dict[TopicPartitionKey, int]:
    """Offsets to commit when the task fails: per partition, everything before the first
    failed record (the next offset to read is that record's); all of a clean partition."""
    first_failed: dict[TopicPartitionKey, int] = {}
    for failure in failed:
        key = (failure.record.topic, failure.record.partition)
        first_failed[key] = min(first_failed.get(key, failure.record.offset), failure.record.offset)
    return {key: first_failed.get(key, last + 1) for key, last in batch.offsets_to_commit().items()}
