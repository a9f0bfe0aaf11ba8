"""What a sink worker holds between polls: routed records, records that failed before the sink,
and the highest offset read per partition. Written and committed as one unit."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from conductor.records import Record
from conductor.routes import Route
from sinks.base import Failure

TopicPartitionKey = tuple[str, int]


@dataclass
class PendingBatch:
    writes: list[tuple[Record, Route]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    last_offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    shares: dict[TopicPartitionKey, tuple[int, int]] = field(default_factory=dict)  # records, bytes
    records: int = 0
    size_bytes: int = 0
    started: float = 0.0  # monotonic, when its first record was read
    write_started: float = 0.0  # monotonic, when it went in flight
    # Partitions revoked while this batch was being written: another worker owns them now, so
    # their records are not written again and their offsets are not committed from here.
    released: set[TopicPartitionKey] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.records > 0

    def note(self, key: TopicPartitionKey, last_offset: int, records: int, size: int) -> None:
        """Account for one partition's share of a poll (once per partition, not per record)."""
        if not self.records:
            self.started = time.monotonic()
        self.records += records
        self.size_bytes += size
        held_records, held_bytes = self.shares.get(key, (0, 0))
        self.shares[key] = (held_records + records, held_bytes + size)
        self.last_offsets[key] = last_offset

    def drop(self, keys: set[TopicPartitionKey]) -> None:
        """Forget what was read from these partitions (revoked before this batch was written:
        their new owner reads them again from the last commit). New lists: whoever holds the
        old `writes` can tell it changed."""
        keys = keys & set(self.last_offsets)
        if not keys:
            return
        self.writes = [(r, route) for r, route in self.writes if r.consumed not in keys]
        self.failures = [f for f in self.failures if f.record.consumed not in keys]
        for key in keys:
            records, size = self.shares.pop(key)
            self.records -= records
            self.size_bytes -= size
            del self.last_offsets[key]

    def partitions(self) -> set[TopicPartitionKey]:
        return set(self.last_offsets)

    def owned(self, key: TopicPartitionKey) -> bool:
        return key not in self.released

    def offsets_to_commit(self) -> dict[TopicPartitionKey, int]:
        """The next offset to read, per partition still owned: all of the batch was settled."""
        return {key: offset + 1 for key, offset in self.last_offsets.items() if key not in self.released}

    def offsets_before(self, failed: list[Failure]) -> dict[TopicPartitionKey, int]:
        """The next offset to read when the task fails: per partition, the first failed record
        (everything before it was written); all of a clean partition."""
        first_failed: dict[TopicPartitionKey, int] = {}
        for failure in failed:
            key = failure.record.consumed
            first_failed[key] = min(first_failed.get(key, failure.record.offset), failure.record.offset)
        return {key: first_failed.get(key, offset) for key, offset in self.offsets_to_commit().items()}
