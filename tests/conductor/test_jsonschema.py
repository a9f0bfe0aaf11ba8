"""JsonSchemaConverter's records read as Kafka Connect's JsonSchemaData reads them, from schemas
registered with the real registry: types and connect.type, logical types by title, optional and
general oneOf, nested objects, missing properties, arrays and maps, references to other subjects,
json.fail.invalid.schema, and what does not fit as the record's error, with its path."""

from __future__ import annotations

import base64
import uuid
from decimal import Decimal
from types import MappingProxyType

import orjson
import pytest
from support.registry import avro, framed, register

from conductor.config.settings import ConverterSettings
from conductor.errors import RecordError
from conductor.formats import reader

pytestmark = pytest.mark.servers

DRAFT7 = "http://json-schema.org/draft-07/schema#"
ONE_OF = "io.confluent.connect.json.OneOf.field."
TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
DECIMAL = {
    "type": "number",
    "title": "org.apache.kafka.connect.data.Decimal",
    "connect.type": "bytes",
    "connect.parameters": {"scale": "4"},
}
READING = {
    "$schema": DRAFT7,
    "title": "Reading",
    "type": "object",
    "properties": {
        "sensor_id": {"type": "string"},
        "celsius": {"type": "number"},
        "celsius32": {"type": "number", "connect.type": "float32"},
        "count": {"type": "integer"},
        "small": {"type": "integer", "connect.type": "int8"},
        "ok": {"type": "boolean"},
        "at": {"type": "integer", "title": TIMESTAMP, "connect.type": "int64"},
        "day": {"type": "integer", "title": "org.apache.kafka.connect.data.Date", "connect.type": "int32"},
        "time": {"type": "integer", "title": "org.apache.kafka.connect.data.Time", "connect.type": "int32"},
        "price": DECIMAL,
        "price_bytes": {**DECIMAL, "type": "string"},
        "raw": {"type": "string", "connect.type": "bytes"},
        "kind": {"enum": ["INDOOR", "OUTDOOR"]},
        "humidity": {"oneOf": [{"type": "null"}, {"type": "number"}]},
        "note": {"type": ["string", "null"]},
        "place": {
            "type": "object",
            "properties": {"room": {"type": "string"}, "floor": {"type": "integer", "connect.type": "int16"}},
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "days": {
            "type": "array",
            "items": {"type": "integer", "title": "org.apache.kafka.connect.data.Date"},
        },
        "limits": {"type": "object", "connect.type": "map", "additionalProperties": DECIMAL},
        "by_hour": {
            "type": "array",
            "connect.type": "map",
            "items": {
                "type": "object",
                "properties": {"key": {"type": "integer"}, "value": {"type": "number"}},
            },
        },
        "missing": {"type": "string"},
        "extra": {"type": "object"},
    },
}
AT = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
BODY = b"""{"sensor_id": "s-1", "celsius": 21, "celsius32": 0.5, "count": 9007199254740993, "small": -7,
"ok": true, "at": 1767225600123, "day": 20454, "time": 45296789,
"price": 123456789012345.67891234, "price_bytes": "AeJA", "raw": "AP8=", "kind": "OUTDOOR",
"humidity": null, "note": "n", "place": {"room": "attic", "floor": 2, "not_in_schema": 1},
"tags": ["a", "b"], "days": [0, 20454], "limits": {"high": 30.0000, "low": -1},
"by_hour": [{"key": 7, "value": 1.5}], "extra": {"anything": [1, {"goes": null}]}, "unnamed": 1}"""


def json_schema_reader(url: str, side: str = "value", validate: bool = False):
    settings = ConverterSettings(
        "json-schema", url, None, MappingProxyType({"json.fail.invalid.schema": validate})
    )
    return reader(settings, side, {})


def subject() -> str:
    return f"readings-{uuid.uuid4().hex[:8]}-value"


def test_values_read_as_kafka_connect_reads_them(schema_registry):
    schema_id = register(schema_registry, subject(), READING, "JSON")
    assert json_schema_reader(schema_registry)(framed(schema_id, BODY)) == {
        "sensor_id": "s-1",
        "celsius": 21.0,  # number is float64
        "celsius32": 0.5,
        "count": 9007199254740993,  # integer is int64: every digit
        "small": -7,
        "ok": True,
        "at": AT,  # Timestamp by title: epoch milliseconds
        "day": "2026-01-01",  # Date: an ISO date
        "time": "12:34:56.789",  # Time: an ISO time of day
        "price": Decimal("123456789012345.67891234"),  # exact, as written (no float in between)
        "price_bytes": Decimal("12.3456"),  # base64 of the unscaled 123456, scale 4
        "raw": "AP8=",  # connect.type bytes: the base64 text
        "kind": "OUTDOOR",
        "humidity": None,  # oneOf [null, number]: an optional number
        "note": "n",
        "place": {"room": "attic", "floor": 2},  # a struct: only its properties
        "tags": ["a", "b"],
        "days": ["1970-01-01", "2026-01-01"],
        "limits": {"high": Decimal("30.0000"), "low": Decimal(-1)},  # connect.type map
        "by_hour": [[7, 1.5]],  # a map with integer keys, as pairs
        "missing": None,  # absent from the payload: null
        "extra": {"anything": [1, {"goes": None}]},  # an object without properties: as it came
    }
    assert list(json_schema_reader(schema_registry)(framed(schema_id, BODY))) == list(READING["properties"])


def test_optional_and_general_one_of(schema_registry):
    schema = {
        "$schema": DRAFT7,
        "type": "object",
        "properties": {
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": 5},
            "either": {
                "oneOf": [
                    {"type": "integer", "connect.type": "int32"},
                    {"type": "string"},
                    {"type": "object", "properties": {"room": {"type": "string"}}},
                    {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}},
                ]
            },
        },
    }
    schema_id = register(schema_registry, subject(), schema, "JSON")
    read = json_schema_reader(schema_registry)

    def either(value) -> dict:
        return read(framed(schema_id, orjson.dumps({"maybe": 1, "either": value})))["either"]

    # Connect's io.confluent.connect.json.OneOf struct: a field per branch, the one that fits set.
    assert either(7) == {f"{ONE_OF}0": 7, f"{ONE_OF}1": None, f"{ONE_OF}2": None, f"{ONE_OF}3": None}
    assert either("x")[f"{ONE_OF}1"] == "x"
    # An object goes to the object branch naming most of its keys.
    assert either({"lat": 1, "lon": 2})[f"{ONE_OF}3"] == {"lat": 1.0, "lon": 2.0}
    assert either({"room": "hall"})[f"{ONE_OF}2"] == {"room": "hall"}
    assert either({})[f"{ONE_OF}2"] == {"room": None}, "a tie: the first object branch"
    with pytest.raises(
        RecordError,
        match=r"value\.either: the schema says one of 4 schemas \(oneOf\), the payload holds a boolean",
    ):
        either(True)
    with pytest.raises(RecordError, match=rf"value\.either\.{ONE_OF}0: 3000000000 is out of range for int32"):
        either(3_000_000_000)
    # The default stands in for a null or an absent value.
    assert read(framed(schema_id, b'{"maybe": null, "either": 1}'))["maybe"] == 5
    assert read(framed(schema_id, b'{"either": 1}'))["maybe"] == 5


