"""A worker reads the next batch while its last one is written (tasks/writer.py): offsets are
still committed only after their bulk request answered, in order; a SIGTERM waits for the
batch in flight and writes the one read meanwhile; a rebalance while a batch is in flight
leaves the revoked partitions to their new owner. End to end, against the real servers.

How a bulk request is held in flight on a healthy Elasticsearch: its index is created with its
primary shard held unassigned (an allocation filter no node matches), so the request waits for
the shard (up to a minute) and answers once make_writable() lifts the filter. Records one
day apart go to daily indexes (WITHINDEXSUFFIX), so each index lets one batch through.
"""

from __future__ import annotations

import signal
import time

import pytest
from elasticsearch import Elasticsearch
from support.outages import create_unwritable_index, make_writable
from support.pipeline import (
    committed_offsets,
    create_topic,
    end_offsets,
    es_count,
    produce,
    reading,
    unique,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.servers

DAY_MS = 86_400_000
FIRST_DAY_MS = 1_766_793_600_000  # 2025-12-27 00:00 UTC
DAYS = ("2025-12-27", "2025-12-28", "2025-12-29")
BATCH = 400  # records per batch, and per day: one batch per daily index
HELD_S = 3.0  # how long a held state is watched for a commit that must not come


def one_batch_a_day() -> list[tuple[bytes, bytes, int]]:
    records = []
    for n in range(BATCH * len(DAYS)):
        stamp = FIRST_DAY_MS + (n // BATCH) * DAY_MS + n
        records.append((f"sensor-{n % 50:04d}".encode(), reading(n, stamp), stamp))
    return records


@pytest.fixture
def daily(elasticsearch: str):
    """The prefix of three daily indexes, created unwritable; all deleted after the test (an
    unassigned primary leaves the cluster red for the next test)."""
    prefix = unique("overlap").replace("-", "_")
    for day in DAYS:
        create_unwritable_index(elasticsearch, f"{prefix}_{day}")
    yield prefix
    client = Elasticsearch(elasticsearch, request_timeout=10)
    try:
        client.indices.delete(index=f"{prefix}_*", ignore_unavailable=True, allow_no_indices=True)
    finally:
        client.close()


def daily_config(tmp_path, name: str, topic: str, prefix: str, elasticsearch: str, kafka: str):
    return write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {prefix} SELECT * FROM {topic} WITHINDEXSUFFIX=_{{YYYY-MM-dd}}",
        connect__elastic__batch__size=BATCH,
    )


def hundred_per_partition(kafka: str, topic: str, first: int) -> None:
    """Readings first .. first+99 of each of the 4 partitions (no key, no PK: the document id
    is topic-partition-offset)."""
    for partition in range(4):
        stamps = [FIRST_DAY_MS + first + n for n in range(100)]
        produce(kafka, topic, [(None, reading(n, ts), ts) for n, ts in enumerate(stamps)], partition)


def worker_state(conductor) -> dict:
    (state,) = conductor.states() or [{}]
    return state


def assert_committed_stays(kafka: str, group: str, expected: dict[int, int]) -> None:
    deadline = time.monotonic() + HELD_S
    while time.monotonic() < deadline:
        assert committed_offsets(kafka, group) == expected, "committed before its bulk request answered"
        time.sleep(0.3)


def test_offsets_are_committed_only_once_their_bulk_request_answered(
    kafka, elasticsearch, conductors, tmp_path, daily
) -> None:
    topic = create_topic(kafka, partitions=1, prefix="overlap")
    produce(kafka, topic, one_batch_a_day())
    name = unique("overlap")
    group = f"connect-{name}"
    conductor = conductors(daily_config(tmp_path, name, topic, daily, elasticsearch, kafka), workers=1)

    # The first batch is in flight (held), the second was read meanwhile and waits its turn.
    wait_for(lambda: worker_state(conductor).get("read") == 2 * BATCH, 60, "two batches read")
    assert worker_state(conductor)["written"] == 0
    assert_committed_stays(kafka, group, {})

    for day, through in zip(DAYS, (1, 2, 3), strict=True):
        make_writable(elasticsearch, f"{daily}_{day}")
        wait_for(
            lambda through=through: committed_offsets(kafka, group) == {0: through * BATCH},
            60,
            f"the batch of {day} committed",
        )
        assert es_count(elasticsearch, f"{daily}_{day}") == BATCH
        if through < len(DAYS):  # the next batch is in flight, held by the next day's index
            assert_committed_stays(kafka, group, {0: through * BATCH})
    assert conductor.stop() == 0
    assert es_count(elasticsearch, f"{daily}_*") == len(DAYS) * BATCH


def test_sigterm_waits_for_the_batch_in_flight_and_writes_the_one_read_meanwhile(
    kafka, elasticsearch, conductors, tmp_path, daily
) -> None:
    topic = create_topic(kafka, partitions=1, prefix="overlap-term")
    produce(kafka, topic, one_batch_a_day())
    name = unique("overlap-term")
    conductor = conductors(daily_config(tmp_path, name, topic, daily, elasticsearch, kafka), workers=1)
    wait_for(lambda: worker_state(conductor).get("read") == 2 * BATCH, 60, "two batches read")

    assert conductor.process is not None
    conductor.process.send_signal(signal.SIGTERM)
    time.sleep(HELD_S)
    assert conductor.process.poll() is None, "the worker waits for the answer of the batch in flight"
    assert committed_offsets(kafka, f"connect-{name}") == {}
    make_writable(elasticsearch, f"{daily}_{DAYS[0]}")
    make_writable(elasticsearch, f"{daily}_{DAYS[1]}")

    assert conductor.wait(60) == 0
    assert committed_offsets(kafka, f"connect-{name}") == {0: 2 * BATCH}
    assert [es_count(elasticsearch, f"{daily}_{day}") for day in DAYS[:2]] == [BATCH, BATCH]
    state = worker_state(conductor)
    assert (state["state"], state["read"], state["written"]) == ("stopped", 2 * BATCH, 2 * BATCH)


def test_partitions_revoked_while_a_batch_is_in_flight_are_left_to_their_new_owner(
    kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    """The old owner's batch answers after the new owner committed further: the old owner must
    not commit the revoked partitions' older offsets over the new owner's. The two conductors
    share the connector's name (its group) but write to two indexes: the old owner's is held."""
    topic = create_topic(kafka, partitions=4, prefix="overlap-revoke")
    held = f"{index}_held"
    create_unwritable_index(elasticsearch, held)
    name = unique("overlap-revoke")
    group = f"connect-{name}"
    try:
        hundred_per_partition(kafka, topic, 0)
        (tmp_path / "old").mkdir()
        (tmp_path / "new").mkdir()
        settings = {"connect__elastic__batch__size": 10_000}  # all 400 records in one batch
        old = conductors(
            write_config(
                tmp_path / "old",
                name,
                topic,
                kcql=f"INSERT INTO {held} SELECT * FROM {topic}",
                elasticsearch=elasticsearch,
                kafka=kafka,
                **settings,
            ),
            workers=1,
            label="old",
        )
        wait_for(lambda: worker_state(old).get("read") == 400, 60, "the old owner's batch in flight")
        new = conductors(
            write_config(
                tmp_path / "new",
                name,
                topic,
                kcql=f"INSERT INTO {index} SELECT * FROM {topic}",
                elasticsearch=elasticsearch,
                kafka=kafka,
                **settings,
            ),
            workers=1,
            label="new",
        )
        # The old owner polls while its batch is in flight, so the rebalance goes through now.
        wait_for(lambda: len(new.partitions()) == 2, 60, "the newcomer holding two partitions")
        moved = new.partitions()
        wait_for(lambda: es_count(elasticsearch, index) == 200, 60, "the newcomer's first batch")
        hundred_per_partition(kafka, topic, 100)
        wait_for(
            lambda: (
                {p: o for p, o in committed_offsets(kafka, group).items() if p in moved}
                == {p: 200 for p in moved}
            ),
            60,
            "the newcomer committing past the old owner's batch",
        )
        assert not set(committed_offsets(kafka, group)) - moved, "nothing committed by the held owner yet"

        make_writable(elasticsearch, held)
        ends = end_offsets(kafka, topic)
        wait_for(lambda: committed_offsets(kafka, group) == ends, 60, "every partition committed to its end")
        assert_committed_stays(kafka, group, ends)  # the old batch settled without going back
        assert "partitions revoked" in old.full_log()
        assert new.stop() == 0
        assert old.stop() == 0
    finally:
        client = Elasticsearch(elasticsearch, request_timeout=10)
        try:
            client.indices.delete(index=held, ignore_unavailable=True)
        finally:
            client.close()
