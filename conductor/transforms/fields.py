"""Kafka Connect's field transforms, schemaless: InsertField, ReplaceField, ExtractField,
HoistField, ValueToKey, MaskField, Flatten. Each has a $Key and a $Value form (but ValueToKey)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conductor.records import Record
from conductor.transforms.base import (
    INTEGER,
    Settings,
    TransformError,
    java_type,
    operating,
    require_map,
    with_key,
    with_operating,
)


def _field_name(spec: str | None) -> str | None:
    """InsertField's `name!` (required) and `name?` (optional) only matter with a schema."""
    if spec is None:
        return None
    return spec[:-1] if spec.endswith(("!", "?")) else spec


@dataclass(frozen=True, slots=True)
class InsertField:
    side: str
    topic_field: str | None
    partition_field: str | None
    offset_field: str | None
    timestamp_field: str | None
    static_field: str | None
    static_value: str | None

    @classmethod
    def configure(cls, s: Settings, side: str) -> InsertField:
        s.boolean("replace.null.with.default", True)  # only with a schema
        return cls(
            side,
            topic_field=_field_name(s.string("topic.field")),
            partition_field=_field_name(s.string("partition.field")),
            offset_field=_field_name(s.string("offset.field")),
            timestamp_field=_field_name(s.string("timestamp.field")),
            static_field=_field_name(s.string("static.field")),
            static_value=s.string("static.value"),
        )

    def apply(self, record: Record) -> Record:
        value = operating(record, self.side)
        if value is None:
            return record
        updated = dict(require_map(value, "field insertion"))
        if self.topic_field is not None:
            updated[self.topic_field] = record.topic
        if self.partition_field is not None:
            updated[self.partition_field] = record.partition
        if self.offset_field is not None:
            updated[self.offset_field] = record.offset
        if self.timestamp_field is not None and record.timestamp is not None and record.timestamp >= 0:
            updated[self.timestamp_field] = record.timestamp
        if self.static_field is not None and self.static_value is not None:
            updated[self.static_field] = self.static_value
        return with_operating(record, self.side, updated)


@dataclass(frozen=True, slots=True)
class ReplaceField:
    side: str
    exclude: frozenset[str]
    include: frozenset[str]
    renames: dict[str, str]

    @classmethod
    def configure(cls, s: Settings, side: str) -> ReplaceField:
        # whitelist/blacklist: the names before Kafka 2.7 (KIP-629), read when the new one is not set
        blacklist, whitelist = s.listing("blacklist"), s.listing("whitelist")
        exclude = s.listing("exclude") if s.string("exclude") is not None else blacklist
        include = s.listing("include") if s.string("include") is not None else whitelist
        s.boolean("replace.null.with.default", True)
        renames = {}
        for mapping in s.listing("renames"):
            parts = mapping.split(":")
            if len(parts) != 2 or not all(parts):
                s.problem("renames", f"Invalid rename mapping: {mapping} (expected old:new)")
                continue
            renames[parts[0]] = parts[1]
        return cls(side, frozenset(exclude), frozenset(include), renames)

    def apply(self, record: Record) -> Record:
        value = operating(record, self.side)
        if value is None:
            return record
        renames, exclude, include = self.renames, self.exclude, self.include
        updated = {
            renames.get(name, name): field
            for name, field in require_map(value, "field replacement").items()
            if name not in exclude and (not include or name in include)
        }
        return with_operating(record, self.side, updated)


def field_path(path: str) -> list[str]:
    """field.syntax.version=V2's path: steps split on dots; a step in backticks may hold dots,
    and a backslash before a backtick keeps it (Kafka's SingleFieldPath.buildFieldPathV2)."""
    steps: list[str] = []
    pos = 0
    while pos < len(path):
        if path[pos] != "`":
            dot = path.find(".", pos)
            steps.append(path[pos:] if dot < 0 else path[pos:dot])
            if dot < 0:
                break
            pos = dot + 1
            continue
        opened, start, pos, step = pos, pos + 1, pos + 1, ""
        while True:
            pos = path.find("`", pos)
            if pos < 0 or (pos >= len(path) - 1 and path[pos - 1] == "\\"):
                raise ValueError(
                    f"Incomplete backtick pair in path: [{path}], consider adding a backslash before backtick "
                    f"at position {opened} to escape it"
                )
            escaped = path[pos - 1] == "\\"
            if pos >= len(path) - 1:
                steps.append(step + path[start:pos])
                pos += 1
                break
            if path[pos + 1] != ".":
                pos += 1
                continue
            if escaped:
                step += path[start : pos - 1] + "`"
                pos += 1
                start = pos
                continue
            steps.append(step + path[start:pos])
            pos += 2
            break
    if path.endswith("."):
        steps.append("")
    return steps