def test_references_to_other_subjects_and_definitions(schema_registry):
    place = {
        "$schema": DRAFT7,
        "type": "object",
        "properties": {"room": {"type": "string"}, "since": {"$ref": "#/definitions/day"}},
        "definitions": {"day": {"type": "integer", "title": "org.apache.kafka.connect.data.Date"}},
    }
    place_subject = f"place-{uuid.uuid4().hex[:8]}"
    register(schema_registry, place_subject, place, "JSON")
    tree = {
        "$schema": DRAFT7,
        "type": "object",
        "properties": {
            "place": {"$ref": "place.json"},
            "at": {"$ref": "#/definitions/at"},
            "children": {"type": "array", "items": {"$ref": "#"}},  # a schema naming itself
        },
        "definitions": {"at": {"type": "integer", "title": TIMESTAMP}},
    }
    schema_id = register(
        schema_registry, subject(), tree, "JSON",
        references=[{"name": "place.json", "subject": place_subject, "version": 1}],
    )  # fmt: skip
    body = {
        "place": {"room": "hall", "since": 1},
        "at": AT,
        "children": [{"place": {"room": "x"}, "children": []}],
    }
    assert json_schema_reader(schema_registry)(framed(schema_id, orjson.dumps(body))) == {
        "place": {"room": "hall", "since": "1970-01-02"},
        "at": AT,
        "children": [{"place": {"room": "x", "since": None}, "at": None, "children": []}],
    }
    with pytest.raises(RecordError, match=r"value\.children\[0\]\.place\.since: the schema says a Date"):
        json_schema_reader(schema_registry)(
            framed(schema_id, b'{"children": [{"place": {"room": "x", "since": true}}]}')
        )


