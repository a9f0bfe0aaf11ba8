"""`conductor start` end to end into Cassandra, against the real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cassandra.cluster import Cluster
from support.pipeline import (
    committed_offsets,
    create_topic,
    es_count,
    produce,
    reading,
    unique,
    wait_for,
    write_cassandra_config,
    write_config,
)

pytestmark = pytest.mark.servers

LAUNCHER = Path(__file__).resolve().parents[2] / "compose" / "local"
START_MS = 1_766_793_600_000  # 27 Dec 2025 UTC


@pytest.fixture
def keyspace(cassandra):
    hosts, port = cassandra
    name = unique("ks").replace("-", "_")
    cluster = Cluster(list(hosts), port=port)
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    session.execute(
        f"CREATE TABLE {name}.readings (sensor_id text, reading_id bigint, celsius double, "
        "ts timestamp, PRIMARY KEY ((sensor_id), reading_id))"
    )
    cluster.shutdown()
    yield name
    cluster = Cluster(list(hosts), port=port)  # a new session: the test may have restarted Cassandra
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)
    finally:
        cluster.shutdown()


def row_count(cassandra, keyspace: str) -> int:
    hosts, port = cassandra
    cluster = Cluster(list(hosts), port=port)
    try:
        session = cluster.connect()
        return session.execute(f"SELECT count(*) FROM {keyspace}.readings", timeout=60).one()[0]
    except Exception:
        return -1
    finally:
        cluster.shutdown()


def produce_readings(kafka: str, topic: str, first: int, count: int) -> None:
    produce(
        kafka,
        topic,
        (
            (f"sensor-{n % 500:04d}".encode(), reading(n, START_MS + n * 1000), START_MS + n * 1000)
            for n in range(first, first + count)
        ),
    )


KCQL = "INSERT INTO readings SELECT sensor_id, reading_id, celsius, timestamp AS ts FROM {topic}"


def test_100k_readings_three_workers_give_exactly_the_rows(
    kafka, cassandra, conductors, tmp_path, keyspace
) -> None:
    topic = create_topic(kafka, partitions=6)
    produce_readings(kafka, topic, 0, 100_000)
    name = unique("cass-100k")
    config = write_cassandra_config(
        tmp_path, name, topic, KCQL.format(topic=topic), cassandra, kafka, keyspace
    )
    conductor = conductors(config, workers=3)
    wait_for(
        lambda: sum(committed_offsets(kafka, f"connect-{name}").values()) == 100_000,
        300,
        "every offset committed",
    )
    assert row_count(cassandra, keyspace) == 100_000
    assert conductor.stop() == 0


def test_one_topic_two_connectors_elasticsearch_and_cassandra_each_get_every_record(
    kafka, cassandra, elasticsearch, conductors, tmp_path, keyspace
) -> None:
    topic = create_topic(kafka, partitions=6)
    produce_readings(kafka, topic, 0, 20_000)
    index = unique("both").replace("-", "_")
    to_cassandra = write_cassandra_config(
        tmp_path, unique("both-cass"), topic, KCQL.format(topic=topic), cassandra, kafka, keyspace
    )
    to_elastic = write_config(
        tmp_path,
        unique("both-es"),
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id, reading_id",
    )
    one = conductors(to_cassandra, workers=2, label="cassandra")
    two = conductors(to_elastic, workers=2, label="elastic")
    wait_for(lambda: row_count(cassandra, keyspace) == 20_000, 180, "every row in Cassandra")
    wait_for(lambda: es_count(elasticsearch, index) == 20_000, 180, "every document in Elasticsearch")
    assert one.stop() == 0 and two.stop() == 0


def test_kill_9_and_a_cassandra_restart_under_retry_lose_no_row(
    kafka, cassandra, conductors, tmp_path, keyspace
) -> None:
    topic = create_topic(kafka, partitions=6)
    total = 40_000
    produce_readings(kafka, topic, 0, total // 2)
    name = unique("cass-retry")
    config = write_cassandra_config(
        tmp_path,
        name,
        topic,
        KCQL.format(topic=topic),
        cassandra,
        kafka,
        keyspace,
        connect__cassandra__error__policy="RETRY",
        connect__cassandra__max__retries=120,
        connect__cassandra__retry__interval=1000,
    )
    conductor = conductors(config, workers=3)
    wait_for(lambda: row_count(cassandra, keyspace) > 0, 120, "the first rows")
    victim = conductor.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    try:
        down = subprocess.run(
            [sys.executable, str(LAUNCHER), "down", "cassandra"], capture_output=True, text=True
        )
        assert down.returncode == 0, down.stderr
        produce_readings(kafka, topic, total // 2, total // 2)
    finally:
        up = subprocess.run(
            [sys.executable, str(LAUNCHER), "up", "cassandra"], capture_output=True, text=True
        )
        assert up.returncode == 0, up.stderr
    wait_for(
        lambda: sum(committed_offsets(kafka, f"connect-{name}").values()) == total,
        240,
        "every offset committed after the restart",
    )
    assert row_count(cassandra, keyspace) == total
    assert conductor.process.poll() is None, "RETRY absorbs the outage: the group keeps running"
    assert conductor.stop() == 0
