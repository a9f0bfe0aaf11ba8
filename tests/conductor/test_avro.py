"""AvroConverter's records read as Kafka Connect's AvroData reads them, from schemas registered
with the real registry: logical types, nulls, nested records, unions, enums, fixed, maps, keys,
references, two schema versions in one topic, and what cannot be read as the record's error."""

from __future__ import annotations

import uuid
from decimal import Decimal
from types import MappingProxyType

import pytest
from support.registry import avro, framed, register

from conductor.config.settings import ConverterSettings
from conductor.errors import RecordError
from conductor.formats import reader
from conductor.registry import RegistryUnavailable

pytestmark = pytest.mark.servers

DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 4}
READING = {
    "type": "record",
    "name": "Reading",
    "namespace": "home.sensors",
    "fields": [
        {"name": "sensor_id", "type": "string"},
        {"name": "celsius", "type": "double"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "time", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "price", "type": DECIMAL},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "humidity", "type": ["null", "float"], "default": None},
        {"name": "raw", "type": "bytes"},
        {"name": "mac", "type": {"type": "fixed", "name": "Mac", "size": 6}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["INDOOR", "OUTDOOR"]}},
        {
            "name": "place",
            "type": [
                "null",
                {"type": "record", "name": "Place", "fields": [
                    {"name": "room", "type": "string"},
                    {"name": "since", "type": ["null", {"type": "int", "logicalType": "date"}]},
                ]},
            ],
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "limits", "type": {"type": "map", "values": DECIMAL}},
        {"name": "reading", "type": ["int", "string", "Place"]},
    ],
}  # fmt: skip
AT = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
ID = uuid.UUID("6e1b0c4e-2f3a-4c55-9d63-0a3c8a8f6b11")
VALUE = {
    "sensor_id": "s-1",
    "celsius": 21.5,
    "at": AT,
    "at_us": AT * 1000 + 456,
    "day": 20454,  # 2026-01-01
    "time": 45_296_789,  # 12:34:56.789
    "price": Decimal("12.3400"),
    "id": str(ID),
    "humidity": None,
    "raw": b"\x00\xff",
    "mac": b"\x01\x02\x03\x04\x05\x06",
    "kind": "OUTDOOR",
    "place": {"room": "attic", "since": 20000},
    "tags": ["a", "b"],
    "limits": {"high": Decimal("30.0000")},
    "reading": "n/a",
}


def avro_reader(url: str, side: str = "value", **options: bool):
    settings = ConverterSettings(
        "avro", url, None, MappingProxyType({"enhanced.avro.schema.support": False, **options})
    )
    return reader(settings, side, {})


def subject() -> str:
    return f"readings-{uuid.uuid4().hex[:8]}-value"


def test_values_read_as_kafka_connect_reads_them(schema_registry):
    schema_id = register(schema_registry, subject(), READING)
    read = avro_reader(schema_registry)
    assert read(avro(schema_id, READING, VALUE)) == {
        "sensor_id": "s-1",
        "celsius": 21.5,
        "at": AT,  # Timestamp: epoch milliseconds
        "at_us": AT * 1000 + 456,  # timestamp-micros is no Connect type: the long as written
        "day": "2026-01-01",
        "time": "12:34:56.789",
        "price": Decimal("12.3400"),  # exact, scale kept
        "id": str(ID),  # uuid: a string in Connect
        "humidity": None,
        "raw": "AP8=",
        "mac": "AQIDBAUG",
        "kind": "OUTDOOR",
        "place": {"room": "attic", "since": "2024-10-04"},
        "tags": ["a", "b"],
        "limits": {"high": Decimal("30.0000")},
        # Connect's io.confluent.connect.avro.Union: a field per branch, the written one set.
        "reading": {"int": None, "string": "n/a", "Place": None},
    }
    other = read(avro(schema_id, READING, {**VALUE, "place": None, "reading": {"room": "x", "since": None}}))
    assert other["place"] is None
    assert other["reading"] == {"int": None, "string": None, "Place": {"room": "x", "since": None}}
    full = avro_reader(schema_registry, **{"enhanced.avro.schema.support": True})
    assert full(avro(schema_id, READING, {**VALUE, "reading": 7}))["reading"] == {
        "int": 7,
        "string": None,
        "home.sensors.Place": None,
    }


def test_a_key_and_two_versions_of_a_schema_in_one_topic(schema_registry):
    name = subject()
    v1 = {"type": "record", "name": "R", "fields": [{"name": "celsius", "type": "double"}]}
    v2 = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "celsius", "type": "double"},
            {"name": "unit", "type": "string", "default": "C"},
        ],
    }
    first, second = register(schema_registry, name, v1), register(schema_registry, name, v2)
    assert first != second
    read = avro_reader(schema_registry)
    # Each record is read with the schema it was written with, as Kafka Connect does.
    assert read(avro(first, v1, {"celsius": 1.0})) == {"celsius": 1.0}
    assert read(avro(second, v2, {"celsius": 2.0, "unit": "F"})) == {"celsius": 2.0, "unit": "F"}
    key_id = register(schema_registry, name.replace("-value", "-key"), '"string"', "AVRO")
    assert avro_reader(schema_registry, "key")(avro(key_id, "string", "s-1")) == "s-1"


def test_references_to_other_subjects(schema_registry):
    place = {
        "type": "record",
        "name": "Place",
        "namespace": "home",
        "fields": [{"name": "room", "type": "string"}],
    }
    place_subject = f"place-{uuid.uuid4().hex[:8]}"
    register(schema_registry, place_subject, place)
    reading = {"type": "record", "name": "R", "fields": [{"name": "place", "type": "home.Place"}]}
    schema_id = register(
        schema_registry, subject(), reading,
        references=[{"name": "home.Place", "subject": place_subject, "version": 1}],
    )  # fmt: skip
    body = avro(0, {**reading, "fields": [{"name": "place", "type": place}]}, {"place": {"room": "hall"}})[5:]
    assert avro_reader(schema_registry)(framed(schema_id, body)) == {"place": {"room": "hall"}}


def test_what_cannot_be_read_is_the_records_error(schema_registry):
    schema_id = register(schema_registry, subject(), READING)
    read = avro_reader(schema_registry)
    with pytest.raises(RecordError, match="Unknown magic byte"):
        read(b'{"celsius": 1}')
    with pytest.raises(RecordError, match="has no schema id 987650"):
        read(framed(987650, b"\x02"))
    with pytest.raises(RecordError, match=f"is not avro of schema id {schema_id}"):
        read(framed(schema_id, b"\x02"))  # cut short
    json_id = register(
        schema_registry,
        subject(),
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
        "JSON",
    )
    with pytest.raises(RecordError, match=f"schema id {json_id} is a JSON schema, but value.converter is "):
        read(framed(json_id, b"{}"))


def test_known_schemas_are_read_while_the_registry_is_down(schema_registry):
    schema_id = register(schema_registry, subject(), READING)
    read = avro_reader(schema_registry)
    record = avro(schema_id, READING, VALUE)
    assert read(record)["celsius"] == 21.5
    read.registry.url = "http://127.0.0.1:1"  # as if it stopped
    assert read(record)["celsius"] == 21.5
    with pytest.raises(RegistryUnavailable, match="cannot be reached"):
        read(framed(schema_id + 1000, b""))
