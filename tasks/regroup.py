"""Records re-keyed by their group travel through the repartition topic in bundles.

Sending one Kafka record costs kafka-python about 25 us, and a regrouped record was sent once
and read back once: half of a worker's time. Since the repartition topic is the aggregator's
own, a batch's records bound for one of its partitions go as one record (a JSON list), written
in the batch's transaction like everything else. Each entry keeps what a dead letter needs: the
record's own topic, partition, offset, timestamp, key and headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from kafka.partitioner.default import murmur2

from conductor.records import Record
from tasks.aggregation import check_group, typed
from tasks.topology import Regroup

BUNDLE_ENTRIES = 1000  # a bundle stays well under Kafka's default 1 MB message
CACHE_LIMIT = 100_000  # groups whose partition is remembered


class Bundler:
    """The bundles of the current batch, by repartition topic and partition."""

    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions  # repartition topic -> its partition count
        self.pending: dict[tuple[str, int], list[list[Any]]] = {}
        self.places: dict[tuple[str, tuple[Any, ...]], int] = {}

    def add(self, regroup: Regroup, record: Record, value: dict) -> None:
        """Bundle a decoded record for the partition of its group; RecordError if it has none."""
        group = tuple(getter(value) for getter in regroup.getters)
        place = (regroup.topic, typed(group))  # true and 1 are two groups, not one cache entry
        partition = self.places.get(place)
        if partition is None:
            check_group(group, regroup.fields)
            # Kafka's own partitioner, on the group as JSON: the same group, the same partition.
            hashed = murmur2(orjson.dumps(list(group))) & 0x7FFFFFFF
            partition = hashed % self.partitions[regroup.topic]
            if len(self.places) >= CACHE_LIMIT:
                self.places.clear()
            self.places[place] = partition
        bundles = self.pending.setdefault((regroup.topic, partition), [[]])
        if len(bundles[-1]) >= BUNDLE_ENTRIES:
            bundles.append([])
        bundles[-1].append(entry(record, value))

    def drain(self) -> Iterator[tuple[str, int, bytes]]:
        """(topic, partition, bundle) for everything added since the last drain."""
        pending, self.pending = self.pending, {}
        for (topic, partition), bundles in pending.items():
            for bundle in bundles:
                yield topic, partition, orjson.dumps(bundle)


def entry(record: Record, value: dict) -> list[Any]:
    key = None if record.key is None else record.key.decode("latin-1")  # any bytes, back as they were
    headers = [[name, None if v is None else v.decode("latin-1")] for name, v in record.headers]
    return [record.topic, record.partition, record.offset, record.timestamp, key, headers, value]


def unbundle(message: Any) -> Iterator[Record]:
    """The records of one bundle, as they were read from their input topic."""
    for topic, partition, offset, timestamp, key, headers, value in orjson.loads(message.value):
        yield Record(
            topic,
            partition,
            offset,
            timestamp,
            None if key is None else key.encode("latin-1"),
            value,
            [(name, None if v is None else v.encode("latin-1")) for name, v in headers],
            orjson.dumps(value),
        )
