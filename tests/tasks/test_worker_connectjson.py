"""Schema'd JSON (JsonConverter, schemas.enable=true) end to end: the same envelopes into
Elasticsearch and Cassandra, with Connect's Timestamp, Date and Decimal, bytes and a nested
struct; a record that does not fit its schema goes to the dead-letter topic."""

from __future__ import annotations

import base64
import urllib.request
from datetime import UTC, date, datetime
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

pytestmark = pytest.mark.servers

AT = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
SCHEMA = {
    "type": "struct",
    "name": "Reading",
    "fields": [
        {"field": "sensor_id", "type": "string"},
        {"field": "celsius", "type": "double"},
        {"field": "at", "type": "int64", "name": "org.apache.kafka.connect.data.Timestamp"},
        {"field": "day", "type": "int32", "name": "org.apache.kafka.connect.data.Date"},
        {
            "field": "price",
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "4"},
        },
        {"field": "raw", "type": "bytes"},
        {
            "field": "place",
            "type": "struct",
            "optional": True,
            "fields": [{"field": "room", "type": "string"}],
        },
    ],
}
SCHEMAS = {
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "true",
}


def price(unscaled: int) -> str:
    return base64.b64encode(unscaled.to_bytes(16, "big", signed=True)).decode()


def readings(count: int) -> list[tuple[bytes, bytes, int]]:
    records = []
    for n in range(count):
        payload = {
            "sensor_id": f"s{n}",
            "celsius": 20 + n / 4,
            "at": AT + n,
            "day": 20_454,  # 2026-01-01
            "price": price(123_456_789_012_345_678 * (n + 1)),  # more digits than a double holds
            "raw": base64.b64encode(bytes([n, 255])).decode(),
            "place": {"room": f"room-{n}"},
        }
        records.append((f"s{n}".encode(), orjson.dumps({"schema": SCHEMA, "payload": payload}), AT + n))
    return records


def settings(dlq: str) -> dict[str, object]:
    return {
        **{key.replace(".", "__"): value for key, value in SCHEMAS.items()},
        "errors__tolerance": "all",
        "errors__deadletterqueue__topic__name": dlq,
        "errors__deadletterqueue__topic__replication__factor": 1,
    }


BAD = orjson.dumps({"schema": SCHEMA, "payload": {"sensor_id": "bad", "celsius": "hot", "at": AT}})


def test_schemad_json_into_elasticsearch(kafka, elasticsearch, index, conductors, tmp_path):
    topic = create_topic(kafka, partitions=1)
    dlq = unique("dlq")
    produce(kafka, topic, [*readings(3), (b"bad", BAD, AT)])
    kcql = f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id"
    name = unique("json-es")
    config = write_config(tmp_path, name, topic, kcql, elasticsearch, kafka, **settings(dlq))
    conductors(config, workers=1)
    wait_for(lambda: es_count(elasticsearch, index, settle_s=0) == 3, 60, "three documents")
    client = Elasticsearch(elasticsearch)
    try:
        document = client.get(index=index, id="s2")["_source"]
    finally:
        client.close()
    exact = str(Decimal(123_456_789_012_345_678 * 3).scaleb(-4))
    assert document == {
        "sensor_id": "s2",
        "celsius": 20.5,
        "at": AT + 2,  # epoch ms, as Stream-Reactor writes a Timestamp
        "day": "2026-01-01",
        "price": float(exact),  # the client parses it as a float; the stored JSON is exact:
        "raw": "Av8=",
        "place": {"room": "room-2"},
    }
    with urllib.request.urlopen(f"{elasticsearch}/{index}/_source/s2") as answer:
        assert f'"price":{exact}'.encode() in answer.read()
    wait_for(lambda: end_offsets(kafka, dlq) == {0: 1}, 30, "the record that does not fit, dead-lettered")
    (dead,) = read_partition(kafka, dlq, 1)
    assert dead.value == BAD
    wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == {0: 4}, 30, "every offset committed")


def test_schemad_json_into_cassandra_columns(kafka, cassandra, conductors, tmp_path):
    with cassandra_table(
        cassandra,
        "sensor_id text PRIMARY KEY, celsius double, at timestamp, day date, "
        "price decimal, raw blob, room text",
    ) as (session, keyspace):
        topic = create_topic(kafka, partitions=1)
        dlq = unique("dlq")
        produce(kafka, topic, [*readings(3), (b"bad", BAD, AT)])
        kcql = f"INSERT INTO readings SELECT sensor_id, celsius, at, day, price, raw, place.room AS room FROM {topic}"
        config = write_cassandra_config(
            tmp_path, unique("json-cass"), topic, kcql, cassandra, kafka, keyspace, **settings(dlq)
        )
        conductors(config, workers=1)

        def rows() -> list:
            return list(session.execute(f"SELECT * FROM {keyspace}.readings"))

        wait_for(lambda: len(rows()) == 3, 90, "three rows")
        row = next(r for r in rows() if r.sensor_id == "s2")
        assert row.celsius == 20.5
        assert row.at == datetime.fromtimestamp((AT + 2) / 1000, UTC).replace(tzinfo=None)
        assert row.day.date() == date(2026, 1, 1)
        assert row.price == Decimal(123_456_789_012_345_678 * 3).scaleb(-4)  # every digit
        assert (row.raw, row.room) == (bytes([2, 255]), "room-2")
        wait_for(lambda: end_offsets(kafka, dlq) == {0: 1}, 30, "the record that does not fit, dead-lettered")
