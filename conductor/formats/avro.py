"""Confluent's AvroConverter: Avro bodies read with fastavro, into what Kafka Connect's AvroData
makes of them, spelled as every format is (conductor/formats/spelling.py).

- timestamp-millis is a Connect Timestamp: epoch milliseconds, as the long already holds;
- date and time-millis are Connect's Date and Time: an ISO date, an ISO time of day;
- decimal is a Connect Decimal: an exact decimal.Decimal;
- timestamp-micros, time-micros, the local-timestamps and uuid are not known to Connect: their
  plain long or string;
- bytes and fixed are base64 text; an enum its symbol; [null, X] is X or null;
- any other union is Connect's io.confluent.connect.avro.Union struct: one field per branch,
  named after the branch's type (a record, enum or fixed by its short name, or its full name
  with enhanced.avro.schema.support), only the branch written set.

fastavro reads; one fix-up, compiled per schema, walks only the parts of a value that need one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import fastavro
import orjson

from conductor.errors import RecordError
from conductor.formats.registered import Body, RegisteredFormat
from conductor.formats.spelling import base64_text, iso_date, time_of_day
from conductor.registry import RegisteredSchema

KEPT = "decimal"  # the one logical type fastavro reads as Connect does
MARK = "conductor.logical"  # the logical type, moved aside so fastavro reads the raw value
Fix = Callable[[Any], Any]
PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


class AvroFormat(RegisteredFormat):
    schema_type = "AVRO"
    converter = "io.confluent.connect.avro.AvroConverter"

    def compile(self, schema: RegisteredSchema) -> Body:
        named: dict[str, Any] = {}
        try:
            for reference in self.referenced(schema).values():
                fastavro.parse_schema(_aside(orjson.loads(reference.text)), named_schemas=named)
            parsed = fastavro.parse_schema(_aside(orjson.loads(schema.text)), named_schemas=named)
        except (orjson.JSONDecodeError, fastavro.schema.SchemaParseException, ValueError, TypeError) as error:
            raise RecordError(
                f"{self.side}: schema id {schema.id} is not an Avro schema fastavro reads: {error}"
            ) from None
        full_names = bool(self.options.get("enhanced.avro.schema.support"))
        fix = Fixes(parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}, full_names).of(
            parsed
        )
        reader = fastavro.schemaless_reader

        def read(body: bytes) -> Any:
            value = reader(
                io.BytesIO(body), parsed, None, return_record_name=True, return_record_name_override=True
            )
            return value if fix is None else fix(value)

        return read


def _aside(schema: Any) -> Any:
    """The schema with every logical type but decimal moved to MARK: fastavro then reads the raw
    int or long, which is what Connect keeps (or what spelling.py spells)."""
    if isinstance(schema, list):
        return [_aside(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    moved = {
        key: _aside(value) if key in ("type", "items", "values", "fields") else value
        for key, value in schema.items()
    }
    logical = moved.get("logicalType")
    if logical is not None and logical != KEPT:
        moved[MARK] = moved.pop("logicalType")
    return moved


class Fixes:
    """The fix-up of a value of a parsed schema, or None where fastavro's value is already right."""

    def __init__(self, named: dict[str, Any], full_names: bool) -> None:
        self.named = named
        self.full_names = full_names
        self.compiled: dict[str, Fix | None] = {}

    def of(self, schema: Any) -> Fix | None:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return _base64 if schema == "bytes" else None
            return self.named_type(schema)
        if isinstance(schema, list):
            return self.union(schema)
        kind = schema.get("type")
        if isinstance(kind, (dict, list)):
            return self.of(kind)
        logical = schema.get(MARK)
        if logical == "date" and kind == "int":
            return _date
        if logical == "time-millis" and kind == "int":
            return _time
        if kind in ("record", "error", "enum", "fixed") and "name" in schema:
            return self.named_type(schema["name"], schema)
        if kind == "array":
            item = self.of(schema["items"])
            return None if item is None else (lambda value: [item(v) for v in value])
        if kind == "map":
            entry = self.of(schema["values"])
            return None if entry is None else (lambda value: {k: entry(v) for k, v in value.items()})
        if kind == "bytes" and schema.get("logicalType") != KEPT:
            return _base64
        return None

    def named_type(self, name: str, schema: dict | None = None) -> Fix | None:
        if name in self.compiled:
            return self.compiled[name]
        schema = schema or self.named.get(name)
        if schema is None:
            return None
        kind = schema.get("type")
        if kind == "fixed":
            fix = None if schema.get("logicalType") == KEPT else _base64
        elif kind in ("record", "error"):
            fields: list[tuple[str, Fix]] = []
            cell: list[Fix | None] = [None]
            self.compiled[name] = lambda value: cell[0](value) if cell[0] else value  # recursive types
            for field in schema.get("fields", ()):
                field_fix = self.of(field["type"])
                if field_fix is not None:
                    fields.append((field["name"], field_fix))
            fix = _record(fields) if fields else None
            cell[0] = fix
        else:
            fix = None
        self.compiled[name] = fix
        return fix

    def union(self, branches: list) -> Fix | None:
        others = [branch for branch in branches if branch != "null"]
        if len(others) == 1:
            inner = self.of(others[0])
            return None if inner is None else (lambda value: None if value is None else inner(value))
        named = [(self.branch_name(b), self.of(b), b) for b in others]
        fields = [name for name, _, _ in named]

        def as_union_struct(value: Any) -> Any:
            if value is None:
                return None
            name, fix = self.branch_of(value, named)
            struct = dict.fromkeys(fields)
            if isinstance(value, tuple):
                value = value[1]
            struct[name] = value if fix is None else fix(value)
            return struct

        return as_union_struct

    def branch_name(self, branch: Any) -> str:
        """Connect's name for a union branch: its type, or a named type's short (or full) name."""
        name = (
            branch
            if isinstance(branch, str)
            else branch.get("name")
            if branch.get("type") in ("record", "error", "enum", "fixed")
            else branch.get("type")
        )
        if not isinstance(name, str):
            name = str(name)
        return name if self.full_names or name in PRIMITIVES else name.rsplit(".", 1)[-1]

    def branch_of(self, value: Any, named: list[tuple[str, Fix | None, Any]]) -> tuple[str, Fix | None]:
        """The branch fastavro read: named for records (it gives their name), else by Python type;
        int and long (float and double) cannot be told apart, so the first one listed."""
        if isinstance(value, tuple):
            for name, fix, branch in named:
                if self._full(branch) == value[0]:
                    return name, fix
        for name, fix, branch in named:
            if _holds(self._kind(branch), value):
                return name, fix
        raise RecordError(f"a union value {value!r:.60} matches none of its branches")

    def _full(self, branch: Any) -> str | None:
        return branch if isinstance(branch, str) else branch.get("name")

    def _kind(self, branch: Any) -> str:
        if isinstance(branch, str):
            return branch if branch in PRIMITIVES else self.named.get(branch, {}).get("type", "record")
        kind = branch.get("type")
        return kind if isinstance(kind, str) else "record"


def _holds(kind: str, value: Any) -> bool:
    python = type(value)
    return {
        "boolean": python is bool,
        "int": python is int,
        "long": python is int,
        "float": python is float,
        "double": python is float,
        "string": python is str,
        "enum": python is str,
        "bytes": python is bytes,
        "fixed": python is bytes,
        "array": python is list,
        "map": python is dict,
        "record": python is dict,
        "error": python is dict,
    }.get(kind, False)


def _record(fields: list[tuple[str, Fix]]) -> Fix:
    def fix(value: dict) -> dict:
        for name, field_fix in fields:
            value[name] = field_fix(value[name])
        return value

    return fix


def _base64(value: Any) -> Any:
    return base64_text(value) if type(value) is bytes else value


def _date(value: int) -> str:
    return iso_date(value, "an Avro date")


def _time(value: int) -> str:
    return time_of_day(value, "an Avro time-millis")
