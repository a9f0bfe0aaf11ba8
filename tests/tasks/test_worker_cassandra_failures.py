"""`conductor start` into Cassandra when a record does not fit the table: a value of the wrong
type for its column, or a record without its primary-key column, under NOOP, the dead-letter
topic and THROW, end to end against the real Kafka and Cassandra.

The Cassandra counterpart of the NOOP / dead-letter / THROW tests of test_worker_failures.py.
Layout of the topic: PARTITIONS partitions of PER_PARTITION records each; every record is a good
reading except the one at BAD_OFFSET of BAD_PARTITION. The good reading at partition p, offset o
has reading_id p * 1000 + o, so a row of the table tells which record wrote it.
"""

from __future__ import annotations

from datetime import UTC

import orjson
import pytest
from cassandra.cluster import Cluster
from support.pipeline import (
    assert_gave_up_after_one_restart,
    assert_names_reason,
    committed_offsets,
    create_topic,
    end_offsets,
    produce,
    read_partition,
    reading,
    unique,
    wait_for,
    write_cassandra_config,
)

pytestmark = pytest.mark.servers

TS = 1_767_000_000_000  # a fixed record timestamp (Dec 2025)
PARTITIONS = 3
PER_PARTITION = 700
BAD_PARTITION = 1
BAD_OFFSET = 350
ENDS = {p: PER_PARTITION for p in range(PARTITIONS)}
GOOD = [
    (p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION) if (p, o) != (BAD_PARTITION, BAD_OFFSET)
]
BAD_WHERE = f"{BAD_PARTITION}@{BAD_OFFSET}"  # after "<topic>-"
BAD_KEY = b"bad-record-key"
KCQL = "INSERT INTO readings SELECT sensor_id, reading_id, celsius, timestamp AS ts FROM {topic}"

# kind -> (the bad record's value, substrings its error must name; {table} is keyspace.readings):
# text in a double column, text in a bigint clustering-key column, no partition-key field.
# The reasons are what sinks/cassandra.py bind_insert() puts in the Failure.
BAD_RECORDS: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "wrong_type": (
        orjson.dumps({"reading_id": 999_999, "sensor_id": "sensor-bad", "celsius": "hot", "timestamp": TS}),
        ("column celsius (double)", "cannot convert 'hot'"),
    ),
    "wrong_type_key": (
        orjson.dumps({"reading_id": "ten", "sensor_id": "sensor-bad", "celsius": 16.0, "timestamp": TS}),
        ("column reading_id (bigint)", "cannot convert 'ten'"),
    ),
    "missing_pk": (
        orjson.dumps({"reading_id": 999_999, "celsius": 16.0, "timestamp": TS}),
        ("missing primary key column sensor_id", "(table {table})"),
    ),
}

CONTEXT_HEADERS = (
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.connector.name",
    "__connect.errors.stage",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
    "__connect.errors.exception.stacktrace",
)


# -- helpers ------------------------------------------------------------------------------------


def number(partition: int, offset: int) -> int:
    return partition * 1000 + offset


def row_of(partition: int, offset: int) -> tuple[str, int, float, int]:
    """The row the good reading at partition/offset writes: sensor_id, reading_id, celsius, ts."""
    n = number(partition, offset)
    value = orjson.loads(reading(n, TS + n))
    return value["sensor_id"], n, value["celsius"], TS + n


def produce_layout(kafka: str, topic: str, bad_value: bytes) -> None:
    for p in range(PARTITIONS):
        records = []
        for o in range(PER_PARTITION):
            if (p, o) == (BAD_PARTITION, BAD_OFFSET):
                records.append((BAD_KEY, bad_value, TS))
            else:
                n = number(p, o)
                records.append((f"sensor-{n % 500:04d}".encode(), reading(n, TS + n), TS + n))
        produce(kafka, topic, records, partition=p)
    assert end_offsets(kafka, topic) == ENDS


def reasons_for(kind: str, keyspace: str) -> tuple[str, ...]:
    return tuple(reason.format(table=f"{keyspace}.readings") for reason in BAD_RECORDS[kind][1])