@pytest.mark.parametrize(
    ("payload", "path", "reason"),
    [
        ({"sensor_id": 7}, "value.sensor_id", "the schema says string, the payload holds a number 7"),
        ({"count": "12"}, "value.count", "the schema says integer (int64), the payload holds a string '12'"),
        ({"celsius": "hot"}, "value.celsius", "the schema says number (float64), the payload holds a string"),
        ({"ok": 1}, "value.ok", "the schema says boolean, the payload holds a number 1"),
        ({"small": 300}, "value.small", "300 is out of range for int8"),
        ({"place": {"floor": 1.5}}, "value.place.floor", "the schema says integer (int16)"),
        ({"place": []}, "value.place", "the schema says an object (a struct), the payload holds an array"),
        ({"tags": ["a", None]}, "value.tags[1]", "null, but the schema's string is not optional"),
        ({"days": [1, "x"]}, "value.days[1]", "'x' is not an ISO date"),
        ({"limits": {"high": "x"}}, "value.limits.high", "invalid bytes: 'x' is not base64"),
        ({"by_hour": [{"key": "7", "value": 1}]}, "value.by_hour[0]", "the schema says integer (int64)"),
        ({"raw": "not base64!"}, "value.raw", "is not base64"),
        ({"time": 86_400_000}, "value.time", "is not a time within a day"),
        ({"at": "yesterday"}, "value.at", "'yesterday' is not an ISO timestamp"),
        ({"sensor_id": None}, "value.sensor_id", "null, but the schema's string is not optional"),
    ],
)
def test_a_value_that_does_not_fit_is_the_records_error_with_its_path(schema_registry, payload, path, reason):
    schema_id = register(schema_registry, subject(), READING, "JSON")
    with pytest.raises(RecordError) as caught:
        json_schema_reader(schema_registry)(framed(schema_id, orjson.dumps(payload)))
    assert caught.value.reason.startswith(f"{path}: "), caught.value.reason
    assert reason in caught.value.reason


def test_json_fail_invalid_schema_validates_each_value(schema_registry):
    schema = {
        "$schema": DRAFT7,
        "type": "object",
        "properties": {
            "celsius": {"type": "number", "maximum": 100},
            "place": {"type": "object", "properties": {"room": {"type": "string", "minLength": 2}}},
        },
        "required": ["celsius"],
        "additionalProperties": False,
    }
    schema_id = register(schema_registry, subject(), schema, "JSON")
    too_hot = framed(schema_id, b'{"celsius": 250, "place": {"room": "hall"}}')
    short_room = framed(schema_id, b'{"celsius": 20, "place": {"room": "h"}}')
    no_celsius = framed(schema_id, b'{"place": {"room": "hall"}, "other": 1}')
    # Confluent's default (false): only the types are checked; the rules are not.
    lenient = json_schema_reader(schema_registry)
    assert lenient(too_hot) == {"celsius": 250.0, "place": {"room": "hall"}}
    assert lenient(short_room)["place"] == {"room": "h"}
    assert lenient(no_celsius) == {"celsius": None, "place": {"room": "hall"}}
    strict = json_schema_reader(schema_registry, validate=True)
    assert strict(framed(schema_id, b'{"celsius": 20.5}')) == {"celsius": 20.5, "place": None}
    with pytest.raises(
        RecordError, match=r"^value\.celsius: fails the 'maximum' rule of JSON Schema id \d+: 250"
    ):
        strict(too_hot)
    with pytest.raises(RecordError, match=r"^value\.place\.room: fails the 'minLength' rule"):
        strict(short_room)
    with pytest.raises(RecordError, match=r"^value: fails the '(required|additionalProperties)' rule"):
        strict(no_celsius)


