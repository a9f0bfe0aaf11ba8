"""JsonConverter's schema envelope (schemas.enable=true), read as Kafka Connect reads it, with
the values spelled as the stores take them; and where Kafka Connect would read a mismatch as 0,
false or null, the record's error instead."""

from __future__ import annotations

import base64
from decimal import Decimal
from types import SimpleNamespace

import orjson
import pytest

from conductor.config.settings import ConverterSettings
from conductor.errors import RecordError
from conductor.formats import reader
from conductor.formats.connectjson import read_envelope
from conductor.records import decode, decoder

VALUE = reader(ConverterSettings("connect-json"), "value", {})
KEY = reader(ConverterSettings("connect-json"), "key", {})

READING = {
    "type": "struct",
    "name": "Reading",
    "fields": [
        {"field": "sensor_id", "type": "string"},
        {"field": "celsius", "type": "double"},
        {"field": "count", "type": "int32", "optional": True},
        {"field": "ok", "type": "boolean", "default": True},
        {"field": "at", "type": "int64", "name": "org.apache.kafka.connect.data.Timestamp"},
        {"field": "day", "type": "int32", "name": "org.apache.kafka.connect.data.Date", "optional": True},
        {"field": "time", "type": "int32", "name": "org.apache.kafka.connect.data.Time", "optional": True},
        {
            "field": "price",
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2"},
            "optional": True,
        },
        {"field": "raw", "type": "bytes", "optional": True},
        {"field": "tags", "type": "array", "items": {"type": "string"}, "optional": True},
        {
            "field": "labels",
            "type": "map",
            "keys": {"type": "string"},
            "values": {"type": "int64"},
            "optional": True,
        },
        {
            "field": "place",
            "type": "struct",
            "optional": True,
            "fields": [{"field": "room", "type": "string"}],
        },
    ],
}


def envelope(payload: object, schema: object = READING) -> bytes:
    return orjson.dumps({"schema": schema, "payload": payload})


def unscaled(number: int) -> str:
    return base64.b64encode(number.to_bytes(8, "big", signed=True)).decode()


def test_a_struct_with_every_type_and_logical_type():
    value = read_envelope(
        envelope(
            {
                "sensor_id": "s1",
                "celsius": 21,
                "count": None,
                "at": 1_767_225_600_123,
                "day": 20_454,
                "time": 49_500_250,
                "price": unscaled(-12345),
                "raw": base64.b64encode(b"\x00\xff").decode(),
                "tags": ["a", "b"],
                "labels": {"x": 1},
                "place": {"room": "kitchen", "extra": "ignored, as Kafka Connect ignores it"},
                "unknown": "not in the schema: ignored",
            }
        )
    )
    assert value == {
        "sensor_id": "s1",
        "celsius": 21.0,
        "count": None,
        "ok": True,  # the default
        "at": 1_767_225_600_123,  # epoch ms, as Stream-Reactor writes a Timestamp
        "day": "2026-01-01",
        "time": "13:45:00.250",
        "price": Decimal("-123.45"),
        "raw": "AP8=",
        "tags": ["a", "b"],
        "labels": {"x": 1},
        "place": {"room": "kitchen"},
    }
    assert type(value["celsius"]) is float and str(value["price"]) == "-123.45"


def test_a_decimal_given_as_a_number_and_a_map_with_non_string_keys():
    schema = {
        "type": "struct",
        "fields": [
            {
                "field": "d",
                "type": "bytes",
                "name": "org.apache.kafka.connect.data.Decimal",
                "parameters": {"scale": "3"},
            },
            {"field": "m", "type": "map", "keys": {"type": "int32"}, "values": {"type": "string"}},
        ],
    }
    assert read_envelope(envelope({"d": 1.5, "m": [[1, "one"], [2, "two"]]}, schema)) == {
        "d": Decimal("1.5"),
        "m": [[1, "one"], [2, "two"]],
    }


def test_no_schema_reads_the_payload_as_plain_json_and_no_bytes_is_a_tombstone():
    assert read_envelope(envelope({"a": 1}, None)) == {"a": 1}
    message = SimpleNamespace(topic="t", partition=0, offset=1, timestamp=0, key=None, value=None, headers=[])
    assert decoder(VALUE, None)(message).value is None


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"nope", "value is not valid JSON"),
        (orjson.dumps({"celsius": 1}), 'requires "schema" and "payload" fields'),
        (orjson.dumps({"schema": READING, "payload": {}, "extra": 1}), "may not contain additional fields"),
        (envelope({"sensor_id": 7, "celsius": 1.0, "at": 1}), "sensor_id: the schema says string"),
        (envelope({"sensor_id": "s", "celsius": "hot", "at": 1}), "celsius: the schema says double"),
        (envelope({"sensor_id": "s", "celsius": 1.0}), "at: invalid null value for required INT64 field"),
        (envelope({"sensor_id": "s", "celsius": 1.0, "at": "x"}), "invalid type for Timestamp"),
        (envelope({"sensor_id": "s", "celsius": 1.0, "at": 1, "count": 1.5}), "count: the schema says int32"),
        (envelope({"sensor_id": "s", "celsius": 1.0, "at": 1, "count": 2**31}), "out of range for int32"),
        (envelope({"sensor_id": "s", "celsius": 1.0, "at": 1, "raw": "***"}), "invalid bytes field"),
        (
            envelope({"sensor_id": "s", "celsius": 1.0, "at": 1, "place": []}),
            "structs should be encoded as JSON objects",
        ),
        (envelope({"a": 1}, {"type": "float32"}), "unknown schema type: float32"),
        (envelope({"a": 1}, {"type": "array"}), "Array schema did not specify the element type"),
    ],
)
def test_what_does_not_fit_its_schema_is_the_records_error(raw: bytes, says: str):
    with pytest.raises(RecordError, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_envelope(raw)


def test_the_decoder_reads_keys_and_values_and_keeps_plain_json_untouched():
    assert decoder(None, None) is decode  # no envelope: the per-record path as it was
    key_schema = {"type": "struct", "fields": [{"field": "id", "type": "string"}]}
    message = SimpleNamespace(
        topic="t",
        partition=0,
        offset=3,
        timestamp=0,
        key=envelope({"id": "s1"}, key_schema),
        value=envelope({"sensor_id": "s1", "celsius": 1.0, "at": 5}),
        headers=[],
    )
    record = decoder(VALUE, KEY)(message)
    assert record.value["at"] == 5 and record.key_object() == {"id": "s1"}
    assert orjson.loads(record.key) == {"id": "s1"}
    text_key = decoder(VALUE, KEY)(
        SimpleNamespace(**{**vars(message), "key": envelope("s1", {"type": "string"})})
    )
    assert text_key.key == b"s1" and text_key.key_text() == "s1"
    with pytest.raises(RecordError, match="value is not an object"):
        decoder(VALUE, None)(SimpleNamespace(**{**vars(message), "value": envelope(5, {"type": "int32"})}))


def test_a_decimal_keeps_every_digit_past_python_s_default_28():
    unscaled = 12345678901234567890123456789012345  # 35 digits
    raw = base64.b64encode(unscaled.to_bytes(16, "big", signed=True)).decode()
    schema = {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "5"}}
    assert read_envelope(envelope(raw, schema)) == Decimal("123456789012345678901234567890.12345")