def rows(cassandra, keyspace: str) -> set[tuple[str, int, float, int]]:
    hosts, port = cassandra
    cluster = Cluster(list(hosts), port=port)
    try:
        session = cluster.connect()
        result = session.execute(
            f"SELECT sensor_id, reading_id, celsius, ts FROM {keyspace}.readings", timeout=60
        )
        return {
            (
                row.sensor_id,
                row.reading_id,
                row.celsius,
                int(row.ts.replace(tzinfo=UTC).timestamp() * 1000),
            )
            for row in result
        }
    finally:
        cluster.shutdown()


@pytest.fixture
def keyspace(cassandra):
    hosts, port = cassandra
    name = unique("ks_fail").replace("-", "_")
    cluster = Cluster(list(hosts), port=port)
    try:
        session = cluster.connect()
        session.execute(
            f"CREATE KEYSPACE {name} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}",
            timeout=60,
        )
        session.execute(
            f"CREATE TABLE {name}.readings (sensor_id text, reading_id bigint, celsius double, "
            "ts timestamp, PRIMARY KEY ((sensor_id), reading_id))",
            timeout=60,
        )
    finally:
        cluster.shutdown()
    yield name
    cluster = Cluster(list(hosts), port=port)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)
    finally:
        cluster.shutdown()


def source(kafka: str, prefix: str, kind: str, bad_value: bytes) -> str:
    topic = create_topic(kafka, partitions=PARTITIONS, prefix=f"{prefix}-{kind.replace('_', '-')}")
    produce_layout(kafka, topic, bad_value)
    return topic


# -- NOOP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_noop_skips_the_bad_record_and_writes_every_other_row(
    kind, kafka, cassandra, conductors, tmp_path, keyspace
) -> None:
    bad_value = BAD_RECORDS[kind][0]
    reasons = reasons_for(kind, keyspace)
    topic = source(kafka, "cass-noop", kind, bad_value)
    name = unique(f"cass-noop-{kind.replace('_', '-')}")
    config = write_cassandra_config(
        tmp_path,
        name,
        topic,
        KCQL.format(topic=topic),
        cassandra,
        kafka,
        keyspace,
        connect__cassandra__error__policy="NOOP",
    )
    conductor = conductors(config, workers=1)

    wait_for(
        lambda: committed_offsets(kafka, f"connect-{name}") == ENDS,
        60,
        f"offsets {ENDS} committed (the bad record skipped, not blocking)",
    )
    assert rows(cassandra, keyspace) == {row_of(p, o) for p, o in GOOD}, "exactly the good rows"
    wait_for(lambda: conductor.total("skipped") == 1, 30, "the worker's state to count 1 skipped record")
    wait_for(
        lambda: conductor.total("written") == len(GOOD),
        30,
        f"the worker's state to count {len(GOOD)} written",
    )
    assert conductor.total("dead_lettered") == 0
    assert conductor.process.poll() is None, f"NOOP must keep the task running; log:\n{conductor.output()}"
    (worker,) = conductor.states()
    assert worker["state"] == "running", worker
    assert f"{topic}-{BAD_WHERE}" in (worker.get("last_error") or ""), worker
    assert_names_reason(worker["last_error"], reasons)
    log = conductor.full_log()
    assert f"skipped (NOOP policy) 1 record(s) failed: {topic}-{BAD_WHERE}: " in log, (
        "the skipped record is logged"
    )
    assert_names_reason(log, reasons)

    assert conductor.stop() == 0
    assert committed_offsets(kafka, f"connect-{name}") == ENDS