@dataclass(frozen=True, slots=True)
class ExtractField:
    side: str
    path: tuple[str, ...]  # one step, unless field.syntax.version=V2 names a nested field

    @classmethod
    def configure(cls, s: Settings, side: str) -> ExtractField:
        field = s.string("field", "", required=True)
        if s.choice("field.syntax.version", ("V1", "V2"), "V1") == "V1":
            return cls(side, (field,))
        try:
            return cls(side, tuple(field_path(field)) or ("",))
        except ValueError as error:
            s.problem("field", str(error))
            return cls(side, (field,))

    def apply(self, record: Record) -> Record:
        value = operating(record, self.side)
        if value is None:
            return with_operating(record, self.side, None)
        current = require_map(value, "field extraction")
        *parents, last = self.path
        for step in parents:
            found = current.get(step)
            if found is None:
                return with_operating(record, self.side, None)
            current = require_map(found, "nested field access")
        return with_operating(record, self.side, current.get(last))


@dataclass(frozen=True, slots=True)
class HoistField:
    side: str
    field: str

    @classmethod
    def configure(cls, s: Settings, side: str) -> HoistField:
        return cls(side, s.string("field", "", required=True))

    def apply(self, record: Record) -> Record:
        # a tombstone is hoisted too ({field: null}), as Kafka Connect does
        return with_operating(record, self.side, {self.field: operating(record, self.side)})


@dataclass(frozen=True, slots=True)
class ValueToKey:
    fields: tuple[str, ...]

    @classmethod
    def configure(cls, s: Settings, side: str) -> ValueToKey:
        s.boolean("replace.null.with.default", True)
        return cls(tuple(s.listing("fields", required=True, non_empty=True)))

    def apply(self, record: Record) -> Record:
        value = require_map(record.value, "copying fields from value to key")
        return with_key(record, {field: value.get(field) for field in self.fields})


# MaskField without a replacement: the type's empty value. With one: the replacement, read as
# the field's type (numbers and strings only).
def _masked(value: Any, replacement: str | None) -> Any:
    if value is None:
        return None
    kind = type(value)
    if replacement is None:
        if kind in EMPTY:
            return EMPTY[kind]
        raise TransformError(f"Cannot mask value of type: class {java_type(value)}")
    if kind is str:
        return replacement
    if kind is int:
        if not INTEGER.fullmatch(replacement.strip()):
            raise TransformError(f"Unable to convert {replacement} (class java.lang.String) to number")
        return int(replacement)
    if kind is float:
        try:
            return float(replacement)
        except ValueError:
            raise TransformError(
                f"Unable to convert {replacement} (class java.lang.String) to number"
            ) from None
    raise TransformError(f"Cannot mask value of type class {java_type(value)} with custom replacement.")


EMPTY: dict[type, Any] = {bool: False, int: 0, float: 0.0, str: ""}


@dataclass(frozen=True, slots=True)
class MaskField:
    side: str
    fields: tuple[str, ...]
    replacement: str | None

    @classmethod
    def configure(cls, s: Settings, side: str) -> MaskField:
        fields = tuple(s.listing("fields", required=True, non_empty=True))
        replacement = s.string("replacement")
        if replacement == "":
            s.problem("replacement", "String must be non-empty")
        s.boolean("replace.null.with.default", True)
        return cls(side, fields, replacement or None)

    def apply(self, record: Record) -> Record:
        value = require_map(operating(record, self.side), "mask fields")
        updated = dict(value)
        for field in self.fields:
            original = value.get(field)
            if self.replacement is None and type(original) in (list, dict):
                updated[field] = type(original)()
            else:
                updated[field] = _masked(original, self.replacement)
        return with_operating(record, self.side, updated)


@dataclass(frozen=True, slots=True)
class Flatten:
    side: str
    delimiter: str

    @classmethod
    def configure(cls, s: Settings, side: str) -> Flatten:
        return cls(side, s.string("delimiter", "."))

    def apply(self, record: Record) -> Record:
        value = operating(record, self.side)
        if value is None:
            return record
        flat: dict[str, Any] = {}
        self._flatten(require_map(value, "flattening"), "", flat)
        return with_operating(record, self.side, flat)

    def _flatten(self, value: dict[str, Any], prefix: str, into: dict[str, Any]) -> None:
        for name, field in value.items():
            full = f"{prefix}{self.delimiter}{name}" if prefix else name
            if type(field) is dict:
                self._flatten(field, full, into)
            else:
                into[full] = field
