"""Avro with the real Schema Registry, end to end: Avro values and keys into Elasticsearch and
Cassandra with logical types and nulls, a schema that gains a field mid-topic, a record naming
an id the registry does not have (skipped under errors.tolerance=all, or dead-lettered), and the
aggregator counting Avro readings."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from support.aggregates import config as aggregator_config
from support.aggregates import read_results
from support.pipeline import (
    cassandra_table,
    committed_offsets,
    create_topic,
    end_offsets,
    es_count,
    produce,
    read_partition,
    unique,
    wait_for,
    write_cassandra_config,
    write_config,
)
from support.registry import avro, framed, register

pytestmark = pytest.mark.servers

LAUNCHER = Path(__file__).resolve().parents[2] / "compose" / "local"

AT = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 4}
PLACE = {"type": "record", "name": "Place", "fields": [{"name": "room", "type": "string"}]}
V1 = {
    "type": "record",
    "name": "Reading",
    "namespace": "home",
    "fields": [
        {"name": "sensor_id", "type": "string"},
        {"name": "celsius", "type": "double"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "price", "type": DECIMAL},
        {"name": "humidity", "type": ["null", "float"], "default": None},
        {"name": "raw", "type": "bytes"},
        {"name": "place", "type": ["null", PLACE], "default": None},
    ],
}
# The same schema with a field added, with a default: a compatible change (BACKWARD).
V2 = {**V1, "fields": [*V1["fields"], {"name": "unit", "type": "string", "default": "C"}]}
KEY = {
    "type": "record",
    "name": "ReadingKey",
    "namespace": "home",
    "fields": [{"name": "sensor", "type": "string"}],
}
UNKNOWN_ID = 987_001


def value(n: int) -> dict:
    return {
        "sensor_id": f"s{n}",
        "celsius": 20 + n / 4,
        "at": AT + n,
        "day": 20_454,  # 2026-01-01
        "price": Decimal(123_456_789_012_345_678 * (n + 1)).scaleb(-4),  # more digits than a double
        "humidity": None if n % 2 else 0.5,
        "raw": bytes([n, 255]),
        "place": None if n == 0 else {"room": f"room-{n}"},
    }


def records(registry: str, topic: str) -> list[tuple[bytes, bytes, int]]:
    """Three readings of schema version 1, two of version 2, then one naming an unknown id."""
    v1 = register(registry, f"{topic}-value", V1)
    v2 = register(registry, f"{topic}-value", V2)
    key_id = register(registry, f"{topic}-key", KEY)
    found = []
    for n in range(5):
        schema_id, schema, body = (v1, V1, value(n)) if n < 3 else (v2, V2, {**value(n), "unit": "F"})
        found.append((avro(key_id, KEY, {"sensor": f"s{n}"}), avro(schema_id, schema, body), AT + n))
    found.append((avro(key_id, KEY, {"sensor": "s9"}), framed(UNKNOWN_ID, b"\x02"), AT + 9))
    return found


def converters(registry: str) -> dict[str, object]:
    return {
        "value__converter": "io.confluent.connect.avro.AvroConverter",
        "value__converter__schema__registry__url": registry,
        "key__converter": "io.confluent.connect.avro.AvroConverter",
        "key__converter__schema__registry__url": registry,
        "errors__tolerance": "all",
    }


def test_avro_values_and_keys_into_elasticsearch(
    kafka, elasticsearch, schema_registry, index, conductors, tmp_path
):
    topic = create_topic(kafka, partitions=1)
    dlq = unique("dlq")
    produce(kafka, topic, records(schema_registry, topic))
    kcql = f"INSERT INTO {index} SELECT * FROM {topic} PK _key.sensor"
    name = unique("avro-es")
    settings = {
        **converters(schema_registry),
        "errors__deadletterqueue__topic__name": dlq,
        "errors__deadletterqueue__topic__replication__factor": 1,
        "errors__deadletterqueue__context__headers__enable": "true",
    }
    conductors(write_config(tmp_path, name, topic, kcql, elasticsearch, kafka, **settings), workers=1)
    wait_for(lambda: es_count(elasticsearch, index, settle_s=0) == 5, 60, "five documents")
    client = Elasticsearch(elasticsearch)
    try:
        first = client.get(index=index, id="s0")["_source"]
        third = client.get(index=index, id="s2")["_source"]
        evolved = client.get(index=index, id="s3")["_source"]
    finally:
        client.close()
    exact = str(Decimal(123_456_789_012_345_678 * 3).scaleb(-4))
    assert third == {
        "sensor_id": "s2",
        "celsius": 20.5,
        "at": AT + 2,  # timestamp-millis: epoch ms, as Stream-Reactor writes a Connect Timestamp
        "day": "2026-01-01",
        "price": float(exact),  # the client parses it as a float; the stored JSON is exact:
        "humidity": 0.5,
        "raw": "Av8=",
        "place": {"room": "room-2"},
    }
    assert first["place"] is None and "unit" not in first
    assert evolved["unit"] == "F" and evolved["humidity"] is None  # version 2, read with its own schema
    with urllib.request.urlopen(f"{elasticsearch}/{index}/_source/s2") as answer:
        assert f'"price":{exact}'.encode() in answer.read()
    # The unknown id: to the dead-letter topic, as it came, with Kafka Connect's context headers.
    wait_for(lambda: end_offsets(kafka, dlq) == {0: 1}, 30, "the unknown schema id, dead-lettered")
    (dead,) = read_partition(kafka, dlq, 1)
    assert dead.value == framed(UNKNOWN_ID, b"\x02")
    headers = dict(dead.headers)
    assert f"has no schema id {UNKNOWN_ID}".encode() in headers["__connect.errors.exception.message"]
    assert headers["__connect.errors.stage"] == b"VALUE_CONVERTER"
    assert headers["__connect.errors.class.name"] == b"io.confluent.connect.avro.AvroConverter"
    wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == {0: 6}, 30, "every offset committed")


def test_avro_into_cassandra_columns_unknown_id_skipped(
    kafka, cassandra, schema_registry, conductors, tmp_path
):
    with cassandra_table(
        cassandra,
        "sensor text PRIMARY KEY, sensor_id text, celsius double, at timestamp, "
        "day date, price decimal, humidity float, raw blob, room text, unit text",
    ) as (session, keyspace):
        topic = create_topic(kafka, partitions=1)
        produce(kafka, topic, records(schema_registry, topic))
        kcql = (
            f"INSERT INTO readings SELECT _key.sensor AS sensor, sensor_id, celsius, at, day, price, humidity, "
            f"raw, place.room AS room, unit FROM {topic}"
        )
        name = unique("avro-cass")
        config = write_cassandra_config(
            tmp_path, name, topic, kcql, cassandra, kafka, keyspace, **converters(schema_registry)
        )
        conductor = conductors(config, workers=1)
        wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == {0: 6}, 60, "every offset committed")
        rows = {row.sensor: row for row in session.execute(f"SELECT * FROM {keyspace}.readings")}
        assert sorted(rows) == ["s0", "s1", "s2", "s3", "s4"]  # the unknown id: skipped, as told
        row = rows["s2"]
        assert row.at == datetime.fromtimestamp((AT + 2) / 1000, UTC).replace(tzinfo=None)
        assert row.day.date() == date(2026, 1, 1)
        assert row.price == Decimal(123_456_789_012_345_678 * 3).scaleb(-4)
        assert (row.humidity, row.raw, row.room, row.unit) == (0.5, bytes([2, 255]), "room-2", None)
        assert (rows["s0"].room, rows["s1"].humidity, rows["s3"].unit) == (None, None, "F")
        assert f"has no schema id {UNKNOWN_ID}" in conductor.full_log()


def test_the_aggregator_reads_avro(kafka, schema_registry, conductors, tmp_path):
    topic = create_topic(kafka, 1, "agg-avro")
    schema_id = register(schema_registry, f"{topic}-value", V1)
    minute = 60_000
    start = AT - AT % minute
    readings = [{**value(n), "sensor_id": f"s{n % 2}"} for n in range(40)]
    given = [
        (r["sensor_id"].encode(), avro(schema_id, V1, r), start + n * 1000) for n, r in enumerate(readings)
    ]
    given.append((b"late", framed(UNKNOWN_ID, b"\x02"), start + 41_000))
    produce(kafka, topic, given)
    out = unique("agg-avro-out")
    sql = (
        f"INSERT INTO {out} SELECT COUNT(*) AS n, SUM(price) AS total, MAX(celsius) AS hi FROM {topic} "
        f"WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY sensor_id"
    )
    name = unique("agg-avro")
    config = aggregator_config(
        tmp_path,
        name,
        topic,
        sql,
        kafka,
        value__converter="io.confluent.connect.avro.AvroConverter",
        value__converter__schema__registry__url=schema_registry,
        errors__tolerance="all",
        conductor__aggregate__idle__close__ms=2000,
        conductor__linger__ms=100,
    )
    conductor = conductors(config, workers=1)
    results = {key["sensor_id"]: result for key, result in read_results(kafka, out, 2)}
    assert len(results) == 2
    for sensor in ("s0", "s1"):
        members = [r for r in readings if r["sensor_id"] == sensor]
        assert results[sensor]["n"] == 20
        assert results[sensor]["hi"] == max(m["celsius"] for m in members)
        # Decimals are summed as floats, as plain JSON numbers are.
        assert results[sensor]["total"] == pytest.approx(float(sum(m["price"] for m in members)))
    assert f"has no schema id {UNKNOWN_ID}" in conductor.full_log()  # tolerated, and said


def test_the_registry_stopped_mid_run(kafka, elasticsearch, schema_registry, index, conductors, tmp_path):
    """Known schemas go on being read; a record whose schema is not known yet is waited for, with
    what comes after it in its partition, and nothing past it is committed; then all is written."""
    topic = create_topic(kafka, partitions=1)
    known = register(schema_registry, f"{topic}-value", V1)
    later = register(schema_registry, f"{topic}-value", V2)  # registered, not yet asked for

    def readings(numbers: range, schema_id: int = known, schema: dict = V1) -> list:
        return [
            (f"s{n}".encode(), avro(schema_id, schema, {**value(n), "unit": "F"}), AT + n) for n in numbers
        ]

    produce(kafka, topic, readings(range(3)))
    kcql = f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id"
    name = unique("avro-down")
    settings = {
        "value__converter": "io.confluent.connect.avro.AvroConverter",
        "value__converter__schema__registry__url": schema_registry,
    }
    conductor = conductors(
        write_config(tmp_path, name, topic, kcql, elasticsearch, kafka, **settings), workers=1
    )
    wait_for(lambda: es_count(elasticsearch, index, settle_s=0) == 3, 60, "the first three documents")
    registry_server("down")
    try:
        produce(kafka, topic, readings(range(3, 6)))
        wait_for(
            lambda: es_count(elasticsearch, index, settle_s=0) == 6, 60, "known schemas read, registry down"
        )
        produce(kafka, topic, [*readings(range(6, 7), later, V2), *readings(range(7, 8))])
        wait_for(
            lambda: any("Schema Registry" in str(s.get("waiting_for")) for s in conductor.states()),
            60,
            "the worker's state to say it waits for the registry",
        )
        time.sleep(3)
        assert es_count(elasticsearch, index, settle_s=0) == 6  # nothing after the unknown schema
        assert committed_offsets(kafka, f"connect-{name}") == {0: 6}
    finally:
        registry_server("up")
    wait_for(
        lambda: es_count(elasticsearch, index, settle_s=0) == 8, 90, "all eight, once the registry answers"
    )
    wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == {0: 8}, 30, "every offset committed")
    log = conductor.full_log()
    assert "the Schema Registry does not answer" in log and "the Schema Registry answers again" in log


def registry_server(command: str) -> None:
    subprocess.run([str(LAUNCHER), command, "schema-registry"], check=True, capture_output=True, timeout=600)
