"""One real round trip per server: what every later test builds on."""

from __future__ import annotations

import uuid

import pytest
from cassandra.cluster import Cluster
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.servers


def test_kafka_produce_then_consume_on_a_new_topic(kafka: str) -> None:
    topic = f"round-trip-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka)
    metadata = producer.send(topic, key=b"sensor-1", value=b'{"celsius": 21.5}').get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=30_000,
    )
    try:
        received = next(iter(consumer))
    finally:
        consumer.close()
    assert (received.partition, received.offset) == (metadata.partition, metadata.offset)
    assert (received.key, received.value) == (b"sensor-1", b'{"celsius": 21.5}')


def test_elasticsearch_index_then_search(elasticsearch: str) -> None:
    index = f"round-trip-{uuid.uuid4().hex[:8]}"
    client = Elasticsearch(elasticsearch)
    try:
        client.index(
            index=index, id="sensor-1", document={"sensor_id": "sensor-1", "celsius": 21.5}, refresh="true"
        )
        hits = client.search(index=index, query={"term": {"sensor_id.keyword": "sensor-1"}})["hits"]
        assert hits["total"]["value"] == 1
        assert hits["hits"][0]["_source"] == {"sensor_id": "sensor-1", "celsius": 21.5}
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        client.close()


def test_cassandra_keyspace_table_insert_select(cassandra: tuple[tuple[str, ...], int]) -> None:
    hosts, port = cassandra
    keyspace = f"round_trip_{uuid.uuid4().hex[:8]}"
    cluster = Cluster(list(hosts), port=port)
    session = cluster.connect()
    try:
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(f"CREATE TABLE {keyspace}.readings (sensor_id text PRIMARY KEY, celsius double)")
        session.execute(
            f"INSERT INTO {keyspace}.readings (sensor_id, celsius) VALUES (%s, %s)", ("sensor-1", 21.5)
        )
        rows = list(session.execute(f"SELECT sensor_id, celsius FROM {keyspace}.readings"))
        assert [(row.sensor_id, row.celsius) for row in rows] == [("sensor-1", 21.5)]
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        cluster.shutdown()
