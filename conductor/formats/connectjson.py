"""Kafka Connect's JsonConverter with schemas.enable=true: the {"schema", "payload"} envelope,
the payload read as its schema types it, with Connect's logical types.

The result is what the sinks already take, JSON values, with the logical types spelled as the
stores read them (Stream-Reactor's Elasticsearch sink writes the same, but for Date and Time):
- Timestamp: epoch milliseconds (an int), as Stream-Reactor writes it;
- Date: an ISO date, "2024-01-05" (Stream-Reactor writes "2024-01-5T00:00:00.000Z", which
  neither an Elasticsearch date nor a Cassandra date column reads as that day);
- Time: an ISO time of day, "13:45:00.250" (Stream-Reactor: in the JVM's zone, with an offset);
- Decimal: a decimal.Decimal, exact: the JSON document gets its digits as they are, Cassandra a
  decimal;
- bytes: the base64 text, checked (Elasticsearch takes it as binary, Cassandra for a blob).

Where Kafka Connect reads a mismatched payload as 0, false or null (it does not check the JSON
type of a primitive), conductor refuses the record: it goes to errors.tolerance, never to the
store as another value.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from conductor.errors import RecordError
from conductor.formats.spelling import DAY_MS, from_base64, iso_date, json_kind, time_of_day

TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
DATE = "org.apache.kafka.connect.data.Date"
TIME = "org.apache.kafka.connect.data.Time"
DECIMAL = "org.apache.kafka.connect.data.Decimal"
INTEGERS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
ENVELOPE = (
    'JsonConverter with schemas.enable requires "schema" and "payload" fields and may not contain '
    "additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in "
    "your converter configuration."
)


def read_envelope(raw: bytes, side: str = "value") -> Any:
    """The payload of one envelope, typed by its schema; None for a tombstone (no bytes)."""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise RecordError(f"{side} is not valid JSON ({error})") from error
    if type(envelope) is not dict or envelope.keys() != {"schema", "payload"}:
        raise RecordError(f"{side}: {ENVELOPE}")
    schema, payload = envelope["schema"], envelope["payload"]
    if schema is None:
        return payload  # no schema: the payload as schemaless JSON
    return convert(schema, payload, side)


def convert(schema: Any, value: Any, where: str) -> Any:
    if type(schema) is not dict or not isinstance(schema.get("type"), str):
        raise RecordError(f"{where}: schema must contain 'type' field")
    kind = schema["type"]
    if value is None:
        if "default" in schema and schema["default"] is not None:
            return convert(schema, schema["default"], where)
        if schema.get("optional") is True:
            return None
        raise RecordError(f"{where}: invalid null value for required {kind.upper()} field")
    name = schema.get("name")
    if name in LOGICAL:
        return LOGICAL[name](schema, value, where)
    if kind in INTEGERS:
        return _integer(value, INTEGERS[kind], kind, where)
    if kind in ("float", "double"):
        if type(value) in (int, float):
            return float(value)
        raise _mismatch(where, kind, value)
    if kind == "boolean":
        if type(value) is bool:
            return value
        raise _mismatch(where, kind, value)
    if kind == "string":
        if type(value) is str:
            return value
        raise _mismatch(where, kind, value)
    if kind == "bytes":
        _base64(value, where)
        return value
    if kind == "array":
        items = _part(schema, "items", where, "Array schema did not specify the element type")
        if type(value) is not list:
            raise _mismatch(where, kind, value)
        return [convert(items, item, f"{where}[{n}]") for n, item in enumerate(value)]
    if kind == "map":
        keys = _part(schema, "keys", where, "Map schema did not specify the key type")
        values = _part(schema, "values", where, "Map schema did not specify the value type")
        return _map(keys, values, value, where)
    if kind == "struct":
        fields = schema.get("fields")
        if type(fields) is not list:
            raise RecordError(f'{where}: struct schema\'s "fields" argument is not an array')
        if type(value) is not dict:
            raise RecordError(
                f"{where}: structs should be encoded as JSON objects, but found {json_kind(value)}"
            )
        result = {}
        for field in fields:
            name = field.get("field") if type(field) is dict else None
            if not isinstance(name, str):
                raise RecordError(f"{where}: struct schema's field name not specified properly")
            result[name] = convert(field, value.get(name), f"{where}.{name}")
        return result
    raise RecordError(f"{where}: unknown schema type: {kind}")


def _integer(value: Any, bits: int, kind: str, where: str) -> int:
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise _mismatch(where, kind, value)
    if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise RecordError(f"{where}: {value} is out of range for {kind}")
    return value


def _timestamp(schema: dict, value: Any, where: str) -> int:
    if type(value) is not int:
        raise RecordError(
            f"{where}: invalid type for Timestamp, underlying representation should be integral but was "
            f"{json_kind(value)}"
        )
    return value


def _date(schema: dict, value: Any, where: str) -> str:
    if type(value) is not int:
        raise RecordError(
            f"{where}: invalid type for Date, underlying representation should be integer but was {json_kind(value)}"
        )
    return iso_date(value, where)


def _time(schema: dict, value: Any, where: str) -> str:
    if type(value) is not int or not 0 <= value < DAY_MS:
        raise RecordError(
            f"{where}: invalid type for Time, underlying representation should be integer milliseconds "
            f"within a day but was {value!r}"
        )
    return time_of_day(value, where)


def _decimal(schema: dict, value: Any, where: str) -> Decimal:
    try:
        scale = int((schema.get("parameters") or {}).get("scale", 0))
    except (TypeError, ValueError):
        raise RecordError(f"{where}: Decimal's scale parameter is not an integer") from None
    if type(value) in (int, float):
        return Decimal(repr(value)) if type(value) is float else Decimal(value)
    if type(value) is str:
        unscaled = int.from_bytes(_base64(value, where), "big", signed=True)
        return Decimal(f"{unscaled}E{-scale}")  # exact, however many digits (scaleb rounds to 28)
    raise RecordError(
        f"{where}: invalid type for Decimal, underlying representation should be numeric or bytes but was "
        f"{json_kind(value)}"
    )


LOGICAL = {TIMESTAMP: _timestamp, DATE: _date, TIME: _time, DECIMAL: _decimal}


def _map(keys: dict, values: dict, value: Any, where: str) -> Any:
    if keys.get("type") == "string":
        if type(value) is not dict:
            raise RecordError(
                f"{where}: maps with string fields should be encoded as JSON objects, but found {json_kind(value)}"
            )
        return {k: convert(values, v, f"{where}.{k}") for k, v in value.items()}
    if type(value) is not list:
        raise RecordError(
            f"{where}: maps with non-string fields should be encoded as JSON array of tuples, but found "
            f"{json_kind(value)}"
        )
    pairs = []
    for entry in value:
        if type(entry) is not list or len(entry) != 2:
            raise RecordError(f"{where}: found invalid map entry instead of array tuple: {entry!r}")
        pairs.append([convert(keys, entry[0], f"{where} key"), convert(values, entry[1], f"{where} value")])
    return pairs  # as Stream-Reactor writes a map without string keys: [[key, value], ...]


def _part(schema: dict, name: str, where: str, missing: str) -> dict:
    part = schema.get(name)
    if type(part) is not dict:
        raise RecordError(f"{where}: {missing}")
    return part


def _base64(value: Any, where: str) -> bytes:
    if type(value) is not str:
        raise RecordError(f"{where}: invalid bytes field: expected base64 text, found {json_kind(value)}")
    decoded = from_base64(value)
    if decoded is None:
        raise RecordError(f"{where}: invalid bytes field: not base64")
    return decoded


def _mismatch(where: str, kind: str, value: Any) -> RecordError:
    return RecordError(f"{where}: the schema says {kind}, the payload holds {json_kind(value)} {value!r:.60}")
