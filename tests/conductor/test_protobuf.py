"""ProtobufConverter's records read as Kafka Connect's ProtobufData reads them, from .proto
schemas registered with the real registry: scalars and their defaults, Timestamp, Date,
TimeOfDay and Decimal, wrappers, enums, oneofs, maps, nested and repeated messages, the message
indexes, references, and what cannot be read as the record's error."""

from __future__ import annotations

import uuid
from decimal import Decimal
from importlib import resources
from types import MappingProxyType

import pytest
from support.registry import framed, protobuf, register

from conductor.config.settings import ConverterSettings
from conductor.errors import RecordError
from conductor.formats import reader

pytestmark = pytest.mark.servers

READINGS = """
syntax = "proto3";
package home.sensors;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "google/type/date.proto";
import "google/type/timeofday.proto";
import "confluent/type/decimal.proto";

message Reading {
  string sensor_id = 1;
  double celsius = 2;
  float ratio = 3;
  sint32 delta = 4;
  sfixed32 offset = 5;
  uint32 u32 = 6;
  fixed32 f32 = 7;
  int64 i64 = 8;
  uint64 u64 = 9;
  bool ok = 10;
  bytes raw = 11;
  Kind kind = 12;
  google.protobuf.Timestamp at = 13;
  google.type.Date day = 14;
  google.type.TimeOfDay time = 15;
  confluent.type.Decimal price = 16;
  google.protobuf.StringValue note = 17;
  google.protobuf.UInt32Value count = 18;
  optional int32 level = 19;
  oneof source { string device = 20; string manual = 21; }
  oneof reading { int32 number = 22; string text = 23; Place where = 24; }
  map<string, double> limits = 25;
  map<int32, string> codes = 26;
  repeated string tags = 27;
  repeated Place visits = 28;
  Place place = 29;

  enum Kind { INDOOR = 0; OUTDOOR = 1; }
  message Place {
    string room = 1;
    Corner corner = 2;
    message Corner { int32 x = 1; }
  }
}

message Alarm {
  string sensor_id = 1;
  bool loud = 2;
}
"""
# What grpcio-tools does not ship, to build the test's messages (the registry knows them).
GOOGLE_TYPES = {
    "google/type/date.proto": 'syntax = "proto3"; package google.type;\n'
    "message Date { int32 year = 1; int32 month = 2; int32 day = 3; }",
    "google/type/timeofday.proto": 'syntax = "proto3"; package google.type;\n'
    "message TimeOfDay { int32 hours = 1; int32 minutes = 2; int32 seconds = 3; int32 nanos = 4; }",
    "confluent/type/decimal.proto": 'syntax = "proto3"; package confluent.type;\n'
    "message Decimal { bytes value = 1; uint32 precision = 2; int32 scale = 3; }",
}
AT_SECONDS = 1_767_225_600  # 2026-01-01T00:00:00Z
VALUES = {
    "sensor_id": "s-1",
    "celsius": 21.5,
    "ratio": 0.25,
    "delta": -3,
    "offset": -7,
    "u32": 4_000_000_000,  # more than an int32 holds: Connect's int64
    "f32": 4_000_000_001,
    "i64": -(2**62),
    "u64": 2**64 - 1,  # Connect's int64 holds it as two's complement: -1
    "ok": True,
    "raw": b"\x00\xff",
    "kind": 1,
    "at": {"seconds": AT_SECONDS, "nanos": 123_999_999},  # truncated to milliseconds
    "day": {"year": 2026, "month": 1, "day": 5},
    "time": {"hours": 12, "minutes": 34, "seconds": 56, "nanos": 789_000_000},
    "price": {"value": (123_400).to_bytes(3, "big", signed=True), "scale": 4},
    "note": {"value": "calibrated"},
    "count": {"value": 0},  # set, though 0
    "level": 0,  # set, though 0
    "manual": "by hand",
    "where": {"room": "attic", "corner": {"x": 2}},
    "limits": {"high": 30.0},
    "codes": {7: "seven", 2: "two", 1000: "many", -5: "minus"},
    "tags": ["a", "b"],
    "visits": [{"room": "hall"}, {}],
    "place": {"room": "kitchen"},
}


def protobuf_reader(url: str, side: str = "value", **options: bool):
    settings = ConverterSettings(
        "protobuf",
        url,
        None,
        MappingProxyType(
            {
                "wrapper.for.nullables": False,
                "int.for.enums": False,
                "generate.index.for.unions": True,
                **options,
            }
        ),
    )
    return reader(settings, side, {})


def subject() -> str:
    return f"readings-{uuid.uuid4().hex[:8]}-value"


def reading(schema_id: int, values: dict | None = None, message: str = "home.sensors.Reading", **kw) -> bytes:
    return protobuf(schema_id, READINGS, message, values, imports=GOOGLE_TYPES, **kw)