def test_validation_follows_references_and_keeps_decimals_exact(schema_registry):
    place = {
        "$schema": DRAFT7,
        "type": "object",
        "properties": {"room": {"type": "string", "enum": ["hall"]}},
    }
    place_subject = f"place-{uuid.uuid4().hex[:8]}"
    register(schema_registry, place_subject, place, "JSON")
    schema = {
        "$schema": DRAFT7,
        "type": "object",
        "properties": {"place": {"$ref": "place.json"}, "price": {**DECIMAL, "minimum": 0}},
    }
    schema_id = register(
        schema_registry, subject(), schema, "JSON",
        references=[{"name": "place.json", "subject": place_subject, "version": 1}],
    )  # fmt: skip
    strict = json_schema_reader(schema_registry, validate=True)
    value = strict(framed(schema_id, b'{"place": {"room": "hall"}, "price": 0.10000000000000000001}'))
    assert value == {"place": {"room": "hall"}, "price": Decimal("0.10000000000000000001")}
    with pytest.raises(RecordError, match=r"^value\.place\.room: fails the 'enum' rule"):
        strict(framed(schema_id, b'{"place": {"room": "attic"}}'))
    with pytest.raises(RecordError, match=r"^value\.price: fails the 'minimum' rule"):
        strict(framed(schema_id, b'{"price": -1.5}'))


def test_what_cannot_be_read_is_the_records_error(schema_registry):
    schema_id = register(schema_registry, subject(), READING, "JSON")
    read = json_schema_reader(schema_registry)
    with pytest.raises(RecordError, match="Unknown magic byte"):
        read(b'{"celsius": 1}')
    with pytest.raises(RecordError, match="has no schema id 987651"):
        read(framed(987651, b"{}"))
    with pytest.raises(RecordError, match=f"value is not json of schema id {schema_id}: JSONDecodeError"):
        read(framed(schema_id, b'{"celsius": 1'))
    with pytest.raises(RecordError, match=f"value is not json of schema id {schema_id}"):
        read(framed(schema_id, b"\xff\xfe not utf-8"))
    with pytest.raises(
        RecordError, match=r"^value: the schema says an object \(a struct\), the payload holds an array"
    ):
        read(framed(schema_id, b"[1, 2]"))
    avro_id = register(schema_registry, subject(), {"type": "record", "name": "R", "fields": []})
    with pytest.raises(RecordError, match=f"schema id {avro_id} is a AVRO schema, but value.converter is "):
        read(avro(avro_id, {"type": "record", "name": "R", "fields": []}, {}))
    dangling = register(
        schema_registry, subject(), {"$schema": DRAFT7, "properties": {"p": {"$ref": "nowhere.json"}}}, "JSON"
    )
    with pytest.raises(RecordError, match=r"\$ref 'nowhere.json' cannot be resolved"):
        read(framed(dangling, b"{}"))


def test_a_key_and_a_schema_without_properties(schema_registry):
    name = subject()
    key_id = register(
        schema_registry, name.replace("-value", "-key"), {"$schema": DRAFT7, "type": "string"}, "JSON"
    )
    assert json_schema_reader(schema_registry, "key")(framed(key_id, b'"s-1"')) == "s-1"
    with pytest.raises(RecordError, match=r"^key: the schema says string, the payload holds a number 1"):
        json_schema_reader(schema_registry, "key")(framed(key_id, b"1"))
    # A bare object schema: JsonSchemaData would make an empty struct, conductor keeps the object.
    open_id = register(schema_registry, name, {"$schema": DRAFT7, "type": "object"}, "JSON")
    body = {"celsius": 1.5, "nested": {"a": [1]}}
    assert json_schema_reader(schema_registry)(framed(open_id, orjson.dumps(body))) == body
    merged = {
        "$schema": DRAFT7,
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer", "connect.type": "int8"}}},
            {"properties": {"b": {"type": "string", "connect.type": "bytes"}}},
        ],
    }
    merged_id = register(schema_registry, subject(), merged, "JSON")
    raw = base64.b64encode(b"\x01").decode()
    assert json_schema_reader(schema_registry)(framed(merged_id, orjson.dumps({"a": 1, "b": raw}))) == {
        "a": 1,
        "b": raw,
    }