# -- the dead-letter topic --------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_dead_letter_topic_takes_the_bad_record_with_context_headers(
    kind, kafka, cassandra, conductors, tmp_path, keyspace
) -> None:
    bad_value = BAD_RECORDS[kind][0]
    reasons = reasons_for(kind, keyspace)
    topic = source(kafka, "cass-dlq-src", kind, bad_value)
    dlq = create_topic(kafka, partitions=1, prefix=f"cass-dlq-{kind.replace('_', '-')}")
    name = unique(f"cass-dlq-{kind.replace('_', '-')}")
    # NOOP, as in the Elasticsearch test: the dead-letter topic keeps what the policy skips.
    config = write_cassandra_config(
        tmp_path,
        name,
        topic,
        KCQL.format(topic=topic),
        cassandra,
        kafka,
        keyspace,
        connect__cassandra__error__policy="NOOP",
        errors__tolerance="all",
        errors__deadletterqueue__topic__name=dlq,
        errors__deadletterqueue__context__headers__enable="true",
    )
    conductor = conductors(config, workers=1)

    wait_for(
        lambda: committed_offsets(kafka, f"connect-{name}") == ENDS,
        60,
        f"offsets {ENDS} committed (the bad record dead-lettered)",
    )
    assert rows(cassandra, keyspace) == {row_of(p, o) for p, o in GOOD}, "exactly the good rows"
    # The commit comes after the dead-letter write was acknowledged: the DLQ is complete now.
    assert end_offsets(kafka, dlq) == {0: 1}, "exactly the one bad record is dead-lettered"
    (dead,) = read_partition(kafka, dlq, 1)
    assert dead.value == bad_value, "the dead-lettered value is the original bytes"
    assert dead.key == BAD_KEY
    headers = {key: value.decode() for key, value in dead.headers}
    missing = [header for header in CONTEXT_HEADERS if header not in headers]
    assert not missing, f"context headers missing: {missing}; got {sorted(headers)}"
    assert headers["__connect.errors.topic"] == topic
    assert headers["__connect.errors.partition"] == str(BAD_PARTITION)
    assert headers["__connect.errors.offset"] == str(BAD_OFFSET)
    assert headers["__connect.errors.connector.name"] == name
    assert headers["__connect.errors.stage"] == "TASK_PUT", "the sink refused it, not the converter"
    assert headers["__connect.errors.exception.class.name"].strip()
    assert_names_reason(headers["__connect.errors.exception.message"], reasons)
    assert headers["__connect.errors.exception.stacktrace"].strip()

    wait_for(lambda: conductor.total("dead_lettered") == 1, 30, "the worker's state to count 1 dead-lettered")
    assert conductor.total("skipped") == 0
    assert conductor.process.poll() is None, (
        f"a dead-lettered record must not stop the task; log:\n{conductor.output()}"
    )
    assert all(state.get("state") == "running" for state in conductor.states()), conductor.states()
    assert conductor.stop() == 0
    assert committed_offsets(kafka, f"connect-{name}") == ENDS


# -- THROW ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_throw_fails_the_task_commits_nothing_past_the_bad_record_and_gives_up_after_restart_max(
    kind, kafka, cassandra, conductors, tmp_path, keyspace
) -> None:
    bad_value = BAD_RECORDS[kind][0]
    reasons = reasons_for(kind, keyspace)
    topic = source(kafka, "cass-throw", kind, bad_value)
    name = unique(f"cass-throw-{kind.replace('_', '-')}")
    config = write_cassandra_config(
        tmp_path,
        name,
        topic,
        KCQL.format(topic=topic),
        cassandra,
        kafka,
        keyspace,
        connect__cassandra__error__policy="THROW",
        conductor__restart__max=1,
    )
    conductor = conductors(config, workers=1)

    code = conductor.wait(90)
    assert code == 1, (
        f"every slot failed after restart.max: the supervisor exits 1; log:\n{conductor.output()}"
    )
    committed = committed_offsets(kafka, f"connect-{name}")
    assert committed.get(BAD_PARTITION) == BAD_OFFSET, (
        f"exactly the records before the bad one are committed in its partition: {committed}"
    )
    assert all(0 <= committed.get(p, 0) <= PER_PARTITION for p in range(PARTITIONS)), committed

    # Started once, restarted once after a backoff, then given up; the reason is in the log.
    assert_gave_up_after_one_restart(conductor, f"{topic}-{BAD_WHERE}", reasons)
    assert_names_reason(conductor.full_log(), reasons)

    # Everything committed was written (in every partition); nothing was written for the bad
    # record; good records after it in its batch may have been (a re-write is idempotent).
    written = rows(cassandra, keyspace)
    assert written <= {row_of(p, o) for p, o in GOOD}, "only good rows"
    committed_rows = {row_of(p, o) for p, o in GOOD if o < committed.get(p, 0)}
    assert committed_rows <= written, f"{len(committed_rows - written)} committed records have no row"
    assert {row_of(BAD_PARTITION, o) for o in range(BAD_OFFSET)} <= written, "every record before the bad one"