def test_values_read_as_kafka_connect_reads_them(schema_registry):
    schema_id = register(schema_registry, subject(), READINGS, "PROTOBUF")
    read = protobuf_reader(schema_registry)
    # A Decimal with a precision is rounded to it (half up), as BigDecimal with a MathContext.
    price = {"value": (123_456).to_bytes(3, "big", signed=True), "scale": 2, "precision": 4}
    assert read(reading(schema_id, {"price": price}))["price"] == Decimal("1235")
    assert read(reading(schema_id, VALUES)) == {
        # oneofs first, as Connect's struct: "<oneof>_<its index>", a field per member
        "source_0": {"device": None, "manual": "by hand"},
        "reading_1": {"number": None, "text": None, "where": {"room": "attic", "corner": {"x": 2}}},
        "sensor_id": "s-1",
        "celsius": 21.5,
        "ratio": 0.25,
        "delta": -3,
        "offset": -7,
        "u32": 4_000_000_000,
        "f32": 4_000_000_001,
        "i64": -(2**62),
        "u64": -1,
        "ok": True,
        "raw": "AP8=",
        "kind": "OUTDOOR",
        "at": AT_SECONDS * 1000 + 123,  # Timestamp: epoch milliseconds
        "day": "2026-01-05",
        "time": "12:34:56.789",
        "price": Decimal("12.3400"),  # exact, scale kept
        "note": {"value": "calibrated"},  # a wrapper is a struct by default
        "count": {"value": 0},
        "level": 0,
        "limits": {"high": 30.0},
        "codes": [[-5, "minus"], [2, "two"], [7, "seven"], [1000, "many"]],  # not strings: pairs, by key
        "tags": ["a", "b"],
        "visits": [{"room": "hall", "corner": None}, {"room": "", "corner": None}],
        "place": {"room": "kitchen", "corner": None},
    }


def test_what_is_not_set(schema_registry):
    schema_id = register(schema_registry, subject(), READINGS, "PROTOBUF")
    read = protobuf_reader(schema_registry)
    # proto3 scalars hold their defaults; messages, wrappers, `optional` and oneofs are null.
    assert read(reading(schema_id, {})) == {
        "source_0": None,
        "reading_1": None,
        "sensor_id": "",
        "celsius": 0.0,
        "ratio": 0.0,
        "delta": 0,
        "offset": 0,
        "u32": 0,
        "f32": 0,
        "i64": 0,
        "u64": 0,
        "ok": False,
        "raw": "",
        "kind": "INDOOR",
        "at": None,
        "day": None,
        "time": None,
        "price": None,
        "note": None,
        "count": None,
        "level": None,
        "limits": {},
        "codes": [],
        "tags": [],
        "visits": [],
        "place": None,
    }
    # An enum number the schema does not name, as protobuf-java names it.
    unknown = reading(schema_id, {"sensor_id": "x"}) + b"\x60\x07"  # field 12 (kind) = 7
    assert read(unknown)["kind"] == "UNKNOWN_ENUM_VALUE_Kind_7"


def test_wrappers_enums_and_oneofs_as_the_options_say(schema_registry):
    schema_id = register(schema_registry, subject(), READINGS, "PROTOBUF")
    record = reading(schema_id, VALUES)
    unwrapped = protobuf_reader(schema_registry, **{"wrapper.for.nullables": True})(record)
    assert (unwrapped["note"], unwrapped["count"]) == ("calibrated", 0)
    empty = protobuf_reader(schema_registry, **{"wrapper.for.nullables": True})(reading(schema_id, {}))
    assert (empty["note"], empty["count"]) == (None, None)
    assert protobuf_reader(schema_registry, **{"int.for.enums": True})(record)["kind"] == 1
    plain = protobuf_reader(schema_registry, **{"generate.index.for.unions": False})(record)
    assert plain["source"] == {"device": None, "manual": "by hand"}
    assert plain["reading"]["where"] == {"room": "attic", "corner": {"x": 2}}
    assert "source_0" not in plain and "reading_1" not in plain


def test_the_message_indexes_pick_the_message(schema_registry):
    schema_id = register(schema_registry, subject(), READINGS, "PROTOBUF")
    read = protobuf_reader(schema_registry)
    alarm = reading(schema_id, {"sensor_id": "s-9", "loud": True}, "home.sensors.Alarm", indexes=(1,))
    assert read(alarm) == {"sensor_id": "s-9", "loud": True}
    # [0, 0]: Reading's first nested message (its map entries are not counted, its enum neither)
    place = reading(schema_id, {"room": "attic"}, "home.sensors.Reading.Place", indexes=(0, 0))
    assert read(place) == {"room": "attic", "corner": None}
    corner = reading(schema_id, {"x": 5}, "home.sensors.Reading.Place.Corner", indexes=(0, 0, 0))
    assert read(corner) == {"x": 5}
    body = reading(schema_id, {"sensor_id": "s-1"})[6:]
    assert read(framed(schema_id, b"\x02\x00" + body))["sensor_id"] == "s-1"  # [0] written in full
    with pytest.raises(
        RecordError, match=rf"schema id {schema_id}: its message indexes \[2\] name no message"
    ):
        read(framed(schema_id, b"\x02\x04" + body))


