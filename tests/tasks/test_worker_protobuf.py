"""ProtobufConverter end to end: readings written by a Protobuf serializer (Confluent's framing,
a schema in the real registry) into Elasticsearch and Cassandra, with a Timestamp, an enum, a
wrapper and a nested message that is sometimes not set."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from elasticsearch import Elasticsearch
from support.pipeline import (
    cassandra_table,
    committed_offsets,
    create_topic,
    es_count,
    produce,
    unique,
    wait_for,
    write_cassandra_config,
    write_config,
)
from support.registry import protobuf, register

pytestmark = pytest.mark.servers

READING = """
syntax = "proto3";
package home.sensors;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Reading {
  string sensor_id = 1;
  double celsius = 2;
  google.protobuf.Timestamp at = 3;
  Kind kind = 4;
  google.protobuf.StringValue note = 5;
  Place place = 6;

  enum Kind { INDOOR = 0; OUTDOOR = 1; }
  message Place { string room = 1; }
}
"""
AT = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z


def readings(schema_id: int, count: int) -> list[tuple[bytes, bytes, int]]:
    """Even readings are indoors, with a place and a note; odd ones outdoors, with neither."""
    records = []
    for n in range(count):
        values: dict = {
            "sensor_id": f"s{n}",
            "celsius": 20 + n / 4,
            "at": {"seconds": (AT + n) // 1000, "nanos": (AT + n) % 1000 * 1_000_000 + 999},
            "kind": n % 2,
        }
        if n % 2 == 0:
            values |= {"note": {"value": f"note {n}"}, "place": {"room": f"room-{n}"}}
        records.append(
            (f"s{n}".encode(), protobuf(schema_id, READING, "home.sensors.Reading", values), AT + n)
        )
    return records


def moment(epoch_ms: int) -> datetime:
    """A Cassandra timestamp as the driver reads it: naive UTC."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).replace(tzinfo=None)


def settings(registry: str) -> dict[str, object]:
    return {
        "value__converter": "io.confluent.connect.protobuf.ProtobufConverter",
        "value__converter__schema__registry__url": registry,
    }


def registered(registry: str) -> int:
    return register(registry, f"readings-{uuid.uuid4().hex[:8]}-value", READING, "PROTOBUF")


def test_protobuf_into_elasticsearch(kafka, elasticsearch, index, schema_registry, conductors, tmp_path):
    topic = create_topic(kafka, partitions=1)
    produce(kafka, topic, readings(registered(schema_registry), 3))
    name = unique("proto-es")
    kcql = f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id"
    config = write_config(tmp_path, name, topic, kcql, elasticsearch, kafka, **settings(schema_registry))
    conductors(config, workers=1)
    wait_for(lambda: es_count(elasticsearch, index, settle_s=0) == 3, 60, "three documents")
    client = Elasticsearch(elasticsearch)
    try:
        indoors = client.get(index=index, id="s2")["_source"]
        outdoors = client.get(index=index, id="s1")["_source"]
    finally:
        client.close()
    assert indoors == {
        "sensor_id": "s2",
        "celsius": 20.5,
        "at": AT + 2,  # epoch ms, nanos truncated
        "kind": "INDOOR",
        "note": {"value": "note 2"},  # a wrapper is a struct by default
        "place": {"room": "room-2"},
    }
    assert outdoors == {
        "sensor_id": "s1",
        "celsius": 20.25,
        "at": AT + 1,
        "kind": "OUTDOOR",
        "note": None,
        "place": None,
    }
    wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == {0: 3}, 30, "every offset committed")


def test_protobuf_into_cassandra_columns(kafka, cassandra, schema_registry, conductors, tmp_path):
    with cassandra_table(
        cassandra, "sensor_id text PRIMARY KEY, celsius double, at timestamp, kind text, note text, room text"
    ) as (session, keyspace):
        topic = create_topic(kafka, partitions=1)
        produce(kafka, topic, readings(registered(schema_registry), 3))
        kcql = (
            f"INSERT INTO readings SELECT sensor_id, celsius, at, kind, note, place.room AS room FROM {topic}"
        )
        options = {**settings(schema_registry), "value__converter__wrapper__for__nullables": "true"}
        config = write_cassandra_config(  # with wrapper.for.nullables, the note is its bare string
            tmp_path, unique("proto-cass"), topic, kcql, cassandra, kafka, keyspace, **options
        )
        conductors(config, workers=1)

        def rows() -> dict:
            return {row.sensor_id: row for row in session.execute(f"SELECT * FROM {keyspace}.readings")}

        wait_for(lambda: len(rows()) == 3, 60, "three rows")
        found = {sensor: (r.celsius, r.at, r.kind, r.note, r.room) for sensor, r in rows().items()}
        assert found["s2"] == (20.5, moment(AT + 2), "INDOOR", "note 2", "room-2")
        assert found["s1"] == (20.25, moment(AT + 1), "OUTDOOR", None, None)  # no note, no place
