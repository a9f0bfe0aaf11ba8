"""`conductor start` end to end: Kafka -> workers -> Elasticsearch, against the real servers."""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import UTC, datetime

import pytest
from elasticsearch import Elasticsearch
from support.pipeline import (
    committed_offsets,
    create_topic,
    es_count,
    produce,
    reading,
    unique,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.servers

DAY_MS = 86_400_000
# 27 Dec 2025 .. 30 Dec 2025 (UTC): covers the week-based-year trap of Java's YYYY (29-31 Dec).
START_MS = int(datetime(2025, 12, 27, tzinfo=UTC).timestamp() * 1000)


def readings_over_days(count: int, days: int = 4) -> list[tuple[bytes, bytes, int]]:
    step = days * DAY_MS // count
    return [
        (f"sensor-{n % 500:04d}".encode(), reading(n, START_MS + n * step), START_MS + n * step)
        for n in range(count)
    ]


def expected_daily_counts(records: list[tuple[bytes, bytes, int]], prefix: str) -> Counter:
    return Counter(f"{prefix}_{datetime.fromtimestamp(ts / 1000, UTC):%Y-%m-%d}" for _, _, ts in records)


def daily_counts(url: str, pattern: str) -> Counter:
    client = Elasticsearch(url)
    try:
        client.indices.refresh(index=pattern)
        rows = client.cat.indices(index=pattern, format="json", h="index,docs.count")
        return Counter({row["index"]: int(row["docs.count"]) for row in rows})
    finally:
        client.close()


def delete_indexes(url: str, pattern: str) -> None:
    client = Elasticsearch(url)
    try:
        client.indices.delete(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    finally:
        client.close()


@pytest.fixture
def index_prefix(elasticsearch: str):
    prefix = unique("readings").replace("-", "_")
    yield prefix
    delete_indexes(elasticsearch, f"{prefix}*")


def test_100k_readings_three_workers_land_in_their_daily_indexes(
    kafka, elasticsearch, conductors, tmp_path, index_prefix
) -> None:
    topic = create_topic(kafka, partitions=6)
    records = readings_over_days(100_000)
    produce(kafka, topic, records)
    name = unique("es-100k")
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index_prefix} SELECT * FROM {topic} "
        "PK sensor_id, reading_id WITHINDEXSUFFIX=_{YYYY-MM-dd}",
    )
    conductor = conductors(config, workers=3)
    wait_for(lambda: es_count(elasticsearch, f"{index_prefix}_*") >= 100_000, 240, "100,000 documents")
    wait_for(
        lambda: sum(committed_offsets(kafka, f"connect-{name}").values()) == 100_000,
        30,
        "offsets committed up to the end of every partition",
    )
    # The state files trail the work by up to one report (2 s), longer on a loaded machine.
    wait_for(lambda: len(conductor.partitions()) == 6, 15, "every partition held by a running worker")
    assert conductor.stop() == 0
    assert es_count(elasticsearch, f"{index_prefix}_*") == 100_000
    expected = expected_daily_counts(records, index_prefix)
    assert f"{index_prefix}_2025-12-29" in expected  # calendar year, not Java's week-based 2026
    assert daily_counts(elasticsearch, f"{index_prefix}_*") == expected


def test_kill_9_of_a_worker_mid_run_loses_and_duplicates_nothing(
    kafka, elasticsearch, conductors, tmp_path, index_prefix
) -> None:
    topic = create_topic(kafka, partitions=6)
    total = 60_000
    produce(kafka, topic, readings_over_days(total))
    name = unique("es-kill")
    # No PK: the document id is topic-partition-offset, so a re-delivered record overwrites
    # itself and the count shows both a loss (below) and a duplicate (above).
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index_prefix} SELECT * FROM {topic}",
        connect__elastic__batch__size=500,
    )
    conductor = conductors(config, workers=3)
    wait_for(lambda: es_count(elasticsearch, index_prefix) > total // 10, 120, "the first documents")
    victim = conductor.worker_pids()[1]
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: len(conductor.worker_pids()) == 3 and victim not in conductor.worker_pids(),
        60,
        "the supervisor to respawn the killed worker",
    )
    wait_for(
        lambda: sum(committed_offsets(kafka, f"connect-{name}").values()) == total,
        180,
        "every offset committed",
    )
    assert es_count(elasticsearch, index_prefix) == total
    assert conductor.stop() == 0
    assert "killed by SIGKILL" in conductor.output()