def test_references_to_other_subjects(schema_registry):
    place_subject = f"place-{uuid.uuid4().hex[:8]}"
    place = 'syntax = "proto3";\npackage home;\nmessage Place { string room = 1; int32 floor = 2; }\n'
    register(schema_registry, place_subject, place, "PROTOBUF")
    visit = (
        'syntax = "proto3";\npackage home.visits;\nimport "home/place.proto";\n'
        "message Visit { string who = 1; home.Place place = 2; }\n"
    )
    schema_id = register(
        schema_registry, subject(), visit, "PROTOBUF",
        references=[{"name": "home/place.proto", "subject": place_subject, "version": 1}],
    )  # fmt: skip
    record = protobuf(
        schema_id, visit, "home.visits.Visit", {"who": "ann", "place": {"room": "hall", "floor": 1}},
        imports={"home/place.proto": place},
    )  # fmt: skip
    assert protobuf_reader(schema_registry)(record) == {"who": "ann", "place": {"room": "hall", "floor": 1}}
    # A reference's name is where it is written for protoc: never out of its temporary folder.
    escaping = visit.replace("home/place.proto", "../../place.proto")
    escaping_id = register(
        schema_registry, subject(), escaping, "PROTOBUF",
        references=[{"name": "../../place.proto", "subject": place_subject, "version": 1}],
    )  # fmt: skip
    with pytest.raises(
        RecordError, match=f"schema id {escaping_id} imports '../../place.proto', a path out of"
    ):
        protobuf_reader(schema_registry)(framed(escaping_id, b"\x00"))


def test_proto2_presence_and_a_wrapper_written_alone(schema_registry):
    proto2 = (
        'syntax = "proto2";\npackage legacy;\n'
        "message Old { required string id = 1; optional int32 level = 2; optional int32 seven = 3 [default = 7]; }\n"
    )
    schema_id = register(schema_registry, subject(), proto2, "PROTOBUF")
    read = protobuf_reader(schema_registry)
    # Connect's optional.for.proto2: an unset proto2 optional is null, not its default.
    assert read(protobuf(schema_id, proto2, "legacy.Old", {"id": "a"})) == {
        "id": "a",
        "level": None,
        "seven": None,
    }
    assert read(protobuf(schema_id, proto2, "legacy.Old", {"id": "b", "seven": 8}))["seven"] == 8
    with pytest.raises(RecordError, match="required fields not set: id"):
        read(framed(schema_id, b"\x00\x10\x01"))  # level = 1, no id
    # ProtobufConverter writes a raw string (a key) as wrappers.proto's StringValue, message [7]:
    # Connect reads it back as the string (wrapper.for.raw.primitives).
    wrappers = (resources.files("grpc_tools") / "_proto/google/protobuf/wrappers.proto").read_text()
    key_id = register(schema_registry, subject().replace("-value", "-key"), wrappers, "PROTOBUF")
    key = protobuf(key_id, wrappers, "google.protobuf.StringValue", {"value": "s-1"}, indexes=(7,))
    assert protobuf_reader(schema_registry, "key")(key) == "s-1"


def test_what_cannot_be_read_is_the_records_error(schema_registry):
    schema_id = register(schema_registry, subject(), READINGS, "PROTOBUF")
    read = protobuf_reader(schema_registry)
    with pytest.raises(RecordError, match="Unknown magic byte"):
        read(b'{"celsius": 1}')
    with pytest.raises(RecordError, match="has no schema id 987651"):
        read(framed(987651, b"\x00"))
    with pytest.raises(RecordError, match=f"is not protobuf of schema id {schema_id}"):
        read(framed(schema_id, b"\x00\x0a\x05ab"))  # a string cut short
    with pytest.raises(
        RecordError, match=f"is not protobuf of schema id {schema_id}.*Timestamp is not valid"
    ):
        read(reading(schema_id, {"at": {"seconds": AT_SECONDS, "nanos": -1}}))
    with pytest.raises(
        RecordError, match=f"is not protobuf of schema id {schema_id}.*month must be in 1..12"
    ):
        read(reading(schema_id, {"day": {"year": 2026}}))  # Connect's Calendar refuses month 0 too
    # The registry takes this text; protoc does not.
    refused = 'syntax = "proto3";\nmessage X { int32 a = 1; int32 b = 1; }\n'
    refused_id = register(schema_registry, subject(), refused, "PROTOBUF")
    with pytest.raises(
        RecordError, match=rf"schema id {refused_id} is a \.proto protoc refuses: .*already been used"
    ):
        read(framed(refused_id, b"\x00"))
    avro_id = register(schema_registry, subject(), {"type": "record", "name": "R", "fields": []})
    with pytest.raises(RecordError, match=f"schema id {avro_id} is a AVRO schema, but value.converter is "):
        read(framed(avro_id, b""))
