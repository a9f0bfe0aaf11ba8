"""JsonSchemaConverter end to end: readings framed in Confluent's wire format against a JSON Schema
in the real registry, into Elasticsearch and Cassandra, with a Timestamp by title, an exact
Decimal and a null field; records that do not fit their schema go to the dead-letter topic."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from elasticsearch import Elasticsearch
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
from support.registry import framed, register

pytestmark = pytest.mark.servers

AT = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Reading",
    "type": "object",
    "properties": {
        "sensor_id": {"type": "string"},
        "celsius": {"type": "number", "maximum": 100},
        "at": {
            "type": "integer",
            "title": "org.apache.kafka.connect.data.Timestamp",
            "connect.type": "int64",
        },
        "price": {
            "type": "number",
            "title": "org.apache.kafka.connect.data.Decimal",
            "connect.type": "bytes",
            "connect.parameters": {"scale": "4"},
        },
        "humidity": {"oneOf": [{"type": "null"}, {"type": "number"}]},
        "place": {"type": "object", "properties": {"room": {"type": "string"}}},
    },
    "required": ["sensor_id", "celsius", "at"],
}
PRICE = "12345678901234.567"  # and the reading's n: scale 4, more digits than a double holds


def reading(schema_id: int, n: int, **fields: object) -> bytes:
    """The body as a serializer writes it, the price's digits as they are (no float between)."""
    value = {"sensor_id": f"s{n}", "celsius": 20 + n / 4, "at": AT + n, "price": 0, "humidity": None}
    body = orjson.dumps({**value, "place": {"room": f"room-{n}"}, **fields})
    return framed(schema_id, body.replace(b'"price":0', f'"price":{PRICE}{n}'.encode(), 1))


def registered(schema_registry: str, topic: str) -> int:
    return register(schema_registry, f"{topic}-value", SCHEMA, "JSON")


def settings(schema_registry: str, **more: object) -> dict[str, object]:
    return {
        "value__converter": "io.confluent.connect.json.JsonSchemaConverter",
        "value__converter__schema__registry__url": schema_registry,
        **more,
    }


def test_json_schema_readings_into_elasticsearch(
    kafka, elasticsearch, index, schema_registry, conductors, tmp_path
):
    topic = create_topic(kafka, partitions=1)
    schema_id = registered(schema_registry, topic)
    produce(kafka, topic, [(f"s{n}".encode(), reading(schema_id, n), AT + n) for n in range(3)])
    kcql = f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id"
    config = write_config(
        tmp_path, unique("js-es"), topic, kcql, elasticsearch, kafka, **settings(schema_registry)
    )
    conductors(config, workers=1)
    wait_for(lambda: es_count(elasticsearch, index, settle_s=0) == 3, 30, "three documents")
    client = Elasticsearch(elasticsearch)
    try:
        document = client.get(index=index, id="s2")["_source"]
    finally:
        client.close()
    assert document == {
        "sensor_id": "s2",
        "celsius": 20.5,
        "at": AT + 2,  # a Timestamp by title: epoch ms, as Stream-Reactor writes it
        "price": float(f"{PRICE}2"),  # the client parses a float; the stored JSON is exact:
        "humidity": None,
        "place": {"room": "room-2"},
    }
    with urllib.request.urlopen(f"{elasticsearch}/{index}/_source/s2") as answer:
        assert f'"price":{PRICE}2,'.encode() in answer.read()


def test_json_schema_readings_into_cassandra_columns(kafka, cassandra, schema_registry, conductors, tmp_path):
    with cassandra_table(
        cassandra,
        "sensor_id text PRIMARY KEY, celsius double, at timestamp, price decimal, humidity double, room text",
    ) as (session, keyspace):
        topic = create_topic(kafka, partitions=1)
        schema_id = registered(schema_registry, topic)
        records = [(f"s{n}".encode(), reading(schema_id, n), AT + n) for n in range(2)]
        records.append((b"s2", reading(schema_id, 2, humidity=55.5), AT + 2))
        produce(kafka, topic, records)
        kcql = f"INSERT INTO readings SELECT sensor_id, celsius, at, price, humidity, place.room AS room FROM {topic}"
        config = write_cassandra_config(
            tmp_path, unique("js-cass"), topic, kcql, cassandra, kafka, keyspace, **settings(schema_registry)
        )
        conductors(config, workers=1)

        def rows() -> dict:
            return {row.sensor_id: row for row in session.execute(f"SELECT * FROM {keyspace}.readings")}

        wait_for(lambda: len(rows()) == 3, 30, "three rows")
        found = rows()
        first, last = found["s1"], found["s2"]
        assert first.celsius == 20.25
        assert first.at == datetime.fromtimestamp((AT + 1) / 1000, UTC).replace(tzinfo=None)
        assert first.price == Decimal(f"{PRICE}1")  # every digit
        assert (first.humidity, first.room) == (None, "room-1")  # the null field: a null column
        assert (last.humidity, last.price) == (55.5, Decimal(f"{PRICE}2"))


def test_records_that_do_not_fit_their_schema_are_dead_lettered(
    kafka, elasticsearch, index, schema_registry, conductors, tmp_path
):
    topic = create_topic(kafka, partitions=1)
    schema_id = registered(schema_registry, topic)
    dlq = unique("dlq")
    hot = reading(schema_id, 1, celsius="hot")  # a string where the schema says number
    too_hot = reading(schema_id, 3, celsius=250)  # a number over the schema's maximum
    produce(
        kafka,
        topic,
        [
            (b"s0", reading(schema_id, 0), AT),
            (b"s1", hot, AT),
            (b"s2", reading(schema_id, 2), AT),
            (b"s3", too_hot, AT),
        ],
    )
    name = unique("js-dlq")
    more = {
        "value__converter__json__fail__invalid__schema": "true",
        "errors__tolerance": "all",
        "errors__deadletterqueue__topic__name": dlq,
        "errors__deadletterqueue__topic__replication__factor": 1,
        "errors__deadletterqueue__context__headers__enable": "true",
    }
    kcql = f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id"
    config = write_config(
        tmp_path, name, topic, kcql, elasticsearch, kafka, **settings(schema_registry, **more)
    )
    conductors(config, workers=1)
    wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == {0: 4}, 30, "every offset committed")
    assert es_count(elasticsearch, index) == 2, "the two readings that fit"
    assert end_offsets(kafka, dlq) == {0: 2}
    dead = read_partition(kafka, dlq, 2)
    assert [(record.key, record.value) for record in dead] == [(b"s1", hot), (b"s3", too_hot)]
    expected = [
        ("1", "value.celsius: fails the 'type' rule of JSON Schema id"),
        ("3", "value.celsius: fails the 'maximum' rule of JSON Schema id"),
    ]
    for record, (offset, reason) in zip(dead, expected, strict=True):
        headers = {key: value.decode() for key, value in record.headers}
        assert headers["__connect.errors.topic"] == topic
        assert headers["__connect.errors.partition"] == "0"
        assert headers["__connect.errors.offset"] == offset
        assert headers["__connect.errors.connector.name"] == name
        assert headers["__connect.errors.stage"] == "VALUE_CONVERTER", "the converter refused it"
        assert headers["__connect.errors.exception.message"].startswith(reason), headers
        assert headers["__connect.errors.exception.stacktrace"].strip()