def test_sigterm_commits_exactly_what_was_written_and_a_restart_resumes(
    kafka, elasticsearch, conductors, tmp_path, index_prefix
) -> None:
    topic = create_topic(kafka, partitions=6)
    total = 60_000
    produce(kafka, topic, readings_over_days(total))
    name = unique("es-term")
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index_prefix} SELECT * FROM {topic}",
        connect__elastic__batch__size=500,
    )
    first = conductors(config, workers=3, label="first")
    wait_for(lambda: es_count(elasticsearch, index_prefix) > total // 10, 120, "the first documents")
    assert first.stop() == 0
    committed = committed_offsets(kafka, f"connect-{name}")
    written = es_count(elasticsearch, index_prefix)
    assert 0 < written < total, "stop mid-run: some but not all records written"
    # Without a PK the id is topic-partition-offset: per partition, the documents written must
    # be exactly offsets 0 .. committed-1.
    assert per_partition_documents(elasticsearch, index_prefix, topic) == {
        p: c for p, c in committed.items() if c
    }
    assert sum(committed.values()) == written

    second = conductors(config, workers=3, label="second")
    wait_for(
        lambda: sum(committed_offsets(kafka, f"connect-{name}").values()) == total,
        180,
        "the restart to commit the rest",
    )
    assert es_count(elasticsearch, index_prefix) == total
    assert second.stop() == 0


def per_partition_documents(url: str, index: str, topic: str) -> dict[int, int]:
    """Partition -> (highest offset + 1) of the documents, checked to have no gap."""
    client = Elasticsearch(url)
    try:
        client.indices.refresh(index=index)
        counts: dict[int, list[int]] = {}
        for hit in _scan_ids(client, index):
            partition, offset = map(int, hit.removeprefix(f"{topic}-").split("-"))
            counts.setdefault(partition, []).append(offset)
    finally:
        client.close()
    result = {}
    for partition, offsets in counts.items():
        assert sorted(offsets) == list(range(len(offsets))), f"gap or duplicate in partition {partition}"
        result[partition] = len(offsets)
    return result


def _scan_ids(client: Elasticsearch, index: str):
    from elasticsearch.helpers import scan

    for hit in scan(client, index=index, query={"query": {"match_all": {}}}, _source=False, size=5000):
        yield hit["_id"]


def test_two_conductor_processes_share_the_partitions(
    kafka, elasticsearch, conductors, tmp_path, index_prefix
) -> None:
    topic = create_topic(kafka, partitions=6)
    total = 60_000
    name = unique("es-two")
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index_prefix} SELECT * FROM {topic}",
        connect__elastic__batch__size=500,
    )
    one = conductors(config, workers=2, label="one")
    two = conductors(config, workers=2, label="two")
    wait_for(
        lambda: one.partitions() and two.partitions() and len(one.partitions() | two.partitions()) == 6,
        90,
        "both processes to hold partitions of the group",
    )
    assert not one.partitions() & two.partitions()
    produce(kafka, topic, readings_over_days(total))
    wait_for(
        lambda: sum(committed_offsets(kafka, f"connect-{name}").values()) == total,
        180,
        "every offset committed",
    )
    assert es_count(elasticsearch, index_prefix) == total
    assert one.stop() == 0 and two.stop() == 0
    written = {
        label: sum(s.get("written", 0) for s in c.states()) for label, c in (("one", one), ("two", two))
    }
    assert written["one"] > 0 and written["two"] > 0, written
    assert sum(written.values()) >= total, written


def test_a_stopped_conductor_hands_its_partitions_over_at_once(
    kafka, elasticsearch, conductors, tmp_path, index_prefix
) -> None:
    """Workers are static group members by default; on SIGTERM they still leave the group, so
    their partitions move now, not after session.timeout.ms (here 60 s)."""
    topic = create_topic(kafka, partitions=6)
    name = unique("es-handover")
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index_prefix} SELECT * FROM {topic}",
        consumer__override__session__timeout__ms=60_000,
    )
    one = conductors(config, workers=2, label="one")
    two = conductors(config, workers=1, label="two")
    wait_for(
        lambda: len(one.partitions() | two.partitions()) == 6 and one.partitions() and two.partitions(),
        90,
        "both processes to hold partitions of the group",
    )
    assert one.stop() == 0
    wait_for(
        lambda: len(two.partitions()) == 6,
        25,
        "the remaining process to hold every partition (did the stopped static members leave?)",
    )
    produce(kafka, topic, readings_over_days(3_000))
    wait_for(
        lambda: es_count(elasticsearch, index_prefix) == 3_000,
        60,
        "every reading written by the other process",
    )
    assert two.stop() == 0
